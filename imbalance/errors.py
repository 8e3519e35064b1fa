"""The one exception type that the command-line layer turns into a one-line message."""

import sys
from typing import Any, Callable

__all__ = ["UserError", "exit_code"]


class UserError(Exception):
    """Bad input from the user: a file, column, flag or value that must change.

    The message is shown as-is on one line, so it names what is at fault and what to do.
    """


def exit_code(prog: str, action: Callable[[], Any]) -> int:
    """Run a command's ``action``: 0 when it ends, 2 with its one-line message on a UserError."""
    try:
        action()
    except UserError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    return 0
