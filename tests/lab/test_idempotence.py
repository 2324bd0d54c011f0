"""`converge test` and assert_idempotent: apply twice, the second run changes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Callable

import pytest

from converge.lab import Lab, Node
from converge.lab.idempotence import (
    IdempotenceResult,
    check_idempotence,
    place_recipe,
    recipe_packages,
    run_test,
)

pytestmark = pytest.mark.lab

GOOD = """\
from converge import file
file("/etc/motd", content="Hello Tunnelix\\n", mode="0644")
"""
BAD = """\
import time
from converge import file
file("/etc/stamp", content="%d\\n" % time.time_ns())
"""


def recipe(tmp_path: Path, text: str, name: str = "recipe.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_idempotent_recipe(lab_node: Node, tmp_path: Path,
                           assert_idempotent: Callable[..., IdempotenceResult]) -> None:
    host_motd = this_machines("/etc/motd")
    result = assert_idempotent(lab_node, recipe(tmp_path, GOOD))
    assert [r["id"] for r in result.first.with_status("updated")] == ["file[/etc/motd]"]
    assert [r["status"] for r in result.second.resources()] == ["up_to_date"]
    assert lab_node.read_file("/etc/motd") == b"Hello Tunnelix\n"
    # this machine's /etc/motd is as it was, whatever it holds (the README's recipe
    # may have written this very text here)
    assert this_machines("/etc/motd") == host_motd


def this_machines(path: str) -> tuple[int, int, bytes] | None:
    """A file of this machine: inode, change time and content; None when missing."""
    try:
        with open(path, "rb") as handle:
            st = os.fstat(handle.fileno())
            return st.st_ino, st.st_ctime_ns, handle.read()
    except FileNotFoundError:
        return None


def test_not_idempotent_recipe_names_the_resource(
        lab_node: Node, tmp_path: Path,
        assert_idempotent: Callable[..., IdempotenceResult]) -> None:
    with pytest.raises(AssertionError) as failure:
        assert_idempotent(lab_node, recipe(tmp_path, BAD))
    message = str(failure.value)
    assert "not idempotent: the second run changed 1 resource(s)" in message
    assert "  - file[/etc/stamp]" in message
    assert "first run (exit 0)" in message and "second run (exit 0)" in message
    assert not Path("/etc/stamp").exists()


def test_recipe_copied_when_node_cannot_see_it(lab_node: Node) -> None:
    with tempfile.TemporaryDirectory(dir="/dev/shm") as hidden:  # nodes have their own /dev
        path = recipe(Path(hidden), GOOD, "motd.py")
        assert lab_node.run(["test", "-e", str(path)]).returncode == 1
        assert place_recipe(lab_node, path) == "/tmp/converge-test/recipe/motd.py"
        result = check_idempotence(lab_node, path)
    assert result.ok, result.describe()


def test_converge_test_command(lab: Lab, tmp_path: Path) -> None:
    env = {**os.environ, "CONVERGE_LAB_DIR": str(lab.directory)}
    before = {n.name for n in lab.nodes()}
    good = subprocess.run([sys.executable, "-m", "converge", "test", str(recipe(tmp_path, GOOD))],
                          capture_output=True, text=True, env=env)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "idempotent: the second run changed nothing" in good.stdout
    assert "file[/etc/motd] action create (up to date)" in good.stdout
    bad = subprocess.run([sys.executable, "-m", "converge", "test", "--nodes", "2",
                          str(recipe(tmp_path, BAD, "bad.py"))],
                         capture_output=True, text=True, env=env)
    assert bad.returncode == 1
    assert bad.stdout.count("not idempotent") == 2
    assert bad.stdout.count("--- node") == 4
    assert {n.name for n in lab.nodes()} == before


def test_run_test_installs_recipe_packages_from_the_lab_repository(
        lab: Lab, local_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    local_repo.build_deb("converge-hello", "2.0-1",
                         files={"/usr/share/converge-hello/greeting": b"hello\n"})
    path = recipe(tmp_path, 'from converge import package\npackage("converge-hello")\n')
    assert recipe_packages(path) == ["converge-hello"]
    lines: list[str] = []
    assert run_test(path, lab=lab, echo=lines.append) == 0, "\n".join(lines)
    output = "\n".join(lines)
    assert "mirrored" not in output  # already in the lab repository: nothing fetched
    assert "* package[converge-hello] action install (up to date)" in output
    assert not Path("/usr/share/converge-hello").exists()


ATTRS = """\
from converge import attrs, file
file("/etc/motd", content=attrs.motd.text + "\\n")
"""


def test_converge_test_takes_the_recipe_options(lab: Lab, tmp_path: Path) -> None:
    env = {**os.environ, "CONVERGE_LAB_DIR": str(lab.directory)}
    report = tmp_path / "report.json"
    done = subprocess.run([sys.executable, "-m", "converge", "test", "-a", "motd.text=from -a",
                           "--diff", "--json", str(report), str(recipe(tmp_path, ATTRS))],
                          capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "+from -a" in done.stdout  # the diff of the first run
    data = json.loads(report.read_text())
    assert data["ok"] is True
    (node,) = data["nodes"].values()
    assert node["idempotent"] is True
    assert node["first"]["summary"]["updated"] == 1
    assert node["second"]["summary"]["updated"] == 0
