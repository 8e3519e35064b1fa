"""The one exception type that the command-line layer turns into a one-line message."""

__all__ = ["UserError"]


class UserError(Exception):
    """Bad input from the user: a file, column, flag or value that must change.

    The message is shown as-is on one line, so it names what is at fault and what to do.
    """
