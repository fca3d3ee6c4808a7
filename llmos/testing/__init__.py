"""Helpers for users' test suites: a pytest plugin with container fixtures."""
