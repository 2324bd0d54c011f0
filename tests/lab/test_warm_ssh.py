"""Warm connections (issue 24 item 1): a run leaves its SSH connection with this
user's broker, the next run reuses it; idle ones close and the broker exits; a
dead one is replaced silently; a changed host key is still refused; `converge
disconnect` and `lab down` close them; another user cannot use them.

Each test has a broker folder of its own (CONVERGE_SSH_DIR) and stops its broker
at the end (the ``warm`` fixture): the rest of the suite runs with
CONVERGE_SSH_PERSIST=no (tests/conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

from converge import launch, resident
from converge.lab import Lab, Node
from converge.transport import persist
from tests.conftest import Alice

pytestmark = pytest.mark.lab

RECIPE = """\
from converge import file
file("/srv/warm", content="warm\\n")
"""


class Warm:
    """Runs of converge with warm connections kept in ``folder``."""

    def __init__(self, tmp_path: Path, lab: Lab) -> None:
        self.tmp_path = tmp_path
        self.lab = lab
        self.folder = str(tmp_path / "ssh")
        self.env = {**os.environ, "CONVERGE_SSH_DIR": self.folder, "COLUMNS": "200"}
        del self.env["CONVERGE_SSH_PERSIST"]  # the users' default: 60 s
        self.recipe = tmp_path / "recipe.py"
        self.recipe.write_text(RECIPE)

    def inventory(self, nodes: List[Node]) -> Path:
        path = self.tmp_path / "inventory.yml"
        self.lab.write_inventory(path, nodes)
        return path

    def converge(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "converge", *args], capture_output=True,
                              text=True, cwd=self.tmp_path, env=self.env, timeout=120)

    def apply(self, nodes: List[Node], *args: str) -> subprocess.CompletedProcess:
        done = self.converge("apply", str(self.recipe), "-i", str(self.inventory(nodes)),
                             *args)
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    def pid(self) -> int:
        return int(Path(self.folder, persist.PIDFILE).read_text())

    def status(self) -> Dict[str, Any]:
        reply = persist.request({"op": "status"}, self.folder)
        assert reply is not None, "no broker runs"
        return reply


@pytest.fixture
def warm(tmp_path: Path, lab: Lab) -> Iterator[Warm]:
    runs = Warm(tmp_path, lab)
    try:
        yield runs
    finally:
        pidfile = Path(runs.folder, persist.PIDFILE)
        pid = int(pidfile.read_text()) if pidfile.exists() else 0
        persist.disconnect(folder=runs.folder)
        resident.stop(runs.folder)
        assert not pid or persist.wait_for_exit(pid, 30), "the broker is still running"
        assert not Path(runs.folder, launch.SOCKET).exists(), "the ready controller runs"


def sessions(node: Node) -> List[str]:
    """The pids of sshd's per-connection processes in the node (one per SSH
    connection open to it)."""
    done = node.run(["pgrep", "-f", "^sshd: root@notty"])
    return done.stdout.split()


def wait_for(condition: Any, seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_the_next_run_reuses_the_connection(warm: Warm, lab_node: Node) -> None:
    first = warm.apply([lab_node], "--json", "first.json", "--profile")
    assert "- update content in file /srv/warm" in first.stdout
    kept = sessions(lab_node)
    assert len(kept) == 1, kept  # the connection outlived the run
    second = warm.apply([lab_node], "--json", "second.json", "--profile")
    assert "(up to date)" in second.stdout and second.stderr == ""
    assert sessions(lab_node) == kept  # the same connection: no new key exchange
    report = json.loads((warm.tmp_path / "second.json").read_text())
    profile = report["hosts"][lab_node.name]["profile"]
    assert profile["connect"] == 0.0 and profile["auth"] == 0.0
    connections = warm.status()["connections"]
    assert [(c["hostname"], c["persist"]) for c in connections] == [(lab_node.address, 60.0)]


IMPORTS = ("import sys\nfrom converge.cli import main\ntry:\n    main(sys.argv[1:])\n"
           "except SystemExit:\n    pass\nprint('paramiko' in sys.modules, "
           "'cryptography' in sys.modules)")


def test_a_warm_run_does_not_load_paramiko(warm: Warm, lab_node: Node) -> None:
    """The run's own process relays through the broker: no paramiko, no cryptography
    to import (a direct run needs both)."""
    warm.apply([lab_node])
    inventory = str(warm.inventory([lab_node]))
    for args, loaded in (([], "False False"), (["--no-persist"], "True True")):
        done = subprocess.run([sys.executable, "-c", IMPORTS, "apply", str(warm.recipe), "-i",
                               inventory, *args], capture_output=True, text=True,
                              cwd=warm.tmp_path, env=warm.env, timeout=120)
        assert done.stdout.splitlines()[-1] == loaded, done.stdout + done.stderr
        assert "(up to date)" in done.stdout


def loaders(node: Node) -> List[str]:
    """The pids of agent loaders in the node (a run's, or one left ready)."""
    return node.run(["pgrep", "-f", "^python3 -I -S -c"]).stdout.split()


def test_the_next_run_takes_the_agent_left_ready(warm: Warm, lab_node: Node) -> None:
    warm.apply([lab_node])
    assert wait_for(lambda: len(loaders(lab_node)) == 1)  # the next run's, waiting
    ready = loaders(lab_node)
    assert [c["spares"] for c in warm.status()["connections"]] == [1]
    second = warm.apply([lab_node], "--json", "second.json", "--profile")
    assert second.stderr == "" and "(up to date)" in second.stdout
    profile = json.loads((warm.tmp_path / "second.json").read_text())
    assert profile["hosts"][lab_node.name]["profile"]["bundle_sent"] is False
    # it was taken (gone), and another one waits for the run after
    assert wait_for(lambda: len(loaders(lab_node)) == 1 and loaders(lab_node) != ready)
    warm.converge("disconnect")
    assert wait_for(lambda: not loaders(lab_node))  # nothing left on the target


def test_ready_agents_start_once_the_whole_run_has_ended(warm: Warm, lab: Lab) -> None:
    """A host done early gets its ready agent only when the run's last host is done:
    the agents a run leaves ready do not slow its other hosts."""
    early, late = nodes = lab.up(2)
    try:
        early.run(["touch", "/tmp/go"]).check_returncode()
        recipe = warm.tmp_path / "wait.py"
        recipe.write_text("from converge import execute\nexecute('until [ -e /tmp/go ]; do "
                          "sleep 0.05; done', shell=True, creates='/never')\n")
        warm.apply(nodes)  # the connections exist and are kept
        run = subprocess.Popen([sys.executable, "-m", "converge", "apply", str(recipe), "-i",
                                str(warm.inventory(nodes))], cwd=warm.tmp_path, env=warm.env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        def state() -> Dict[str, Any]:
            return {c["hostname"]: c for c in warm.status()["connections"]}

        # the early host's channel has ended, the late one's is still in flight
        assert wait_for(lambda: state()[early.address]["channels"] == 0
                        and state()[late.address]["channels"] == 1)
        status = warm.status()
        assert status["spares_due"] == 1  # waiting for the run's end, not started
        assert state()[early.address]["spares"] == 0
        late.run(["touch", "/tmp/go"]).check_returncode()
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0, out + err
        assert wait_for(lambda: all(c["spares"] == 1 for c in state().values()))
        assert warm.status()["spares_due"] == 0
    finally:
        lab.down([n.name for n in nodes])


def test_no_persist_keeps_nothing_and_starts_no_broker(warm: Warm, lab_node: Node) -> None:
    warm.apply([lab_node], "--no-persist")
    assert not Path(warm.folder, persist.SOCKET).exists()
    assert wait_for(lambda: not sessions(lab_node))


def test_an_idle_connection_closes_and_the_broker_exits(warm: Warm, lab_node: Node) -> None:
    warm.apply([lab_node])
    pid = warm.pid()
    warm.apply([lab_node], "--persist", "0.1s")  # the latest run's timeout counts
    assert persist.wait_for_exit(pid, 30), "the broker outlived its idle timeout"
    ready = Path(warm.folder, launch.SOCKET)  # and so did the ready controller
    assert wait_for(lambda: not ready.exists())
    assert sorted(os.listdir(warm.folder)) == [persist.LOG, resident.SPAWN_LOCK,
                                               persist.SPAWN_LOCK]
    assert wait_for(lambda: not sessions(lab_node))  # the node's end is gone too


def test_disconnect_closes_every_warm_connection(warm: Warm, lab: Lab) -> None:
    nodes = lab.up(2)
    try:
        warm.apply(nodes)
        pid = warm.pid()
        assert len(warm.status()["connections"]) == 2
        done = warm.converge("disconnect")
        assert done.returncode == 0 and done.stdout == "closed 2 warm connections\n"
        assert persist.wait_for_exit(pid, 30)
        for node in nodes:
            assert wait_for(lambda n=node: not sessions(n))
        again = warm.converge("disconnect")
        assert again.stdout == "closed 0 warm connections\n"
    finally:
        lab.down([n.name for n in nodes])


def test_lab_down_closes_the_connections_to_its_nodes(warm: Warm, lab: Lab,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    nodes = lab.up(2)
    try:
        warm.apply(nodes)
        pid = warm.pid()
        monkeypatch.setenv("CONVERGE_SSH_DIR", warm.folder)  # lab.down() runs here
        lab.down([nodes[0].name])
        assert [c["hostname"] for c in warm.status()["connections"]] == [nodes[1].address]
        lab.down([nodes[1].name])
        assert persist.wait_for_exit(pid, 30)  # no connection left: the broker exits
    finally:
        lab.down([n.name for n in nodes if n.alive])


def test_a_dead_connection_is_replaced_without_an_error(warm: Warm, lab_node: Node) -> None:
    warm.apply([lab_node])
    kept = sessions(lab_node)
    lab_node.run(["kill", "-9", *kept]).check_returncode()  # the server's end dies
    second = warm.apply([lab_node])
    assert second.stderr == "" and "(up to date)" in second.stdout
    assert sessions(lab_node) and sessions(lab_node) != kept


def test_a_connection_that_stopped_answering_is_replaced(warm: Warm, lab_node: Node) -> None:
    """Its TCP link still up (the kernel acks), its sshd frozen: the session it is
    asked for does not open within broker.REUSE_TIMEOUT, and a new connection serves
    the run, without an error."""
    warm.apply([lab_node])
    kept = sessions(lab_node)
    lab_node.run(["kill", "-STOP", *kept]).check_returncode()
    try:
        second = warm.apply([lab_node])
        assert second.stderr == "" and "(up to date)" in second.stdout
        fresh = [pid for pid in sessions(lab_node) if pid not in kept]
        assert len(fresh) == 1, (kept, sessions(lab_node))
    finally:
        lab_node.run(["kill", "-KILL", *kept])


def test_the_host_key_is_still_checked_against_known_hosts(warm: Warm, lab: Lab,
                                                          lab_node: Node) -> None:
    """A warm connection is used only while known_hosts records the key it was made
    with: a key changed there ends it, and the new connection is refused."""
    warm.apply([lab_node])
    other = warm.tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)],
                   check=True)
    known = warm.tmp_path / "known_hosts"
    keytype, key = other.with_suffix(".pub").read_text().split()[:2]
    known.write_text("%s %s %s\n" % (lab_node.address, keytype, key))
    inventory = warm.tmp_path / "changed.yml"
    inventory.write_text(json.dumps({"hosts": {lab_node.name: {
        "address": lab_node.address, "user": "root", "key": str(lab.key_path),
        "known_hosts": str(known)}}}))
    done = warm.converge("apply", str(warm.recipe), "-i", str(inventory))
    assert done.returncode == 1
    assert "HOST KEY CHANGED for root@%s:22" % lab_node.address in done.stdout


