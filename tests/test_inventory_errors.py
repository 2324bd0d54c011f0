"""Broken inventories: each names on its first line the exact message expected
(file and line where the YAML gives it), and on a second ``# hint:`` line the hint
if there is one. Every one exits 1 before any host is contacted, with no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BROKEN = Path(__file__).parent / "inventories" / "broken"
CASES = sorted(BROKEN.glob("*.yml"))


def expected(path: Path) -> str:
    lines = path.read_text().split("\n")
    assert lines[0].startswith("# error: "), path
    text = "error: " + lines[0][len("# error: "):].replace("{path}", os.path.relpath(path))
    if lines[1].startswith("# hint: "):
        text += "\n  " + lines[1][len("# hint: "):]
    return text


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 25


@pytest.mark.parametrize("inventory", CASES, ids=[p.stem for p in CASES])
def test_broken_inventory_is_refused_with_its_message(inventory: Path, tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.py"
    recipe.write_text('from converge import file\nfile("/srv/x", content="x")\n')
    proc = subprocess.run(
        [sys.executable, "-m", "converge", "apply", str(recipe), "-i",
         os.path.relpath(inventory)],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr.rstrip("\n") == expected(inventory)
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
