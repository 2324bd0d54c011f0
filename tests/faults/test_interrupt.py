"""Ctrl-C (SIGINT) or SIGTERM sent to a real `converge apply` in a lab node while an
`execute` command runs: the agent stops the command's process group, journals the
run as interrupted, says so, and exits 128 + the signal's number. Nothing waits for
time: the command announces itself through a fifo the test reads.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import threading
from pathlib import Path

import pytest

from converge.lab import Node
from converge.lab.idempotence import place_recipe
from converge.lab.node import _python_path
from tests.faults.helpers import TALLY, NodeProcess, in_node_converge

pytestmark = pytest.mark.lab

FIFO = "/tmp/cvg-ready"
RECIPE = """\
from converge import execute, file
file("/srv/cvg-before", content="before\\n")
execute(["sh", "-c", "sleep 600 & echo $! > %s; wait"], creates="/srv/cvg-never")
file("/srv/cvg-after", content="after\\n")
""" % FIFO


def read_fifo(node: Node, timeout: float = 120) -> str:
    """What the command writes into the fifo; opening it blocks until it does."""
    path = "/proc/%d/root%s" % (node.pid, FIFO)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(Path(path).read_text()), daemon=True)
    reader.start()
    reader.join(timeout)
    if reader.is_alive():
        with open(path, "w"):  # unblock the reader before failing
            pass
        pytest.fail("the command never started (no word on %s)" % FIFO)
    return got[0].strip()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_the_command_and_journals_the_run(lab_node: Node, tmp_path: Path,
                                                         signum: int) -> None:
    node = lab_node
    assert node.run(["mkfifo", FIFO]).returncode == 0
    recipe = tmp_path / "recipe.py"
    recipe.write_text(RECIPE)
    placed = place_recipe(node, recipe)
    run = NodeProcess(node, in_node_converge(placed), env=_python_path())
    sleeper = read_fifo(node)  # the command's own child, in its process group
    assert node.run(["kill", "-0", sleeper]).returncode == 0
    agent = run.child()
    assert agent is not None
    os.kill(agent, signum)
    code, out, err = run.finish()
    TALLY["interrupts"] += 1
    name = signal.Signals(signum).name
    assert code == 128 + signum, out + err
    assert "interrupted by %s" % name in err, err
    assert "during execute[sh -c" in err and "stopped its command (sh, process group" in err, err
    assert "the run is journaled as interrupted" in err, err
    assert node.run(["kill", "-0", sleeper]).returncode != 0, "the command's child lives on"
    assert node.run(["pgrep", "-x", "sleep"]).returncode == 1
    assert node.run(["test", "-e", "/srv/cvg-after"]).returncode == 1
    run_id = re.search(r"journaled as interrupted \(run (\S+):", err)
    assert run_id, err
    history = node.run([sys.executable, "-m", "converge", "history"], env=_python_path())
    line = [x for x in history.stdout.splitlines() if x.startswith(run_id.group(1))]
    assert line and "  INTERRUPTED  " in line[0], history.stdout + history.stderr
    journal = json.loads(node.read_file("/var/lib/converge/runs/%s.json" % run_id.group(1)))
    assert journal["interrupted"] is True
    execute = [r for r in journal["resources"] if r["id"].startswith("execute[")]
    assert execute[0]["status"] == "failed"
    assert execute[0]["error"].startswith("interrupted by %s; stopped its command" % name)
    assert "! " in out and "interrupted by %s; stopped its command" % name in out, out
