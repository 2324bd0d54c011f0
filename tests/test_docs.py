"""Docs and code agree: the generated reference is fresh; every example compiles."""

from __future__ import annotations

from pathlib import Path

import pytest

from converge.docs import reference_markdown

REPO = Path(__file__).resolve().parent.parent


def test_resource_reference_is_fresh() -> None:
    page = REPO / "docs" / "resources.md"
    assert page.read_text() == reference_markdown(), (
        "docs/resources.md is stale: run `python -m converge.docs > docs/resources.md`")


EXAMPLES = sorted((REPO / "examples").glob("*.py"))


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_compiles(example: Path, tmp_path: Path, monkeypatch) -> None:
    from converge.recipe import compile_recipe
    from tests.conftest import FACTS

    monkeypatch.chdir(tmp_path)
    plan = compile_recipe(example, facts=lambda: FACTS)
    assert plan.steps, example
