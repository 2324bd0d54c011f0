"""The ready controller (converge/resident.py, converge/launch.py): runs handed to a
process that has converge imported behave exactly as runs done by themselves.

Local runs on temporary folders (``--root``), real processes, real signals."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, Iterator, List

import pytest

from converge import launch, resident
from converge.transport import persist

RECIPE = """\
import json, os, sys
from converge import file
os.makedirs("marks", exist_ok=True)
mask = os.umask(0)
os.umask(mask)
with open("marks/%d" % os.getpid(), "w") as fh:  # which process compiled it
    fh.write(json.dumps({"cwd": os.getcwd(), "var": os.environ.get("RESIDENT_VAR"),
                         "umask": mask, "argv": sys.argv[1:2]}))
file("/etc/motd", content=os.environ.get("RESIDENT_VAR", "none") + "\\n")
"""
SLEEPER = RECIPE + """\
from converge import execute
execute("touch STARTED && exec sleep 300", shell=True, creates="/never")
"""


class Ready:
    """A ready controller in a private folder, and runs that may be handed to it."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.folder = tmp_path / "ssh"
        self.folder.mkdir(mode=0o700)
        (tmp_path / "root/etc").mkdir(parents=True)
        self.recipe = tmp_path / "recipe.py"
        self.recipe.write_text(RECIPE)
        self.env = {**os.environ, "CONVERGE_SSH_DIR": str(self.folder),
                    "RESIDENT_VAR": "from-the-run"}
        self.env.pop("CONVERGE_SSH_PERSIST")  # the users' default: kept 60 s

    @property
    def socket(self) -> Path:
        return self.folder / launch.SOCKET

    def start(self) -> int:
        resident.start(str(self.folder), 60.0)
        assert self.socket.exists()
        return self.pid()

    def pid(self) -> int:
        """The ready controller's process id (from the socket's holder)."""
        done = subprocess.run(["fuser", str(self.socket)], capture_output=True, text=True)
        return int(done.stdout.split()[0])

    def popen(self, *args: str, **env: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "converge", *args],
                                cwd=self.tmp_path, env={**self.env, **env}, text=True,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        """The command's result; its ``args`` are its process id."""
        proc = self.popen(*args, **env)
        out, err = proc.communicate(timeout=120)
        return subprocess.CompletedProcess(proc.pid, proc.returncode, out, err)

    def marks(self) -> Dict[int, Dict[str, object]]:
        folder = self.tmp_path / "marks"
        found = {int(p.name): json.loads(p.read_text()) for p in folder.iterdir()} \
            if folder.exists() else {}
        for path in folder.glob("*"):
            path.unlink()
        return found


@pytest.fixture
def ready(tmp_path: Path) -> Iterator[Ready]:
    made = Ready(tmp_path)
    try:
        yield made
    finally:
        resident.stop(str(made.folder))
        assert not made.socket.exists()


def apply(ready: Ready, *extra: str) -> List[str]:
    return ["apply", "--root", str(ready.tmp_path / "root"), str(ready.recipe), *extra]


def test_a_run_handed_over_is_the_run_done_by_itself(ready: Ready) -> None:
    """Same output, exit status, files and environment; but another process ran it:
    one forked by the ready controller, not the one started."""
    motd = ready.tmp_path / "root/etc/motd"
    alone = ready.run(*apply(ready, "--detailed-exitcode"), CONVERGE_SSH_PERSIST="no")
    assert alone.returncode == 2, alone.stderr
    assert list(ready.marks()) == [alone.args]  # compiled in the process started
    motd.unlink()  # the same change again

    ready.start()
    handed = ready.run(*apply(ready, "--detailed-exitcode"))
    assert handed.returncode == 2, handed.stderr
    assert motd.read_text() == "from-the-run\n"
    (pid, seen), = ready.marks().items()
    assert pid != handed.args  # compiled in the fork, not in the process started
    assert seen == {"cwd": str(ready.tmp_path), "var": "from-the-run", "umask": 0o022,
                    "argv": ["apply"]}
    assert seconds_aside(handed.stdout) == seconds_aside(alone.stdout)
    assert handed.stderr == alone.stderr == ""

    again = ready.run(*apply(ready, "--detailed-exitcode"))
    assert again.returncode == 0 and "(up to date)" in again.stdout
    assert list(ready.marks()) != [again.args]


def seconds_aside(output: str) -> str:
    return re.sub(r"in [0-9.]+s$", "in Ns", output.strip())


