"""The one exception of llmos.spec.

    ValueError
    └── SpecError          a config.json (or a value derived from it) is wrong or unusable

A SpecError always names where the problem is, as a JSON path into config.json
(``linux.namespaces[2].type``), and what was expected, so the runtime can print it as one
line and the user knows which field to fix without reading a traceback.
"""

from __future__ import annotations


class SpecError(ValueError):
    """A config field is missing, has the wrong type or value, or cannot be honoured.

    ``path`` is the JSON path of the field (empty for the document itself) and ``reason`` what
    was expected; ``str(err)`` is ``"<path>: <reason>"``.
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}" if path else reason)
