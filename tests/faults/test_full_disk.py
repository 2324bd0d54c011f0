"""A full disk while writing: a 1 MiB tmpfs in a lab node, files whose new content
does not fit. The resource fails saying ENOSPC and naming the file, the old file
stays whole, no temp file is left, the other resources of the run converge, and
once there is room the next run converges."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import pytest

from converge.lab import Node
from converge.lab.idempotence import WORKDIR, ApplyRun, apply_in_node, place_recipe
from tests.faults.helpers import TALLY, node_state

pytestmark = pytest.mark.lab

FULL = "/srv/full"
OLD_BIG = b"old big\n" * (600 * 1024 // 8)  # 600 KiB of a 1 MiB filesystem
RECIPE = """\
from converge import directory, file
file("/srv/full/big", content="new big\\n" * (700 * 1024 // 8))  # fits alone, not beside the old
file("/srv/full/huge", content="h" * (2 * 1024 * 1024))          # never fits
file("/srv/full/small", content="new small\\n")
directory("/srv/other")
file("/srv/other/after", content="written after the failures\\n")
"""


def apply(node: Node, recipe: str, name: str) -> ApplyRun:
    return apply_in_node(node, recipe, "%s/%s.json" % (WORKDIR, name))


def statuses(run: ApplyRun) -> dict[str, str]:
    return {res["id"]: res["status"] for res in run.resources()}


def sh(node: Node, *argv: str) -> str:
    done = node.run(list(argv))
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_full_disk_fails_the_resource_and_keeps_the_old_file(lab_node: Node,
                                                              tmp_path: Path) -> None:
    node = lab_node
    sh(node, "mkdir", "-p", FULL, WORKDIR)
    sh(node, "mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", FULL)
    node.write_file(FULL + "/big", OLD_BIG)
    node.write_file(FULL + "/small", b"old small\n")
    used = sh(node, "df", "--output=used", FULL)
    path = tmp_path / "recipe.py"
    path.write_text(textwrap.dedent(RECIPE))
    recipe = place_recipe(node, path)

    first = apply(node, recipe, "first")
    TALLY["disk_full_faults"] += 2
    TALLY["injected"] += 2
    assert first.returncode == 1, first.stdout + first.stderr  # a failed resource: exit 1
    assert statuses(first) == {
        "file[/srv/full/big]": "failed", "file[/srv/full/huge]": "failed",
        "file[/srv/full/small]": "updated", "directory[/srv/other]": "updated",
        "file[/srv/other/after]": "updated"}, first.stdout
    errors = {res["id"]: res["error"] for res in first.with_status("failed")}
    for name in ("big", "huge"):
        assert errors["file[/srv/full/%s]" % name] == (
            "/srv/full/%s: No space left on device (ENOSPC)" % name), first.stdout
    assert "* file[/srv/full/big] action create (failed)\n" in first.stdout
    assert ":2: /srv/full/big: No space left on device (ENOSPC)\n" in first.stdout
    state = node_state(node, FULL)
    assert state["files"][FULL + "/big"] == (len(OLD_BIG), hashlib.sha256(OLD_BIG).hexdigest())
    assert FULL + "/huge" not in state["files"]
    assert node.read_file(FULL + "/small") == b"new small\n"
    assert node.read_file("/srv/other/after") == b"written after the failures\n"
    assert [t for t in state["temps"] if t.startswith(FULL)] == []
    assert sh(node, "df", "--output=used", FULL) == used  # no space held by a lost temp file
    TALLY["survived"] += 2

    sh(node, "mount", "-o", "remount,size=4m", FULL)
    second = apply(node, recipe, "second")
    assert second.returncode == 0, second.stdout + second.stderr
    assert statuses(second) == {
        "file[/srv/full/big]": "updated", "file[/srv/full/huge]": "updated",
        "file[/srv/full/small]": "up_to_date", "directory[/srv/other]": "up_to_date",
        "file[/srv/other/after]": "up_to_date"}, second.stdout
    assert node.read_file(FULL + "/big") == b"new big\n" * (700 * 1024 // 8)
    assert node_state(node, FULL)["temps"] == []
    TALLY["next_runs"] += 1
