"""The `llmos` command line: thin verbs over the library, imported lazily for a fast start."""
