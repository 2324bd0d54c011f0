"""Helpers for the fault-injection tests.

- :class:`NodeProcess`: a command started inside a lab node that the test reads
  line by line and can kill -9 at a chosen line (the host sees its real pid).
- :func:`remote_agents`: host pids of the SSH agents running in a node.
- :func:`node_state`: every managed file's size and hash, leftover temp files and
  the run journals, read from the host through the node's root.
- :data:`TALLY`: the figures the session prints at its end (see conftest.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from converge.lab.node import DROPPED_CAPS, NODE_ENV, Node
from converge.recipe import compile_recipe

# Figures for the closing note: each test's share goes into its report under
# FIGURES_PROPERTY (faults/conftest.py), tests/conftest.py adds them up and prints them.
TALLY: Counter[str] = Counter()
FIGURES_PROPERTY = "fault_figures"

# (key in TALLY, what it counts), in the order printed
FIGURES = [
    ("trials", "kill -9 trials (local agent)"),
    ("ssh_trials", "kill -9 trials (agent over SSH)"),
    ("ssh_kills_too_late", "SSH kills retried: the agent had already finished"),
    ("disk_full_faults", "writes refused by a full disk"),
    ("ssh_cuts", "SSH links cut mid-run"),
    ("ssh_cut_detected_ms", "ms from the cut to the host reported failed"),
    ("package_faults", "package manager failures or agent kills mid-batch"),
    ("interrupts", "SIGINT/SIGTERM sent to a run during a command"),
    ("injected", "faults injected (all kinds)"),
    ("survived", "faults survived (every check held afterwards)"),
    ("files_checked", "managed files checked after a fault"),
    ("files_bad", "files lost or left partial"),
    ("temps_after_fault", "temp files left by killed writers"),
    ("temps_after_next_run", "temp files left after the next run"),
    ("journals_read", "journal files read back (JSON, or JSON lines)"),
    ("journals_torn_last_line", "write-ahead logs with a torn last line"),
    ("journals_bad", "journal files unreadable"),
    ("kills_after_the_journal_was_finished", "kills that came after the run's end"),
    ("next_runs", "next runs that converged"),
    ("rollbacks", "rollbacks after a fault that restored the files"),
]

# Where converge keeps its state in a node: backups, journals.
STATE_DIR = "/var/lib/converge"
RUNS_DIR = STATE_DIR + "/runs"



def node_argv(node: Node, argv: Sequence[str]) -> list[str]:
    """The host command that runs argv inside the node, as Node.run does."""
    drop = ",".join(f"-{cap}" for cap in DROPPED_CAPS)
    return ["nsenter", f"--target={node.pid}", "--mount", "--uts", "--ipc", "--net", "--pid",
            "--", "setpriv", f"--bounding-set={drop}", "--inh-caps=-all", "--", *argv]


class NodeProcess:
    """A command running in a node, its output read line by line as it comes (its
    standard input is a pipe, closed by :meth:`finish`).

    nsenter forks to enter the node's pid namespace, so the command is nsenter's
    child: :meth:`kill` sends SIGKILL to that child, the process that does the work.
    """

    def __init__(self, node: Node, argv: Sequence[str],
                 env: Mapping[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            node_argv(node, argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True, errors="replace", cwd="/",
            env={**NODE_ENV, "PYTHONUNBUFFERED": "1", **(env or {})})
        assert self.proc.stdout is not None
        self.stdout = self.proc.stdout
        self.seen: list[str] = []

    def lines(self) -> Iterator[str]:
        """Output lines as they are written (kept in ``seen``)."""
        for line in self.stdout:
            self.seen.append(line)
            yield line

    def child(self) -> int | None:
        """The host pid of the command (nsenter's child), or None once it is gone."""
        pid = self.proc.pid
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as fh:
                children = fh.read().split()
        except FileNotFoundError:
            return None
        return int(children[0]) if children else None

    def kill(self) -> bool:
        """SIGKILL the command; False when it had already finished."""
        pid = self.child()
        if pid is None:
            return False
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return False
        return True

    def finish(self, timeout: float = 60) -> tuple[int, str, str]:
        """Wait for the end: exit status (negative: killed by that signal) and output."""
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, "".join(self.seen) + out, err


def remote_agents(node: Node) -> list[int]:
    """Host pids of converge agents started over SSH in the node (python3 -I -S -c)."""
    namespace = os.readlink(f"/proc/{node.pid}/ns/pid")
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/ns/pid") != namespace:
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                argv = fh.read().split(b"\0")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if argv[:4] == [b"python3", b"-I", b"-S", b"-c"]:
            found.append(int(entry))
    return found


def is_temp(name: str) -> bool:
    """A temp file of a converge writer: write_atomic's ``.NAME.converge-PID-X.tmp``
    (and the older ``.converge-X.tmp``), or the journal's ``NAME.tmp-PID``."""
    tail = name.rpartition(".tmp-")[2]
    return (".converge-" in name and name.endswith(".tmp")) or (tail.isdigit() and tail != name)


def node_state(node: Node, managed: str, scan: Sequence[str] = ()) -> dict:
    """What a fault left in the node, read from the host through the node's root
    (/proc/PID/root: no process started in the node, so a check costs milliseconds):

    {"files": {path: (size, sha256)}, "temps": [temp files under ``scan``, by
    default ``managed`` and the state directory], "journals": {file name under
    runs/: read_journal()}}."""
    root = "/proc/%d/root" % node.pid
    files = {}
    folder = root + managed
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        path = os.path.join(folder, name)
        if os.path.isfile(path) and not is_temp(name):
            data = Path(path).read_bytes()
            files[managed + "/" + name] = (len(data), hashlib.sha256(data).hexdigest())
    temps = []
    for top in scan or (managed, STATE_DIR):
        for where, _, names in os.walk(root + top):
            temps += [os.path.join(where, n)[len(root):] for n in names if is_temp(n)]
    journals: dict[str, dict] = {}
    for where, _, names in os.walk(root + RUNS_DIR):
        for name in names:
            if not is_temp(name):
                journals[name] = read_journal(os.path.join(where, name))
    return {"files": files, "temps": sorted(temps), "journals": journals}


def read_journal(path: str) -> dict:
    """A journal file read back as converge's format says it must be readable:
    ``<id>.json`` one JSON document; ``<id>.partial`` (the write-ahead log of a run
    that did not finish) JSON lines, a header first, of which only the last line
    may be torn (a kill in the middle of an append). Returns the header's kind and
    finished fields and whether the last line was torn, or {"error": why}."""
    try:
        text = Path(path).read_text()
        if path.endswith(".json"):
            data = json.loads(text)
            return {"kind": data["kind"], "finished": data["finished"], "torn": False}
        lines = text.splitlines()
        entries, torn = [], False
        for number, line in enumerate(lines):
            try:
                entries.append(json.loads(line))
            except ValueError:
                if number != len(lines) - 1:
                    raise
                torn = True
        header = entries[0]["header"]
        return {"kind": header["kind"], "finished": header["finished"], "torn": torn}
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        return {"error": "%s: %s" % (type(exc).__name__, exc)}


def planned_files(recipe: Path, attrs: Mapping[str, str]) -> dict[str, tuple[int, str]]:
    """The (size, sha256) of every file the recipe declares, compiled on the host."""
    out = {}
    for step in compile_recipe(recipe, attrs=dict(attrs)).steps:
        if step.type == "file":
            content = step.props["content"]
            data = content.encode() if isinstance(content, str) else bytes(content)
            out[step.props["path"]] = (len(data), hashlib.sha256(data).hexdigest())
    return out


def in_node_converge(recipe: str, *args: str) -> list[str]:
    """argv of `converge apply` inside a node (the host's interpreter and converge)."""
    return [sys.executable, "-m", "converge", "apply", recipe, *args]
