"""The SSH connection cut mid-run while the agent keeps running on the target.

tests/lab/test_ssh.py kills sshd on the target (the controller sees the channel
close at once). Here the network goes instead: the victim node takes its own link
down, so no FIN or RST ever arrives and only a timeout can tell the controller.
It must report that host failed within a bounded time, the other host must
finish, the agent left on the target must leave every file whole, and once the
link is back a second run converges.
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from pathlib import Path
from typing import Any, Dict, List

import pytest

from converge.inventory import Host
from converge.lab import Lab, Node
from converge.runner import run
from converge.transport.ssh import SSHTransport
from tests.faults.helpers import TALLY, node_state, remote_agents

pytestmark = pytest.mark.lab

TIMEOUT = 2.0  # SSHTransport(timeout=): keepalives every 2 s, a dead link found in ~6 s
BOUND = 30.0  # the controller must have given up on the victim by then
FILES = 20
RECIPE = """\
from converge import directory, file
directory("/srv/cut")
file("/srv/cut/one", content="one\\n")
# waits on the target until the test has cut the victim's link and says go
file("/srv/cut/gate", content="gate\\n", only_if=["sh", "-c",
     "while [ ! -e /run/converge-go ]; do sleep 0.01; done"])
for i in range(%d):
    file("/srv/cut/f%%02d" %% i, content=("%%02d " %% i) * (1000 + 500 * i))
""" % FILES


def wanted() -> Dict[str, bytes]:
    files = {"/srv/cut/one": b"one\n", "/srv/cut/gate": b"gate\n"}
    for i in range(FILES):
        files["/srv/cut/f%02d" % i] = (b"%02d " % i) * (1000 + 500 * i)
    return files


def host(lab: Lab, node: Node) -> Host:
    return Host(name=node.name, address=node.address, user="root", key=str(lab.key_path),
                known_hosts=str(lab.known_hosts_path))


def wait_for(condition: Any, seconds: float) -> bool:
    """Poll a condition (no fixed sleep): True once it holds, False at the deadline."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return bool(condition())


def reachable(node: Node) -> bool:
    try:
        socket.create_connection((node.address, node.port), timeout=1).close()
    except OSError:
        return False
    return True


def test_link_cut_mid_run_fails_that_host_in_bounded_time(lab: Lab, tmp_path: Path) -> None:
    victim, other = lab.up(2)
    try:
        recipe = tmp_path / "recipe.py"
        recipe.write_text(RECIPE)
        other.write_file("/run/converge-go", b"")
        hosts = [host(lab, victim), host(lab, other)]
        cut: List[float] = []

        def on_event(name: str, event: Dict[str, Any]) -> None:
            if name == victim.name and event["id"] == "file[/srv/cut/one]":
                done = victim.run(["ip", "link", "set", "eth0", "down"])
                assert done.returncode == 0, done.stderr
                cut.append(time.monotonic())
                victim.write_file("/run/converge-go", b"")  # over nsenter, not the network

        result: Dict[str, Any] = {}
        worker = threading.Thread(target=lambda: result.update(outcome=run(
            recipe, [SSHTransport(h, timeout=TIMEOUT) for h in hosts], remote=True,
            on_event=on_event)), daemon=True)
        worker.start()
        worker.join(BOUND + 30)
        assert not worker.is_alive(), "the controller hung after the link was cut"
        assert cut, "the run never reached the cut"
        took = time.monotonic() - cut[0]
        TALLY["ssh_cuts"] += 1
        TALLY["injected"] += 1
        assert took < BOUND, "the controller took %.1fs to give up" % took
        TALLY["ssh_cut_detected_ms"] = int(took * 1000)
        report = result["outcome"].report["hosts"]
        assert "connection lost mid-run, after 2 of %d resources" % (FILES + 3) \
            in report[victim.name]["error"], report[victim.name]
        assert report[other.name]["summary"]["updated"] == FILES + 3
        assert "error" not in report[other.name]

        # the agent went on alone; once it is done every file is whole
        assert wait_for(lambda: not remote_agents(victim), 30), "the agent never finished"
        state = node_state(victim, "/srv/cut")
        whole = {p: (len(d), hashlib.sha256(d).hexdigest())
                 for p, d in wanted().items()}
        assert all(state["files"][p] == whole[p] for p in state["files"]), state["files"]
        assert state["temps"] == []
        TALLY["survived"] += 1

        assert victim.run(["ip", "link", "set", "eth0", "up"]).returncode == 0
        assert wait_for(lambda: reachable(victim), 30), "the victim's sshd never came back"
        again = run(recipe, [SSHTransport(h, timeout=TIMEOUT) for h in hosts], remote=True)
        assert not again.failed, again.report
        assert node_state(victim, "/srv/cut")["files"] == whole
        TALLY["next_runs"] += 1
    finally:
        lab.down([victim.name, other.name])