def test_its_umask_and_a_compile_error_are_the_runs_own(ready: Ready) -> None:
    ready.start()
    bad = ready.tmp_path / "bad.py"
    bad.write_text("from converge import file\nfile('/etc/x', mode='0999')\n")
    alone = ready.run("apply", "--root", str(ready.tmp_path / "root"), str(bad),
                      CONVERGE_SSH_PERSIST="no")
    handed = ready.run("apply", "--root", str(ready.tmp_path / "root"), str(bad))
    assert handed.returncode == alone.returncode == 1
    assert handed.stdout == alone.stdout and handed.stderr == alone.stderr
    assert "bad.py:2" in handed.stderr
    proc = subprocess.Popen(["sh", "-c", "umask 027 && exec \"$@\"", "sh", sys.executable,
                             "-m", "converge", *apply(ready)], cwd=ready.tmp_path,
                            env=ready.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.communicate(timeout=120)
    assert proc.returncode == 0
    (_, seen), = ready.marks().items()
    assert seen["umask"] == 0o027


def test_a_run_of_another_setup_is_done_by_itself_and_the_stale_one_exits(ready: Ready
                                                                         ) -> None:
    """PYTHONHASHSEED stands for anything the stamp covers (converge's files, the
    interpreter, sys.path): the ready controller does not run it, and exits."""
    pid = ready.start()
    done = ready.run(*apply(ready), PYTHONHASHSEED="7")
    assert done.returncode == 0, done.stderr
    assert list(ready.marks()) == [done.args]  # run by the process started
    assert persist.wait_for_exit(pid, 30), "the stale ready controller still runs"
    assert not ready.socket.exists()


def sleeping_run(ready: Ready) -> subprocess.Popen:
    """A handed-over run, once its execute is sleeping on the machine."""
    ready.start()
    started = ready.tmp_path / "started"
    ready.recipe.write_text(SLEEPER.replace("STARTED", str(started)))
    proc = ready.popen(*apply(ready))
    assert wait_for(started.exists)
    return proc


def test_ctrl_c_reaches_the_run(ready: Ready) -> None:
    proc = sleeping_run(ready)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert "interrupted" in err
    (pid, _), = ready.marks().items()
    assert wait_for(lambda: not alive(pid))


def test_a_killed_caller_stops_its_run(ready: Ready) -> None:
    proc = sleeping_run(ready)
    (pid, _), = ready.marks().items()
    assert alive(pid)
    proc.kill()
    proc.communicate(timeout=60)
    assert wait_for(lambda: not alive(pid)), "the run outlived its caller"


def test_prompts_and_no_persist_are_not_handed_over(ready: Ready,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    ready.start()
    for extra in (["--no-persist"], ["--persist", "no"], ["--persist=0"]):
        done = ready.run(*apply(ready, *extra))
        assert done.returncode == 0, done.stderr
        assert list(ready.marks()) == [done.args]  # run by the process started
    monkeypatch.delenv("CONVERGE_SSH_PERSIST")
    assert launch.keep_seconds(["apply", "--ask-vault-pass"]) == 60.0
    assert not launch.keep_seconds(["apply", "--persist", "no"])
    assert launch.keep_seconds(["apply", "--persist", "5m"]) == 300.0


def test_another_user_gets_no_answer_and_nothing_secret_is_kept(ready: Ready) -> None:
    pid = ready.start()
    done = ready.run(*apply(ready), CONVERGE_VAULT_PASSWORD="s3cret-value")
    assert done.returncode == 0
    environ = Path("/proc/%d/environ" % pid).read_bytes()
    cmdline = Path("/proc/%d/cmdline" % pid).read_bytes()
    assert b"s3cret-value" not in environ + cmdline
    assert b"RESIDENT_VAR" not in environ
    # a ready controller whose socket another user could reach (never so: its folder
    # and socket are 0700): that user's process gets no answer at all
    folder = tempfile.mkdtemp(prefix="converge-ready-", dir="/tmp")
    try:
        resident.start(folder, 60.0)
        path = os.path.join(folder, launch.SOCKET)
        os.chmod(folder, 0o711)
        os.chmod(path, 0o777)
        probe = ("import socket, sys; s = socket.socket(socket.AF_UNIX); "
                 "s.connect(sys.argv[1]); s.settimeout(30); print(repr(s.recv(16)))")
        nobody = subprocess.run(["/usr/bin/python3", "-c", probe, path], user=65534,
                                group=65534, extra_groups=[], capture_output=True,
                                text=True, timeout=60)
        assert nobody.stdout == "b''\n", nobody.stderr
        os.chmod(folder, 0o700)
        assert resident.stop(folder)  # it was still there, serving its own user
    finally:
        os.chmod(folder, 0o700)
        resident.stop(folder)
        shutil.rmtree(folder)


def test_disconnect_stops_it(ready: Ready) -> None:
    pid = ready.start()
    done = ready.run("disconnect")
    assert done.returncode == 0
    assert not alive(pid) and not ready.socket.exists()


def wait_for(condition: "object", seconds: float = 60.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def alive(pid: int) -> bool:
    try:
        stat = Path("/proc/%d/stat" % pid).read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_it_has_loaded_what_a_run_would_load_itself() -> None:
    """converge alone loads resource types, their DSL functions, their properties'
    types and the agent bundle when a run needs them (issue 24, start-up); the ready
    controller has them all loaded once, so that its forks do not each load them."""
    code = ("import sys\nfrom converge import resident\nresident._preload()\n"
            "from converge import dsl\nfrom converge.transport import bundle\n"
            "from converge.resources._base import REGISTRY\n"
            "print(sorted(set(dict.keys(REGISTRY)) - set(dsl.FUNCTIONS)),"
            " 'converge.resources.sysctl' in sys.modules, bundle._cached.cache_info().currsize,"
            " '_hints' in REGISTRY['cron'].__dict__)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(env, PYTHONPATH=str(Path(__file__).resolve().parent.parent)),
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[] True 1 True\n"


def test_the_runs_output_ends_when_the_caller_exits(ready: Ready) -> None:
    """A pipe's reader sees the end of the output when the command exits, as with a
    run done by itself: the fork has let go of the caller's streams by then (under
    coverage, as CI runs the suite, the fork's own exit is slow enough that it would
    still hold the pipe otherwise)."""
    ready.start()
    proc = ready.popen(*apply(ready))
    assert proc.stdout is not None
    pipe = "pipe:[%d]" % os.fstat(proc.stdout.fileno()).st_ino
    assert proc.wait(timeout=120) == 0
    holders = []
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        try:
            if os.readlink(fd) == pipe and fd.parts[2] != str(os.getpid()):
                holders.append(fd.parts[2])
        except OSError:
            continue
    assert holders == []
    assert "Converged" in proc.stdout.read()
    proc.communicate()
