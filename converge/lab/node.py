"""A running lab node, and how the host reaches into it without SSH."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, overload

from converge.lab import _coverage
from converge.lab.errors import LabError

# Capabilities that act beyond any namespace; no process in a node has them.
DROPPED_CAPS = {
    "sys_module": 16, "sys_rawio": 17, "sys_boot": 22, "sys_time": 25,
    "audit_control": 30, "mac_override": 32, "mac_admin": 33, "syslog": 34,
    "wake_alarm": 35, "block_suspend": 36,
}
# Daemons a node cannot give what they need, and why: what `converge test` says when
# one of them is not running after a run (service name: what the daemon needs).
LAB_LIMITS = {
    name: "it sets the system clock, which needs CAP_SYS_TIME, and lab nodes do not have "
          "it (the clock is this machine's): chronyd exits at start in a lab node; test "
          "time daemons on a machine or VM of their own"
    for name in ("chrony", "chronyd", "ntp", "ntpd", "ntpsec", "openntpd",
                 "systemd-timesyncd")
}
NODE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NODE_ENV = {"PATH": NODE_PATH, "HOME": "/root", "LANG": "C.UTF-8", "USER": "root",
            "LOGNAME": "root", "SHELL": "/bin/bash"}
# Where a node from an image sees converge's package (read-only): its python3 runs it.
IMAGE_PYTHONPATH = "/usr/local/lib/converge-lab"


def _python_path() -> dict[str, str]:
    """The controller's PYTHONPATH, so `python3 -m converge` in a node runs the same
    converge as the controller (a checkout other than the installed one, say)."""
    path = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": path} if path else {}


def process_start(pid: int) -> int | None:
    """The start time of a live (not zombie) process, or None: guards against pid reuse."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


@dataclass(frozen=True)
class Node:
    """A lab node: its name, address on its /30, and its PID 1 on the host."""

    name: str
    address: str
    pid: int
    start: int
    host_address: str
    link: str
    port: int = 22
    image: str = ""  # the lab image it started from (debian-12), or "" (this machine's root)

    @property
    def alive(self) -> bool:
        return process_start(self.pid) == self.start

    def check_alive(self) -> None:
        """Raise if the node's PID 1 is gone (killed, or exited)."""
        if not self.alive:
            raise LabError(
                f"lab node {self.name} died (its PID 1, {self.pid}, is gone); "
                f"remove it with `converge lab down {self.name}` and bring up a new one"
            )

    @overload
    def run(
        self,
        argv: Sequence[str],
        input: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        text: Literal[True] = True,
    ) -> subprocess.CompletedProcess[str]: ...

    @overload
    def run(
        self,
        argv: Sequence[str],
        input: str | bytes | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        *,
        text: Literal[False],
    ) -> subprocess.CompletedProcess[bytes]: ...

    def run(
        self,
        argv: Sequence[str],
        input: str | bytes | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        text: bool = True,
    ) -> subprocess.CompletedProcess[str] | subprocess.CompletedProcess[bytes]:
        """Run argv inside the node (its namespaces, its root, its capabilities)."""
        self.check_alive()
        drop = ",".join(f"-{cap}" for cap in DROPPED_CAPS)
        command = [
            "nsenter", f"--target={self.pid}", "--mount", "--uts", "--ipc", "--net", "--pid",
            "--", "setpriv", f"--bounding-set={drop}", "--inh-caps=-all", "--",
            *argv,
        ]
        python_path = {"PYTHONPATH": IMAGE_PYTHONPATH} if self.image else _python_path()
        measured = {} if self.image else _coverage.node_env()  # an image's python3: none
        environ = {**NODE_ENV, **python_path, **measured, **(env or {})}
        if not text:
            data = input.encode() if isinstance(input, str) else input
            return subprocess.run(command, input=data, capture_output=True, timeout=timeout,
                                  env=environ, cwd="/")
        if isinstance(input, bytes):
            raise TypeError("input is bytes: run it with text=False")
        return subprocess.run(command, input=input, capture_output=True, timeout=timeout,
                              text=True, errors="replace", env=environ, cwd="/")

    def read_file(self, path: str) -> bytes:
        """A file's content as the node sees it."""
        done = self.run(["cat", "--", path], text=False)
        if done.returncode != 0:
            raise FileNotFoundError(f"{self.name}:{path}: {done.stderr.decode().strip()}")
        return done.stdout

    def write_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        """Write a file inside the node (parent directories included)."""
        parent = os.path.dirname(path) or "/"
        done = self.run(
            ["sh", "-c", 'mkdir -p "$1" && cat > "$2" && chmod "$3" "$2"', "sh",
             parent, path, f"{mode:o}"],
            input=data, text=False,
        )
        if done.returncode != 0:
            raise LabError(f"cannot write {self.name}:{path}: {done.stderr.decode().strip()}")
