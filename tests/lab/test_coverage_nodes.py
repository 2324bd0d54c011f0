"""Under coverage, converge run in a lab node (node.run) and the agent converge starts
there as `python3 -I -S -c` (the SSH agent's command line) are measured, and the lab
brings their data home when it stops the node (converge/lab/_coverage.py)."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import sys
from pathlib import Path

import pytest

import converge
from converge.lab import Lab, _coverage

pytestmark = pytest.mark.lab

SOURCE = str(Path(converge.__file__).resolve().parent)


def measured_files(folder: Path) -> set[str]:
    files: set[str] = set()
    for path in folder.glob(".coverage.*"):
        with sqlite3.connect(path) as db:
            files |= {row[0] for row in db.execute("select path from file")}
    return files


def test_converge_in_a_node_and_its_isolated_agent_are_measured(
        lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("coverage")
    # as coverage's patch = ["subprocess"] serializes it: parallel, data file absolute
    config = {"data_file": str(tmp_path / ".coverage"), "source": [SOURCE], "parallel": True}
    monkeypatch.setenv(_coverage.ENV, base64.b64encode(json.dumps(config).encode()).decode())
    [node] = lab.up(1)
    try:
        done = node.run([sys.executable, "-c", "import converge.plan"])
        assert done.returncode == 0, done.stderr
        # the agent's command line over SSH: python3 found on PATH, isolated, no site
        agent = ("import sys; sys.path.insert(0, %r); import converge.errors; "
                 "print(sys.flags.isolated, sys.flags.no_site, 'coverage' in sys.modules, "
                 "any('site-packages' in p for p in sys.path))"
                 % os.path.dirname(SOURCE))
        done = node.run(["sh", "-c", 'python3 -I -S -c "$1"', "sh", agent])
        assert done.returncode == 0, done.stderr
        # as the real python3 would run it: isolated, no site, nothing but the stdlib
        # on its path (coverage itself only measuring)
        assert done.stdout == "1 1 True False\n"
        plain = node.run(["sh", "-c", "python3 -c 'import sys; print(sys.flags.isolated)'"])
        assert plain.stdout == "0\n", plain.stderr  # anything else: the real python3
        # a file planted in the data folder that is no data file stays in the node
        node.run(["ln", "-s", "/etc/shadow", _coverage.NODE_DATA + "/.coverage.planted"])
        assert node.run(["su", "nobody", "-s", "/bin/sh", "-c",
                         "touch " + _coverage.NODE_DATA + "/by-nobody"]).returncode == 0
    finally:
        lab.down([node.name])
    names = {p.name for p in tmp_path.glob(".coverage.*")}
    assert len(names) == 2 and ".coverage.planted" not in names, names
    assert all(name.startswith(".coverage.%s." % node.name) for name in names), names
    assert {SOURCE + "/plan.py", SOURCE + "/errors.py"} <= measured_files(tmp_path)


def test_without_coverage_a_node_gets_no_wrapper_and_no_setting(
        lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(_coverage.ENV, raising=False)
    [node] = lab.up(1)
    try:
        assert node.run(["test", "-e", _coverage.WRAPPER]).returncode == 1
        done = node.run(["sh", "-c", "echo ${%s:-unset}" % _coverage.ENV])
        assert done.stdout == "unset\n"
    finally:
        lab.down([node.name])
