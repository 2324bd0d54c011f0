"""Broken recipes: each names the exact message expected on its first line. Every
one exits 1, prints no traceback, and changes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BROKEN = Path(__file__).parent / "recipes" / "broken"
CASES = sorted(p for p in BROKEN.glob("*.py"))


def expected(path: Path) -> str:
    """The first line's message, and its next lines from comment lines ``#| ...``."""
    first, *rest = path.read_text().splitlines()
    assert first.startswith("# error: "), path
    more = [line[len("#| "):] for line in rest if line.startswith("#| ")]
    rel = os.path.relpath(path)
    return "\n".join([first[len("# error: "):]] + more).format(
        path=rel, dir=os.path.relpath(path.parent))


@pytest.mark.parametrize("recipe", CASES, ids=[p.stem for p in CASES])
def test_broken_recipe_is_refused_with_its_message(recipe: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    proc = subprocess.run(
        [sys.executable, "-m", "converge", "apply", "--root", str(root), os.path.relpath(recipe)],
        capture_output=True, text=True, cwd=os.getcwd(), stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr.strip() == "error: " + expected(recipe), proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    assert [p.relative_to(root) for p in root.rglob("*")] == [Path("etc")]  # nothing changed


def test_the_corpus_covers_enough() -> None:
    assert len(CASES) >= 40


def test_missing_recipe_file(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "converge", "apply", str(tmp_path / "nope.py")],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert proc.returncode == 1
    assert "recipe file" in proc.stderr and "nope.py not found" in proc.stderr


def test_dsl_outside_a_recipe_is_a_clear_error() -> None:
    from converge import file
    from converge.errors import RecipeError

    with pytest.raises(RecipeError, match="only be declared while a recipe is compiled"):
        file("/etc/motd", content="x")
