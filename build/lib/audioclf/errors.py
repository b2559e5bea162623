"""User-caused errors: reported as one sentence, never as a traceback."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any


class UserError(Exception):
    """A problem the user can fix: the message names the thing and the fix."""


def exit_with(error: UserError) -> None:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)


def exit_on_user_error(run: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap an entry point so a UserError prints one line and exits with status 2."""

    @functools.wraps(run)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return run(*args, **kwargs)
        except UserError as error:
            exit_with(error)

    return wrapper
