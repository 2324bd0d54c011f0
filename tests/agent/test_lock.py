"""The run lock between real processes: a second run waits, gives up naming the
holder, gets the lock when the holder finishes, and a killed holder leaves no lock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterator, List

import pytest

from converge.agent.lock import RunLock
from converge.agent.system import System
from converge.errors import RunError

HOLDER = """
import sys
from converge.agent.lock import RunLock
from converge.agent.system import System
with RunLock(System(sys.argv[1]), 0):
    print("held", flush=True)
    sys.stdin.readline()
"""


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen]:
    """Another process holding the lock of the tree at tmp_path/root until told."""
    root = tmp_path / "root"
    root.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(root)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    with proc:
        yield proc
        if proc.poll() is None:
            proc.kill()


def test_a_second_run_gives_up_naming_the_holder(tmp_path: Path, holder: subprocess.Popen
                                                 ) -> None:
    system = System(str(tmp_path / "root"))
    lock = RunLock(system, timeout=0)
    assert lock.holder()["pid"] == holder.pid
    with pytest.raises(RunError) as caught:
        lock.acquire()
    message = str(caught.value)
    assert "pid %d, started %s" % (holder.pid, lock.holder()["started"]) in message
    assert "--lock-timeout" in message


def test_the_waiter_gets_the_lock_when_the_holder_finishes(tmp_path: Path,
                                                           holder: subprocess.Popen) -> None:
    notices: List[str] = []

    def notice(text: str) -> None:  # the waiter says it waits: let the holder finish
        notices.append(text)
        assert holder.stdin is not None
        holder.stdin.write("done\n")
        holder.stdin.flush()

    system = System(str(tmp_path / "root"))
    with RunLock(system, timeout=60, notice=notice) as lock:
        assert lock.holder()["pid"] != holder.pid
    assert len(notices) == 1
    assert notices[0].startswith("waiting for the converge run of pid %d (started " % holder.pid)
    assert holder.wait() == 0


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path, holder: subprocess.Popen
                                              ) -> None:
    holder.send_signal(signal.SIGKILL)
    assert holder.wait() == -signal.SIGKILL
    system = System(str(tmp_path / "root"))
    lock = RunLock(system, timeout=0)
    assert lock.holder()["pid"] == holder.pid  # the dead holder's record is still there
    with lock:  # taken at once: the kernel dropped the dead holder's flock
        assert lock.holder()["pid"] == os.getpid()
        with pytest.raises(RunError, match="pid %d, started" % os.getpid()):
            RunLock(System(str(tmp_path / "root")), timeout=0).acquire()


def test_apply_waits_then_exits_1_naming_the_holder(tmp_path: Path,
                                                    holder: subprocess.Popen) -> None:
    recipe = tmp_path / "recipe.py"
    recipe.write_text('from converge import file\nfile("/motd", content="x")\n')
    done = subprocess.run([sys.executable, "-m", "converge", "apply", "--root",
                           str(tmp_path / "root"), "--lock-timeout", "0.2", str(recipe)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    started = json.loads((tmp_path / "root/var/lib/converge/lock").read_text())["started"]
    assert done.stderr.count("waiting for the converge run of pid %d" % holder.pid) == 1
    assert "error: another converge run is changing this machine: pid %d, started %s; gave " \
           "up after waiting 0.2s" % (holder.pid, started) in done.stderr
    assert not (tmp_path / "root/motd").exists()
    assert done.stdout == ""  # no "Converged 0 resources" beside the error


def test_plan_does_not_wait_for_the_lock(tmp_path: Path, holder: subprocess.Popen) -> None:
    recipe = tmp_path / "recipe.py"
    recipe.write_text('from converge import file\nfile("/motd", content="x")\n')
    done = subprocess.run([sys.executable, "-m", "converge", "plan", "--root",
                           str(tmp_path / "root"), str(recipe)],
                          capture_output=True, text=True, timeout=30)  # waiting: 60s
    assert done.returncode == 0, done.stderr
    assert "would create new file /motd" in done.stdout and not done.stderr
