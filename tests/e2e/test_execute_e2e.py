"""execute in a lab node: creates, a user, guards; guarded commands are idempotent."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from converge.lab import Node
from converge.lab.idempotence import IdempotenceResult

pytestmark = pytest.mark.lab

RECIPE = """
from converge import execute
execute(["sh", "-c", "id -un > /tmp/whoami.$$ && mv /tmp/whoami.$$ /tmp/made/whoami"],
        creates="/tmp/made/whoami", user="nobody")
execute("echo $GREETING > /root/guarded", shell=True, environment={"GREETING": "hi"},
        not_if=["test", "-e", "/root/guarded"], only_if=["test", "-e", "/tmp/made/whoami"])
"""


def test_execute_guarded_runs_once(lab_node: Node, tmp_path: Path,
                                   assert_idempotent: Callable[..., IdempotenceResult]) -> None:
    lab_node.run(["install", "-d", "-o", "nobody", "/tmp/made"])
    recipe = tmp_path / "recipe.py"
    recipe.write_text(RECIPE)
    result = assert_idempotent(lab_node, recipe)
    assert [r["status"] for r in result.first.resources()] == ["updated", "updated"]
    assert [(r["status"], r.get("skip_reason")) for r in result.second.resources()] == [
        ("skipped", "creates"), ("skipped", "not_if")]
    assert "(skipped due to creates)" in result.second.stdout
    assert lab_node.read_file("/tmp/made/whoami") == b"nobody\n"
    assert lab_node.read_file("/root/guarded") == b"hi\n"
