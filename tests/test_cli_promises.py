"""Promises of docs/operations.md that only a whole `converge` process shows: Ctrl-C
exits 130, `history` exits 1 when a target cannot be read, `check` exits 1 on an
error and changes nothing (no file, no journal, no lock), rollback takes the run
lock."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Dict, Tuple

import pytest

MOTD = 'from converge import file\nfile("/etc/motd", content="new\\n")\n'


def converge(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "converge", *args], cwd=cwd,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/motd").write_text("old\n")
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc/group").write_text("root:x:0:\n")
    return root


def closed_port() -> int:
    """A port of 127.0.0.1 that nothing listens on (bound, never listened)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def unreachable_inventory(tmp_path: Path) -> Path:
    path = tmp_path / "inventory.yml"
    path.write_text(json.dumps({"hosts": {"gone": {
        "address": "127.0.0.1", "port": closed_port(), "user": "root"}}}))
    return path


def tree(root: Path) -> Dict[str, Tuple[int, int, bytes]]:
    """Every path under root: mode, mtime and content (files)."""
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        out[str(path)] = (st.st_mode, st.st_mtime_ns,
                          path.read_bytes() if path.is_file() else b"")
    return out


def test_ctrl_c_exits_130(tmp_path: Path, root: Path) -> None:
    fifo = tmp_path / "started"
    os.mkfifo(fifo)
    (tmp_path / "recipe.py").write_text(
        'from converge import execute, file\n'
        'file("/etc/motd", content="new\\n")\n'
        'execute(["sh", "-c", "echo $$ > %s; exec sleep 60"])\n' % fifo)
    run = subprocess.Popen([sys.executable, "-m", "converge", "apply", "--root", str(root),
                            "recipe.py"], cwd=tmp_path, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    with open(fifo) as started:  # the run is inside its second resource
        command = int(started.read())
    try:
        run.send_signal(signal.SIGINT)
        out, err = run.communicate(timeout=60)
    finally:
        try:
            os.kill(command, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert run.returncode == 130, (run.returncode, out, err)
    assert "Traceback" not in err
    # the run's journal says it was cut short (docs/operations.md: interrupted runs)
    history = converge("history", "--root", str(root), "--json", cwd=tmp_path)
    [entry] = json.loads(history.stdout)
    assert entry["interrupted"] is True, entry


def test_history_exits_1_when_a_target_cannot_be_read(tmp_path: Path) -> None:
    done = converge("history", "-i", str(unreachable_inventory(tmp_path)), cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "gone" in done.stdout + done.stderr


@pytest.mark.parametrize("recipe, message", [
    pytest.param('from converge import file\nfile("/etc/motd", content=1 +)\n',
                 "error: recipe.py:2: ", id="recipe-error"),
    pytest.param('from converge import file\n'
                 'file("/etc/motd", content="new\\n", owner="nobody-here")\n',
                 "! recipe.py:2: owner 'nobody-here' does not exist", id="resource-error"),
    pytest.param(MOTD, "! unreachable: cannot connect to root@127.0.0.1:",
                 id="unreachable-host"),
])
def test_check_exits_1_on_an_error_and_changes_nothing(tmp_path: Path, root: Path,
                                                       recipe: str, message: str) -> None:
    (tmp_path / "recipe.py").write_text(recipe)
    where = (["-i", str(unreachable_inventory(tmp_path))] if recipe == MOTD
             else ["--root", str(root)])
    before = tree(root)
    done = converge("check", *where, "recipe.py", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert message in done.stdout + done.stderr
    assert tree(root) == before


def test_check_on_drift_writes_and_journals_nothing(tmp_path: Path, root: Path) -> None:
    (tmp_path / "recipe.py").write_text(MOTD)
    before = tree(root)
    done = converge("check", "--root", str(root), "recipe.py", cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "would update content in file /etc/motd" in done.stdout
    assert tree(root) == before  # no file, no journal, no lock under var/lib/converge
    applied = converge("apply", "--root", str(root), "recipe.py", cwd=tmp_path)
    assert applied.returncode == 0 and (root / "var/lib/converge/runs").is_dir()
    before = tree(root)
    assert converge("check", "--root", str(root), "recipe.py", cwd=tmp_path).returncode == 0
    assert tree(root) == before


HOLDER = """
import sys
from converge.agent.lock import RunLock
from converge.agent.system import System
with RunLock(System(sys.argv[1]), 0):
    print("held", flush=True)
    sys.stdin.readline()
"""


def test_rollback_takes_the_run_lock(tmp_path: Path, root: Path) -> None:
    (tmp_path / "recipe.py").write_text(MOTD)
    assert converge("apply", "--root", str(root), "recipe.py", cwd=tmp_path).returncode == 0
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(root)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    with proc:
        assert proc.stdout is not None and proc.stdout.readline() == "held\n"
        before = tree(root)
        done = converge("rollback", "--root", str(root), "--lock-timeout", "0.2", cwd=tmp_path)
        after = tree(root)
        proc.kill()
    assert done.returncode == 1, done.stdout + done.stderr
    assert "waiting for the converge run of pid %d" % proc.pid in done.stderr
    assert "another converge run is changing this machine: pid %d" % proc.pid in done.stderr
    assert after == before and (root / "etc/motd").read_text() == "new\n"
    undone = converge("rollback", "--root", str(root), cwd=tmp_path)  # once the lock is free
    assert undone.returncode == 0, undone.stdout + undone.stderr
    assert (root / "etc/motd").read_text() == "old\n"
