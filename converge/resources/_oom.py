"""Processes and their OOM-killer adjustment, for ``oom_protect``: matching command
lines as ``pgrep -f`` does, the agent's own ancestry (never touched), the legacy
``oom_adj`` scale, and the cron line that re-applies a setting every minute.
Standard library only, Python 3.8.
"""

from __future__ import annotations

import os
import re
from typing import Any, Dict, List, Optional, Set, Tuple

# What a cron entry runs every minute (through /bin/sh) to re-apply a setting: fixed
# code, with the score (an integer), the pattern (as hex, so no character of it
# can mean anything to sh or cron) and the uids whose processes may be adjusted (a
# comma-separated list of numbers) as its only arguments. A process counts as a
# user's when all its uids (real, effective, saved, filesystem) are that user's.
REAPPLY = """\
import os, re, sys
score, regex, me = int(sys.argv[1]), re.compile(bytes.fromhex(sys.argv[2]).decode()), os.getpid()
uids = set(sys.argv[3].split(","))
for pid in os.listdir("/proc"):
    if not pid.isdigit() or int(pid) == me:
        continue
    try:
        with open("/proc/" + pid + "/cmdline", "rb") as fh:
            line = fh.read().replace(b"\\0", b" ").decode(errors="replace").strip()
        if not line or not regex.search(line):
            continue
        with open("/proc/" + pid + "/status") as fh:
            owner = [x.split()[1:] for x in fh if x.startswith("Uid:")]
        if not owner or not set(owner[0]) <= uids:
            continue
        if os.path.exists("/proc/" + pid + "/oom_score_adj"):
            with open("/proc/" + pid + "/oom_score_adj", "w") as fh:
                fh.write(str(score))
        else:
            with open("/proc/" + pid + "/oom_adj", "w") as fh:
                fh.write(str(max(-17, min(15, round(score * 17 / 1000)))))
    except OSError:
        pass
"""


def reapply_argument() -> str:
    """REAPPLY as one line for ``python3 -c``: exec("...") with escaped newlines.
    It holds no ' (it sits between sh single quotes) and no % (cron's newline)."""
    text = REAPPLY.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    assert "'" not in text and "%" not in text
    return 'exec("%s")' % text


def cmdline(system: Any, pid: int) -> Optional[str]:
    """The command line as pgrep -f sees it (NULs as spaces), or None for kernel
    threads and processes that are gone."""
    data = _read(system, "/proc/%d/cmdline" % pid)
    if not data:
        return None
    return data.replace("\0", " ").strip() or None


def _read(system: Any, path: str) -> Optional[str]:
    try:
        text: Optional[str] = system.read_text(path)
    except OSError:  # ESRCH, EACCES: the process is gone or not ours to read
        return None
    return text


def pids(system: Any) -> List[int]:
    return sorted(int(d) for d in system.listdir("/proc") if d.isdigit())


def protected(system: Any) -> Set[int]:
    """This agent and the chain that started it (shell, sudo, timeout, sshd session):
    never adjusted, whatever matches. The walk stops below the first ancestor that
    init started (or that came from outside this pid namespace): that is a daemon
    such as sshd's listener or cron, not part of this run, and shielding sshd's
    listener is what a recipe pushed over SSH usually asks for."""
    out: Set[int] = set()
    pid = os.getpid()
    while pid > 1 and pid not in out:
        status = _read(system, "/proc/%d/status" % pid) or ""
        match = re.search(r"^PPid:\s*(\d+)", status, re.M)
        parent = int(match.group(1)) if match else 0
        if parent <= 1 and len(out) >= 2:  # the agent and its launcher always count
            break
        out.add(pid)
        pid = parent
    return out


def owners(system: Any, pid: int) -> Optional[Set[int]]:
    """The uids a process runs with (real, effective, saved, filesystem: one uid
    for most, two for a setuid program another user started), or None when it
    is gone."""
    match = re.search(r"^Uid:\s*(.*)$", _read(system, "/proc/%d/status" % pid) or "", re.M)
    uids = match.group(1).split() if match else []
    if not uids or not all(u.isdigit() for u in uids):
        return None
    return {int(u) for u in uids}


