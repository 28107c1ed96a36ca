"""The one exception type for user errors: the CLI prints its message on one line and exits non-zero."""


class CurationError(Exception):
    """Bad input or a run directory that cannot be used; the message says what and what to do."""
