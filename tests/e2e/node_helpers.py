"""What the end-to-end tests of one resource type do in a lab node: run a shell
line there, run converge there, apply a recipe there and read its JSON report."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Tuple

from converge.lab import Node
from converge.lab.idempotence import WORKDIR, ApplyRun, apply_in_node, place_recipe


def sh(node: Node, script: str) -> str:
    done = node.run(["sh", "-c", script])
    assert done.returncode == 0, done.stderr
    return done.stdout


def converge(node: Node, *args: str) -> Tuple[int, str]:
    done = node.run([sys.executable, "-m", "converge", *args],
                    env={"PYTHONDONTWRITEBYTECODE": "1", "COLUMNS": "200"}, timeout=300)
    return done.returncode, done.stdout + done.stderr


def apply(node: Node, tmp_path: Path, text: str, name: str = "recipe.py") -> ApplyRun:
    recipe = tmp_path / name
    recipe.write_text(text)
    node.run(["mkdir", "-p", WORKDIR])
    return apply_in_node(node, place_recipe(node, recipe), f"{WORKDIR}/{name}.json")