def scan(system: Any) -> Dict[str, Any]:
    """/proc read once for every oom_protect of a run: each process's command line
    (None: a kernel thread, or gone), this agent's ancestry, and, once a service
    asks, each process's cgroup. Kept in ``System.scans()``, which a started
    command empties (it may have started processes). Who runs a process and its
    command line are read again for each process a resource is about to adjust."""
    scans = system.scans() if hasattr(system, "scans") else {}
    if "oom" not in scans:
        scans["oom"] = {"cmdlines": _cmdlines(system, pids(system)),
                        "protected": protected(system), "cgroups": None}
    found: Dict[str, Any] = scans["oom"]
    return found


def _cmdlines(system: Any, found: List[int]) -> List[Tuple[int, Optional[str]]]:
    """(pid, command line or None) of each process: /proc opened once
    (System.read_in_each) where the System can, else one read per process."""
    if not hasattr(system, "read_in_each"):
        return [(pid, cmdline(system, pid)) for pid in found]
    data = system.read_in_each("/proc", [str(p) for p in found], "cmdline")
    return [(pid, _as_line(data[str(pid)])) for pid in found]


def _as_line(data: Optional[bytes]) -> Optional[str]:
    if not data:
        return None
    return data.decode("utf-8", "surrogateescape").replace("\0", " ").strip() or None


def matching(system: Any, pattern: str, uids: Set[int]
             ) -> Tuple[List[int], Dict[int, Set[int]]]:
    """The processes whose command line matches and all of whose uids are among
    ``uids``, and the other processes that match, pid -> their uids: left alone,
    since any user can give a process any command line."""
    regex = re.compile(pattern)
    table = scan(system)
    found, others = [], {}
    for pid, line in table["cmdlines"]:
        if line is None or pid in table["protected"] or not regex.search(line):
            continue
        now = cmdline(system, pid)  # the scan may be older: gone, or exec'd since?
        theirs = owners(system, pid)
        if now is None or not regex.search(now) or theirs is None:
            continue
        if theirs <= uids:
            found.append(pid)
        else:
            others[pid] = theirs
    return found, others


def in_unit(system: Any, unit: str) -> List[int]:
    """The processes of a systemd unit, from /proc/PID/cgroup."""
    table = scan(system)
    if table["cgroups"] is None:
        table["cgroups"] = [(pid, _read(system, "/proc/%d/cgroup" % pid) or "")
                            for pid, _ in table["cmdlines"]]
    found = []
    for pid, text in table["cgroups"]:
        for line in text.splitlines():
            path = line.split(":", 2)[-1]
            if ("/" + unit + "/") in (path + "/") and pid not in table["protected"]:
                found.append(pid)
                break
    return found


def from_pidfile(system: Any, name: str) -> List[int]:
    """The pid a sysvinit service recorded, if it still runs."""
    for path in ("/run/%s.pid" % name, "/var/run/%s.pid" % name, "/run/%s/%s.pid" % (name, name)):
        text = (_read(system, path) or "").strip()
        if text.isdigit() and system.exists("/proc/" + text):
            return [int(text)]
    return []


def score(system: Any, pid: int) -> Optional[Dict[str, Any]]:
    """{'file', 'value', 'score'}: the adjustment as oom_score_adj (-1000..1000),
    read from oom_score_adj or, on old kernels, the legacy oom_adj (-17..15)."""
    for name in ("oom_score_adj", "oom_adj"):
        path = "/proc/%d/%s" % (pid, name)
        text = (_read(system, path) or "").strip()
        if text.lstrip("-").isdigit():
            value = int(text)
            legacy = name == "oom_adj"
            return {"file": path, "value": value, "legacy": legacy,
                    "score": legacy_to_score(value) if legacy else value}
    return None


def score_to_legacy(value: int) -> int:
    """oom_score_adj to oom_adj, as the kernel scales it (-1000 is -17, OOM_DISABLE)."""
    return max(-17, min(15, int(round(value * 17 / 1000.0))))


def legacy_to_score(value: int) -> int:
    return 1000 if value == 15 else int(value * 1000 / 17)


def cron_line(python: str, score_adj: int, pattern: str, uids: Set[int]) -> str:
    """The /etc/cron.d line that re-applies ``score_adj`` every minute to the
    processes of ``uids``. Every part is a validated value or fixed text: the
    pattern travels as hex, the uids as numbers."""
    return "* * * * * root %s -c '%s' %d %s %s\n" % (
        python, reapply_argument(), score_adj, pattern.encode("utf-8").hex(),
        ",".join(str(u) for u in sorted(uids)))
