"""The layering rules the README's Layout section states, read from each module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "audioclf"
LIBRARY = ["audio", "data", "lit", "models", "report", "streaming", "deploy", "diagnostics.py"]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def modules_of(room: str) -> list[Path]:
    place = PACKAGE / room
    return [place] if place.is_file() else sorted(place.rglob("*.py"))


@pytest.mark.parametrize("room", LIBRARY)
def test_the_library_imports_no_config_framework(room):
    edge = ("hydra", "omegaconf", "audioclf.tasks", "audioclf.cli", "audioclf.config")
    for path in modules_of(room):
        found = {m for m in imported_modules(path) if m.startswith(edge)}
        assert not found, f"{path.relative_to(PACKAGE)} imports {sorted(found)}"


def test_audio_imports_nothing_from_data():
    for path in modules_of("audio"):
        found = {m for m in imported_modules(path) if m.startswith("audioclf.data")}
        assert not found, f"{path.relative_to(PACKAGE)} imports {sorted(found)}"


def test_the_rules_see_an_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("from hydra.utils import instantiate\nimport audioclf.data.io\n")
    assert imported_modules(module) == {"hydra.utils", "audioclf.data.io"}
