"""Tables for reports: markdown text and CSV files, from cells the caller has formatted."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

ALIGN_RULES = {"l": "---", "r": "---:"}


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]], align: str | None = None) -> str:
    """A markdown table ending in a newline. `align` has one letter per column, "l" (left) or
    "r" (right); None aligns the first column left and the others right (a label, then numbers)."""
    align = align or "l" + "r" * (len(header) - 1)
    if len(align) != len(header) or set(align) - set(ALIGN_RULES):
        raise ValueError(f"align={align!r} must give l or r for each of the {len(header)} columns")
    lines = [markdown_row(header), "|" + "".join(ALIGN_RULES[a] + "|" for a in align)]
    lines += [markdown_row(row) for row in rows]
    return "\n".join(lines) + "\n"


def markdown_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> None:
    """One line per row, the values of `header`'s keys in order; a missing key or None is an empty cell."""
    with open(path, "w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)


def blank_nan(row: Mapping[str, Any]) -> dict[str, Any]:
    """The row with NaN values made empty, so CSV readers see them as missing rather than the text nan."""
    return {key: "" if isinstance(value, float) and math.isnan(value) else value for key, value in row.items()}