def test_a_become_password_only_passes_through_the_broker(warm: Warm, lab: Lab,
                                                          lab_node: Node,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    from converge.inventory import Host
    from converge.runner import run
    from tests.lab.test_ssh import add_user

    add_user(lab_node, lab, "ops", sudo="ALL", password="s3cret pass")
    monkeypatch.setenv("CONVERGE_VAULT_PASSWORD", "vault s3cret")  # not the broker's
    host = Host(name=lab_node.name, address=lab_node.address, user="ops",
                key=str(lab.key_path), known_hosts=str(lab.known_hosts_path), become=True,
                vars={"token": "var s3cret"})

    def transport(password: str) -> Any:
        from converge.transport.ssh import SSHTransport

        return SSHTransport(host, become_password=password, persist=60.0,
                            persist_dir=warm.folder)

    first = transport("s3cret pass")
    assert not run(warm.recipe, [first], remote=True).failed
    again = transport("s3cret pass")
    assert not run(warm.recipe, [again], remote=True).failed
    assert again.reused  # the same connection, sudo asked again through the relay
    wrong = run(warm.recipe, [transport("nope")], remote=True)
    assert "sudo refused the become password" in wrong.report["hosts"][lab_node.name]["error"]
    pid = warm.pid()
    seen = b"".join(Path("/proc/%d/%s" % (pid, name)).read_bytes()
                    for name in ("environ", "cmdline"))
    seen += Path(warm.folder, persist.LOG).read_bytes()
    assert b"s3cret" not in seen


BROKER_IN_NODE = textwrap.dedent("""\
    import json, os, socket, subprocess, sys
    from converge.transport import persist

    folder = persist.directory()  # root's own: /root/.cache/converge/ssh
    mine = persist.connect(folder)  # starts the broker and keeps it busy
    pid = int(open(os.path.join(folder, persist.PIDFILE)).read())
    alice = ["runuser", "-u", "alice", "--", "/usr/bin/python3", "-c", sys.argv[1]]
    found = {"folder": folder}
    found["closed"] = json.loads(subprocess.run(
        alice + [os.path.join(folder, persist.SOCKET)], capture_output=True, text=True,
        check=True).stdout)
    # Were the socket reachable (every folder down to it opened, the socket 0777),
    # the broker would still refuse her: SO_PEERCRED says she is not root.
    opened = ["/root", "/root/.cache", "/root/.cache/converge", folder]
    modes = [os.stat(path).st_mode & 0o7777 for path in opened]
    for path in opened:
        os.chmod(path, 0o711)
    os.chmod(os.path.join(folder, persist.SOCKET), 0o777)
    found["reachable"] = json.loads(subprocess.run(
        alice + [os.path.join(folder, persist.SOCKET)], capture_output=True, text=True,
        check=True).stdout)
    # And the other way round: a socket of hers in root's broker folder is refused.
    fake = "/root/fake-ssh"
    os.mkdir(fake)
    os.chmod(fake, 0o777)
    listener = subprocess.Popen(["runuser", "-u", "alice", "--", "/usr/bin/python3", "-c",
                                 sys.argv[2], os.path.join(fake, persist.SOCKET)],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert listener.stdout.readline() == "listening\\n"
        os.chmod(fake, 0o700)  # private again, root's: only the socket is hers
        for path, mode in zip(opened, modes):
            os.chmod(path, mode)
        try:
            persist.connect(fake, start=False)
            found["fake"] = "used"
        except persist.PersistError as exc:
            found["fake"] = str(exc)
    finally:
        listener.kill()
    found["status"] = persist._call(mine, {"op": "status"})
    mine.close()
    found["exited"] = persist.wait_for_exit(pid, 30)
    print(json.dumps(found))
    """)

ALICE_TRIES = textwrap.dedent("""\
    import json, socket, sys
    found = {}
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.connect(sys.argv[1])
    except OSError as exc:
        found["connect"] = exc.strerror
    else:
        found["connect"] = "connected"
        sock.settimeout(30)
        try:
            sock.sendall(b'{"op": "status"}\\n')
            found["reply"] = sock.recv(4096).decode()
        except OSError as exc:
            found["reply"] = "error: " + (exc.strerror or str(exc))
    print(json.dumps(found))
    """)

ALICE_LISTENS = textwrap.dedent("""\
    import socket, sys
    server = socket.socket(socket.AF_UNIX)
    server.bind(sys.argv[1])
    server.listen(1)
    print("listening", flush=True)
    while True:
        server.accept()[0].sendall(b'{"settings": {}}\\n')
    """)


def test_another_user_cannot_use_roots_warm_connections(alice: Alice) -> None:
    node = alice.node
    done = node.run([sys.executable, "-c", BROKER_IN_NODE, ALICE_TRIES, ALICE_LISTENS],
                    timeout=120)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["folder"] == "/root/.cache/converge/ssh"
    assert found["closed"] == {"connect": "Permission denied"}  # the 0700 folder
    assert found["reachable"]["connect"] == "connected"  # and hung up on, unanswered:
    assert found["reachable"]["reply"] in ("", "error: Connection reset by peer",
                                           "error: Broken pipe")  # (as the race goes)
    assert found["fake"] == ("the broker at /root/fake-ssh/broker.sock runs as uid %d, not "
                             "as this user (0): refused" % alice.uid)
    assert found["status"]["connections"] == []  # root's own client was served
    assert found["exited"] is True
    mode = node.run(["stat", "-c", "%a %U", "/root/.cache/converge/ssh"]).stdout.split()
    assert mode == ["700", "root"]
