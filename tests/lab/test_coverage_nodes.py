"""Under coverage, converge run in a lab node (node.run) is measured, and the lab
brings its data home when it stops the node (converge/lab/_coverage.py); the
node's python3 is left as it is (the agent's command line over SSH unchanged), and
the agent started over SSH is measured by its loader (transport/bundle.py)."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import subprocess
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


def measure_into(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The coverage setting a measured test run passes on, with its data in FOLDER
    (as coverage's patch = ["subprocess"] serializes it: parallel, data file absolute)."""
    pytest.importorskip("coverage")
    config = {"data_file": str(folder / ".coverage"), "source": [SOURCE], "parallel": True}
    monkeypatch.setenv(_coverage.ENV, base64.b64encode(json.dumps(config).encode()).decode())


def test_converge_in_a_node_is_measured_and_python3_left_alone(
        lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    measure_into(tmp_path, monkeypatch)
    [node] = lab.up(1)
    try:
        done = node.run([sys.executable, "-c", "import converge.plan"])
        assert done.returncode == 0, done.stderr
        # the agent's command line over SSH: the node's own python3, unmeasured
        agent = ("import sys; sys.path.insert(0, %r); import converge.errors; "
                 "print(sys.flags.isolated, sys.flags.no_site, 'coverage' in sys.modules, "
                 "any('site-packages' in p for p in sys.path))"
                 % os.path.dirname(SOURCE))
        done = node.run(["sh", "-c", 'python3 -I -S -c "$1"', "sh", agent])
        assert done.returncode == 0, done.stderr
        assert done.stdout == "1 1 False False\n"
        assert node.run(["sh", "-c", "command -v python3"]).stdout == "/usr/bin/python3\n"
        # a file planted in the data folder that is no data file stays in the node
        node.run(["ln", "-s", "/etc/shadow", _coverage.NODE_DATA + "/.coverage.planted"])
        assert node.run(["su", "nobody", "-s", "/bin/sh", "-c",
                         "touch " + _coverage.NODE_DATA + "/by-nobody"]).returncode == 0
    finally:
        lab.down([node.name])
    names = {p.name for p in tmp_path.glob(".coverage.*")}
    assert len(names) == 1 and ".coverage.planted" not in names, names
    assert all(name.startswith(".coverage.%s." % node.name) for name in names), names
    assert SOURCE + "/plan.py" in measured_files(tmp_path)


def test_without_coverage_a_node_gets_no_data_folder_and_no_setting(
        lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(_coverage.ENV, raising=False)
    [node] = lab.up(1)
    try:
        assert node.run(["test", "-e", _coverage.NODE_DATA]).returncode == 1
        done = node.run(["sh", "-c", "echo ${%s:-unset}" % _coverage.ENV])
        assert done.stdout == "unset\n"
    finally:
        lab.down([node.name])


def test_the_agent_started_over_ssh_in_a_node_is_measured(
        lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    measure_into(tmp_path, monkeypatch)
    [node] = lab.up(1)
    recipe = tmp_path / "recipe.py"
    recipe.write_text("from converge import file\nfile('/srv/motd', content='hi\\n')\n")
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(json.dumps({"hosts": {node.name: {
        "address": node.address, "user": "root", "key": str(lab.key_path),
        "known_hosts": str(lab.known_hosts_path)}}}))
    try:
        # the controller, measured by the setting above (coverage's .pth file)
        done = subprocess.run([sys.executable, "-m", "converge", "apply", str(recipe), "-i",
                               str(inventory)], capture_output=True, text=True,
                              cwd=tmp_path, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        assert node.read_file("/srv/motd") == b"hi\n"
    finally:
        lab.down([node.name])
    in_node = set()
    for path in tmp_path.glob(".coverage.%s.*" % node.name):
        with sqlite3.connect(path) as db:
            in_node |= {row[0] for row in db.execute("select path from file")}
    # the agent from its cache, and the loader as transport/bundle.py's own lines
    assert any("/agent-" in name and name.endswith("/converge/agent/remote.py")
               for name in in_node), in_node
    assert SOURCE + "/transport/bundle.py" in in_node, in_node
