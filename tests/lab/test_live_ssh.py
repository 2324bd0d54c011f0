"""execute(live=True) pushed over SSH, and an agent whose controller goes away.

The controller reads the agent's standard error (the live output) as it comes,
beside the events: left unread, it filled the SSH channel's window after about
2 MB and the run hung. And an agent whose controller is killed kills the command
it runs (its process group) and ends, releasing the run lock, instead of staying
blocked with its command, holding the lock, until someone kills them by hand."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from converge.lab import Lab, Node
from tests.faults.helpers import remote_agents

pytestmark = pytest.mark.lab

LINES = 30000  # of 100 bytes: 3 MB, more than an SSH channel's window (2 MB)
# prints LINES lines and a terminal escape, says it is done (a fifo the test
# reads), then waits: for the kill test, or for the fifo "gate" to let it finish
CHILD = """\
import sys
for i in range(%d):
    sys.stdout.write("line-%%05d %%s\\n" %% (i, "x" * 88))
sys.stdout.write("\\x1b]0;retitled\\x07 escape\\n")
sys.stdout.flush()
open("/tmp/ready", "w").write("here\\n")
open("/tmp/gate").read()
""" % LINES
RECIPE = """\
from converge import execute, file
execute(["python3", "-c", %r, "marker-4243"], live=True)
execute(["sh", "-c", "echo token: $TOKEN"], environment={"TOKEN": attrs["secret"]},
        live=True, sensitive=True)
file("/srv/after", content="done\\n")
""" % CHILD
SILENT = """\
from converge import execute
execute(["sh", "-c", "echo here > /tmp/ready; exec sleep 4243"])
"""


def inventory(lab: Lab, node: Node, path: Path, secret: str) -> Path:
    path.write_text(json.dumps({"hosts": {node.name: {
        "address": node.address, "user": "root", "key": str(lab.key_path),
        "known_hosts": str(lab.known_hosts_path), "vars": {"secret": secret}}}}))
    return path


def converge(tmp_path: Path, recipe: str, *args: str, **popen: Any) -> subprocess.Popen:
    (tmp_path / "recipe.py").write_text(recipe)
    return subprocess.Popen([sys.executable, "-m", "converge", "apply", "recipe.py", "-i",
                             "inventory.yml", *args], cwd=tmp_path, text=True,
                            stdin=subprocess.DEVNULL, errors="replace", **popen)


def wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    """Poll a condition until a deadline (no fixed sleep)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def fifos(node: Node) -> None:
    for fifo in ("/tmp/ready", "/tmp/gate"):
        node.run(["mkfifo", fifo]).check_returncode()


def test_live_output_of_megabytes_comes_through_ssh(lab: Lab, lab_node: Node,
                                                    tmp_path: Path) -> None:
    secret = "S3CRET-%s" % os.urandom(6).hex()
    inventory(lab, lab_node, tmp_path / "inventory.yml", secret)
    fifos(lab_node)
    # into files: a pipe the test did not read would block the controller itself
    with open(tmp_path / "out", "w") as out_file, open(tmp_path / "err", "w") as err_file:
        controller = converge(tmp_path, RECIPE, stdout=out_file, stderr=err_file)
    try:
        # the command printed everything, and got to say so: nothing blocked it
        ready = lab_node.run(["head", "-c", "5", "/tmp/ready"], timeout=60)
        assert ready.stdout == "here\n"
        lab_node.run(["sh", "-c", "echo go > /tmp/gate"], timeout=30).check_returncode()
        controller.wait(timeout=120)
    finally:
        if controller.poll() is None:
            controller.kill()
            controller.wait()
    out, err = (tmp_path / "out").read_text(), (tmp_path / "err").read_text()
    assert controller.returncode == 0, out + err[-2000:]
    lines = [line for line in err.splitlines() if line.startswith(lab_node.name + ": line-")]
    assert len(lines) == LINES
    assert lines[-1] == "%s: line-%05d %s" % (lab_node.name, LINES - 1, "x" * 88)
    # what the target printed reaches the terminal escaped, never raw
    assert "%s: \\x1b]0;retitled\\x07 escape" % lab_node.name in err.splitlines()
    assert "\x1b" not in err
    # a sensitive command streams nothing, over SSH too
    assert secret not in out + err
    assert "live output not shown: the resource is sensitive" in out
    assert lab_node.read_file("/srv/after") == b"done\n"


@pytest.mark.parametrize("recipe", [
    pytest.param(RECIPE, id="live-megabytes"),
    pytest.param(SILENT, id="silent-command"),
])
def test_an_agent_whose_controller_is_killed_stops_and_frees_the_lock(
        lab: Lab, lab_node: Node, tmp_path: Path, recipe: str) -> None:
    inventory(lab, lab_node, tmp_path / "inventory.yml", "unused")
    fifos(lab_node)
    journals = "ls /var/lib/converge/runs/ 2>/dev/null || true"
    before = set(lab_node.run(["sh", "-c", journals]).stdout.split())
    controller = converge(tmp_path, recipe, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    try:
        ready = lab_node.run(["head", "-c", "5", "/tmp/ready"], timeout=60)
        assert ready.stdout == "here\n"
        assert len(remote_agents(lab_node)) == 1
    finally:
        controller.kill()
        controller.wait()

    def command_left() -> bool:
        return lab_node.run(["pgrep", "-f", "marker-4243|sleep 4243"]).returncode == 0

    # the agent killed its command and ended: the run lock is free
    assert wait_for(lambda: not remote_agents(lab_node) and not command_left(), 20), \
        "the agent or its command still runs after its controller was killed"
    again = converge(tmp_path, 'from converge import file\nfile("/srv/next", content="x")\n',
                     "--lock-timeout", "2", stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out, _ = again.communicate(timeout=120)
    assert again.returncode == 0, out
    # the killed run's journal (finished, interrupted) and this run's
    new = set(lab_node.run(["sh", "-c", journals]).stdout.split()) - before
    assert len(new) == 2 and all(name.endswith(".json") for name in new), new
