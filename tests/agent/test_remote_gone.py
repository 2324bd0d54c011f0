"""An agent whose controller is gone (its standard output lost its reader, as
when sshd closes the session): it kills the command it runs, with its process
group, and ends, so the run lock is free. The same over real SSH, with a killed
controller, is tests/lab/test_live_ssh.py; here the agent's stdout is a pipe the
test closes. The command is a `sleep` on this machine: it changes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from converge.agent.lock import RunLock
from converge.agent.system import System
from converge.recipe import compile_recipe
from tests.procs import exits_within

AGENT = ("import sys\nfrom converge.agent.remote import main\n"
         "sys.exit(main(sys.stdin.buffer.readline(), sys.stdout.buffer))\n")


def alive(pid: int) -> bool:
    try:
        with open("/proc/%d/stat" % pid) as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def test_an_agent_without_a_reader_kills_its_command_and_frees_the_lock(tmp_path: Path
                                                                       ) -> None:
    pidfile = tmp_path / "pid"
    recipe = tmp_path / "recipe.py"
    recipe.write_text("from converge import execute\nexecute(['sh', '-c', 'echo $$ > %s; "
                      "exec sleep 4244'])\n" % pidfile)
    plan = compile_recipe(recipe)
    request = {"op": "run", "mode": "apply", "plan": plan.to_dict(), "lock_timeout": 0}
    agent = subprocess.Popen([sys.executable, "-c", AGENT], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert agent.stdin is not None and agent.stdout is not None
        agent.stdin.write(json.dumps(request).encode() + b"\n")
        agent.stdin.flush()
        deadline = time.monotonic() + 30
        while not pidfile.exists() or not pidfile.read_text().strip():
            assert time.monotonic() < deadline and agent.poll() is None, "never started"
            time.sleep(0.02)
        command = int(pidfile.read_text())
        assert alive(command)
        agent.stdout.close()  # the controller is gone
        agent.wait(timeout=15)
        assert exits_within(command, 10)  # SIGKILLed: may still be exiting
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
        for pipe in (agent.stdin, agent.stdout):
            if pipe is not None:
                pipe.close()
    lock = RunLock(System(), timeout=0)
    lock.acquire()  # free: the agent ended
    lock.release()
    runs = Path(os.environ["CONVERGE_STATE_DIR"]) / "runs"
    [journal] = [json.loads(p.read_text()) for p in runs.glob("*.json")]
    assert journal["interrupted"] is True
