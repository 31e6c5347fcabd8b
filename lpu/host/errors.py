"""The one error type the ``lpu`` command reports as user error: one line, exit code 2."""

__all__ = ["UserError"]


class UserError(Exception):
    """Bad input from the user: reported as one line ``error: ...``, exit code 2."""
