"""User-caused errors: reported as one sentence, never as a traceback."""

from __future__ import annotations

import errno
import functools
import sys
from collections.abc import Callable
from typing import Any


class UserError(Exception):
    """A problem the user can fix: the message names the thing and the fix."""


def exit_with(error: UserError) -> None:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)


# a file the run cannot write: the user's disk or permissions, not a bug
UNWRITABLE = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
              errno.EROFS: "read-only file system"}


def exit_on_user_error(run: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap an entry point so a UserError, or a file the run cannot write, prints one line and exits
    with status 2."""

    @functools.wraps(run)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return run(*args, **kwargs)
        except UserError as error:
            exit_with(error)
        except OSError as error:
            if error.errno not in UNWRITABLE:
                raise
            where = error.filename or "a run file"
            exit_with(UserError(f"cannot write {where} ({UNWRITABLE[error.errno]}): free space on that disk or "
                                "give paths.log_dir=<a folder you can write>"))

    return wrapper
