"""The transport contract over real sshd in lab nodes (issue 18): an error the agent
raises keeps its kind and words over SSH (a held run lock is the same RunError as
in a local run), and paramiko's failures become converge's own kinds, chained:
refused credentials an AuthError, a changed host key a HostKeyError."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import paramiko
import pytest

from converge.agent.system import System
from converge.errors import AuthError, HostKeyError, RunError
from converge.inventory import Host
from converge.lab import Lab, Node
from converge.plan import Plan, Step
from converge.transport.local import LocalTransport
from converge.transport.ssh import SSHTransport

pytestmark = pytest.mark.lab

PLAN = Plan([Step(id="file[/srv/locked]", type="file", action="create",
                  props={"path": "/srv/locked", "content": "x"})])
STAMP = {"pid": 4242, "started": "2026-01-02T03:04:05Z"}
# holds the run lock as a converge run does: flock, then its pid and start time
HOLD = """
import fcntl, os, sys, time
os.makedirs(os.path.dirname(sys.argv[1]), exist_ok=True)
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
os.ftruncate(fd, 0)
os.write(fd, sys.argv[2].encode() + b"\\n")
open(sys.argv[3], "w").close()
time.sleep(600)
"""


def host(lab: Lab, node: Node, **fields: str) -> Host:
    spec = {"address": node.address, "user": "root", "key": str(lab.key_path),
            "known_hosts": str(lab.known_hosts_path)}
    spec.update(fields)
    return Host(name=node.name, **spec)


def test_a_held_run_lock_is_the_same_error_locally_and_over_ssh(lab: Lab, lab_node: Node,
                                                                tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    local_lock = str(root) + System(str(root)).state_dir() + "/lock"
    ready = tmp_path / "held"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, local_lock, json.dumps(STAMP),
                               str(ready)])
    try:
        for _ in range(600):
            if ready.exists():
                break
            subprocess.run(["sleep", "0.05"], check=True)
        with pytest.raises(RunError) as local:
            LocalTransport(str(root), lock_timeout=0.2).run(PLAN)
    finally:
        holder.kill()
        holder.wait()

    done = lab_node.run(["sh", "-c", 'setsid python3 -c "$1" "$2" "$3" /tmp/held >/dev/null '
                         '2>&1 &', "sh", HOLD, "/var/lib/converge/lock", json.dumps(STAMP)])
    assert done.returncode == 0, done.stderr
    for _ in range(600):
        if lab_node.run(["test", "-e", "/tmp/held"]).returncode == 0:
            break
    transport = SSHTransport(host(lab, lab_node), lock_timeout=0.2)
    try:
        with pytest.raises(RunError) as remote:
            transport.run(PLAN)
    finally:
        transport.close()
    assert type(remote.value) is type(local.value) is RunError
    assert remote.value.message == local.value.message == (
        "another converge run is changing this machine: pid 4242, started "
        "2026-01-02T03:04:05Z; gave up after waiting 0.2s")
    assert remote.value.hint == local.value.hint == \
        "let it finish, or wait longer with --lock-timeout SECONDS"
    assert remote.value.host == lab_node.name
    assert str(remote.value).startswith("%s: another converge run" % lab_node.name)
    assert lab_node.run(["test", "-e", "/srv/locked"]).returncode == 1


def test_refused_credentials_are_an_auth_error(lab: Lab, lab_node: Node, tmp_path: Path
                                              ) -> None:
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)],
                   check=True, stdin=subprocess.DEVNULL)
    transport = SSHTransport(host(lab, lab_node, key=str(stranger)))
    with pytest.raises(AuthError) as refused:
        transport.facts()
    transport.close()
    assert str(refused.value).startswith(
        "%s: root@%s:22 refused our credentials: " % (lab_node.name, lab_node.address))
    assert "check the user and key" in str(refused.value)
    assert isinstance(refused.value.__cause__, paramiko.AuthenticationException)


def test_a_changed_host_key_is_a_host_key_error(lab: Lab, lab_node: Node, tmp_path: Path
                                               ) -> None:
    forged = paramiko.RSAKey.generate(1024)
    known = tmp_path / "known_hosts"
    for name in ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256"):  # whichever it offers
        with known.open("a") as fh:
            fh.write("%s %s %s\n" % (lab_node.address, name, forged.get_base64()))
    transport = SSHTransport(host(lab, lab_node, known_hosts=str(known)))
    with pytest.raises(HostKeyError) as changed:
        transport.facts()
    transport.close()
    assert str(changed.value).startswith(
        "%s: HOST KEY CHANGED for root@%s:22: " % (lab_node.name, lab_node.address))
    assert "ssh-keygen -R %s" % lab_node.address in str(changed.value)
    assert isinstance(changed.value.__cause__, paramiko.BadHostKeyException)
