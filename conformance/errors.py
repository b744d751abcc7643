"""Errors the conformance commands turn into an exit status."""


class UsageError(Exception):
    """Something the caller must fix before anything can run (exit status 2)."""
