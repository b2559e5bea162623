"""Shared start of the Hydra entry points."""

from __future__ import annotations

import sys

from audioclf.config import check_group_choices
from audioclf.errors import UserError, exit_with


def precheck_arguments() -> None:
    """Catch a mistyped config-group option before Hydra starts."""
    try:
        check_group_choices(sys.argv[1:])
    except UserError as error:
        exit_with(error)
