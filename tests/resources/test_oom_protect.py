"""oom_protect: real child processes (started here, marked by a unique argument,
set to 500 first) converged and read back from /proc. The temporary root links
/proc to the real one, so persistence files land in the temporary /etc."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Iterator, List

import pytest

from converge.agent.system import System
from converge.errors import PropertyError
from converge.resources import _oom
from tests.conftest import Converger, statuses

SLEEPER = "import sys; sys.stdin.read()"  # lives until its stdin closes


class Sleepers:
    """Python processes that wait on stdin, each with the marker in its command line."""

    def __init__(self, count: int) -> None:
        self.marker = "oomtest-" + uuid.uuid4().hex[:12]
        self.procs = [subprocess.Popen([sys.executable, "-c", SLEEPER, self.marker],
                                       stdin=subprocess.PIPE) for _ in range(count)]
        deadline = time.monotonic() + 10
        for proc in self.procs:  # wait until each has exec'd (its cmdline shows the marker)
            while self.marker not in Path("/proc/%d/cmdline" % proc.pid).read_text():
                assert time.monotonic() < deadline, "child did not start"
            Path("/proc/%d/oom_score_adj" % proc.pid).write_text("500")

    @property
    def pids(self) -> List[int]:
        return [p.pid for p in self.procs]

    def scores(self) -> List[int]:
        return [int(Path("/proc/%d/oom_score_adj" % pid).read_text()) for pid in self.pids]

    def stop(self) -> None:
        for proc in self.procs:
            proc.stdin.close()  # type: ignore[union-attr]
            proc.wait(timeout=10)


@pytest.fixture
def sleepers() -> Iterator[Sleepers]:
    procs = Sleepers(2)
    try:
        yield procs
    finally:
        procs.stop()


@pytest.fixture
def procroot(converger: Converger) -> Converger:
    """The temporary root, with this machine's /proc seen at its /proc (a link out
    of the root would not be followed: agent/paths.py)."""
    (converger.root / "proc").mkdir()
    converger.system = System(str(converger.root), cwd="/", mounts={"/proc": "/proc"})
    return converger


@pytest.mark.parametrize("call, message", [
    pytest.param('oom_protect("a.b", pattern="x")', "name 'a.b' may only hold letters, digits, "
                 "'_' and '-' (it names the file /etc/cron.d/converge-oom-NAME)", id="name"),
    pytest.param('oom_protect("x")', "give exactly one of pattern, pids or service", id="none"),
    pytest.param('oom_protect("x", pattern="a", pids=[1])', "give exactly one of pattern, pids "
                 "or service (got pattern and pids)", id="two"),
    pytest.param('oom_protect("x", pattern="(")', "pattern '(' is not a valid regular "
                 "expression: missing ), unterminated subpattern at position 0", id="regex"),
    pytest.param('oom_protect("x", pattern="a\\nb")', "pattern must be a one-line, non-empty "
                 "regular expression", id="newline"),
    pytest.param('oom_protect("x", pattern="a", score_adj=-1001)', "score_adj '-1001' is out of "
                 "range -1000..1000", id="low"),
    pytest.param('oom_protect("x", pattern="a", score_adj="high")', "score_adj 'high' is not "
                 "an integer", id="not-int"),
    pytest.param('oom_protect("x", pids=[0])', "pid '0' is out of range", id="pid"),
    pytest.param('oom_protect("x", service="a;b")', "'a;b' is not a valid service name",
                 id="service"),
    pytest.param('oom_protect("x", pids=[1], user="alice")', "user= applies to pattern= only",
                 id="user-without-pattern"),
    pytest.param('oom_protect("x", pattern="a", user=["alice", "a b"])', "user 'a b' is not a "
                 "valid name", id="user-name"),
    pytest.param('oom_protect("x", pattern="a", user=[])', "user must name at least one user",
                 id="user-empty"),
])
def test_bad_input_refused_at_compile_time(converger: Converger, call: str, message: str) -> None:
    with pytest.raises(PropertyError) as info:
        converger.compile("from converge import oom_protect\n" + call + "\n")
    assert message in str(info.value) and "recipe.py:2" in str(info.value)


@pytest.mark.parametrize("score", [100, 0])
def test_pattern_sets_every_match_and_persists_in_cron(procroot: Converger, sleepers: Sleepers,
                                                       score: int) -> None:
    recipe = ('from converge import oom_protect\noom_protect("t", pattern=%r, score_adj=%d)\n'
              % (sleepers.marker + "$", score))
    planned = procroot.run(recipe, mode="plan")
    assert sleepers.scores() == [500, 500]
    assert not procroot.path("/etc/cron.d/converge-oom-t").exists()
    events = procroot.run(recipe)
    lines = events[0]["changes"]
    for pid in sleepers.pids:
        assert any(line.startswith("set oom_score_adj of pid %d (" % pid)
                   and line.endswith(") from 500 to %d" % score) for line in lines), lines
    assert lines[-1] == ("create cron entry /etc/cron.d/converge-oom-t to apply oom_score_adj "
                         "%d every minute to processes of root" % score)
    assert planned[0]["changes"] == lines
    assert sleepers.scores() == [score, score]
    assert statuses(procroot.run(recipe)) == ["up_to_date"]
    # the cron line itself works: run its command as cron would, through sh
    for pid in sleepers.pids:
        Path("/proc/%d/oom_score_adj" % pid).write_text("500")
    cron = procroot.path("/etc/cron.d/converge-oom-t").read_text().splitlines()[-1]
    assert cron.startswith("* * * * * root ")
    command = cron.split(" ", 6)[6].replace(cron.split(" ")[6], sys.executable, 1)
    subprocess.run(["sh", "-c", command], check=True, timeout=30)
    assert sleepers.scores() == [score, score]


def test_below_zero_works_or_says_cap_sys_resource(procroot: Converger,
                                                   sleepers: Sleepers) -> None:
    recipe = ('from converge import oom_protect\noom_protect("t", pids=%r)\n' % sleepers.pids)
    events = procroot.run(recipe)
    if events[0]["status"] == "updated":
        assert sleepers.scores() == [-1000, -1000]
    else:
        assert events[0]["error"].startswith(
            "the kernel refused oom_score_adj -1000 for pid %d" % sleepers.pids[0])
        assert "needs CAP_SYS_RESOURCE, and this agent runs without it" in events[0]["error"]
        assert "--cap-add SYS_RESOURCE" in events[0]["error"]
        assert sleepers.scores() == [500, 500]
    assert not procroot.path("/etc/cron.d").exists()  # pids are never persisted


def test_never_the_agent_nor_its_ancestors(procroot: Converger) -> None:
    me = Path("/proc/self/cmdline").read_bytes().split(b"\0")[0].decode()
    events = procroot.run('from converge import oom_protect\n'
                          'oom_protect("t", pattern=%r, score_adj=0, persist=False)\n' % me,
                          mode="plan")
    mine = _oom.protected(procroot.system)
    assert os.getpid() in mine and os.getppid() in mine
    for line in events[0]["changes"]:
        assert not any(line.startswith("set oom_score_adj of pid %d " % pid) for pid in mine)


class FakeProc:
    """A /proc of status files: pid -> parent pid."""

    def __init__(self, parents: dict) -> None:
        self.parents = parents

    def read_text(self, path: str) -> str:
        pid = int(path.split("/")[2])
        if pid not in self.parents:
            raise FileNotFoundError(path)
        return "Name:\tx\nPPid:\t%d\n" % self.parents[pid]


@pytest.mark.parametrize("chain, expected", [
    pytest.param({"shell": "session", "session": "listener", "listener": 1},
                 {"agent", "shell", "session"}, id="sshd-under-init"),
    pytest.param({"shell": "session", "session": 1}, {"agent", "shell"},
                 id="sshd-is-pid-1-as-in-a-container"),
    pytest.param({"shell": "cron", "cron": 1}, {"agent", "shell"}, id="from-cron"),
    pytest.param({"shell": 1}, {"agent", "shell"}, id="launcher-always-counts"),
    pytest.param({"shell": 0}, {"agent", "shell"}, id="entered-from-outside"),
])
def test_ancestry_stops_below_daemons(chain: dict, expected: set) -> None:
    me = os.getpid()
    names = {"agent": me, "shell": 900, "session": 800, "listener": 700, "cron": 600}
    parents = {me: names["shell"]}
    parents.update({names[child]: names.get(parent, parent) for child, parent in chain.items()})
    assert _oom.protected(FakeProc(parents)) == {names[n] for n in expected}


def test_no_match_is_a_warning(procroot: Converger) -> None:
    events = procroot.run('from converge import oom_protect\n'
                          'oom_protect("t", pattern="no-such-process-[x]yz", persist=False)\n')
    assert statuses(events) == ["up_to_date"]
    assert events[0]["warnings"] == [
        "no process of root matches pattern 'no-such-process-[x]yz'; nothing to adjust now"]


def test_service_persists_as_drop_in_and_warns_about_openssh(procroot: Converger) -> None:
    (procroot.root / "lib/systemd/system").mkdir(parents=True)
    (procroot.root / "lib/systemd/system/ssh.service").write_text("[Service]\n")
    recipe = 'from converge import oom_protect\noom_protect("sshd", service="ssh")\n'
    events = procroot.run(recipe)
    assert events[0]["changes"] == [
        "create systemd drop-in /etc/systemd/system/ssh.service.d/converge-oom-protect.conf "
        "to apply oom_score_adj -1000"]
    assert procroot.path("/etc/systemd/system/ssh.service.d/converge-oom-protect.conf"
                         ).read_text().endswith("[Service]\nOOMScoreAdjust=-1000\n")
    assert any(w.startswith("OpenSSH gives every login session the oom_score_adj its listener "
                            "started with") for w in events[0]["warnings"])
    assert statuses(procroot.run(recipe)) == ["up_to_date"]
    off = procroot.run(recipe.replace('"ssh")', '"ssh", persist=False)'))
    assert off[0]["changes"] == [
        "remove systemd drop-in /etc/systemd/system/ssh.service.d/converge-oom-protect.conf "
        "(persist is off)"]


def test_legacy_oom_adj_scale() -> None:
    assert [_oom.score_to_legacy(v) for v in (-1000, -500, 0, 500, 1000)] == [-17, -8, 0, 8, 15]
    assert [_oom.legacy_to_score(v) for v in (-17, 0, 15)] == [-1000, 0, 1000]


class FakeProcesses:
    """A /proc of command lines and uids: pid -> (cmdline, 'Uid:' fields)."""

    def __init__(self, procs: dict) -> None:
        self.procs = procs

    def listdir(self, path: str) -> List[str]:
        return [str(pid) for pid in self.procs]

    def read_text(self, path: str) -> str:
        parts = path.split("/")
        if not parts[2].isdigit() or int(parts[2]) not in self.procs:
            raise FileNotFoundError(path)
        line, uids = self.procs[int(parts[2])]
        return line.replace(" ", "\0") if parts[3] == "cmdline" else "Uid:\t%s\n" % uids


def test_a_pattern_matches_only_processes_all_of_whose_uids_are_allowed() -> None:
    procs = FakeProcesses({
        4001: ("/usr/sbin/sshd -D", "0\t0\t0\t0"),  # root's: adjusted
        4002: ("/usr/sbin/sshd -D", "1000\t1000\t1000\t1000"),  # alice's forgery
        4003: ("/usr/sbin/sshd -D", "1000\t0\t0\t0"),  # a setuid program alice started
        4004: ("/usr/bin/other", "0\t0\t0\t0"),  # does not match
    })
    found, others = _oom.matching(procs, "^/usr/sbin/sshd", {0})
    assert found == [4001]
    assert others == {4002: {1000}, 4003: {0, 1000}}
    found, others = _oom.matching(procs, "^/usr/sbin/sshd", {0, 1000})
    assert (found, others) == ([4001, 4002, 4003], {})


class CountingScans(System):
    """The procroot System, counting the scans of /proc (listings of it)."""

    def __init__(self, root: str) -> None:
        super().__init__(root, cwd="/", mounts={"/proc": "/proc"})
        self.listings = 0

    def listdir(self, path: str) -> List[str]:
        if path == "/proc":
            self.listings += 1
        return super().listdir(path)


SPAWN = """\
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()", sys.argv[1]],
                         stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
open(sys.argv[2], "w").write(str(child.pid))
"""


def test_one_proc_scan_serves_every_oom_protect_until_a_command_runs(
        procroot: Converger, sleepers: Sleepers, tmp_path: Path) -> None:
    system = CountingScans(str(procroot.root))
    procroot.system = system
    three = "".join('oom_protect("t%d", pattern=%r, score_adj=%d, persist=False)\n'
                    % (n, sleepers.marker + "$", 100 * n) for n in (1, 2, 3))
    events = procroot.run("from converge import oom_protect\n" + three)
    assert statuses(events) == ["updated"] * 3 and sleepers.scores() == [300, 300]
    assert system.listings == 1
    # a process started by a command between two of them is seen by the second
    marker, pidfile = "oomspawn-" + uuid.uuid4().hex[:12], tmp_path / "spawned.pid"
    system.listings = 0
    try:
        events = procroot.run(
            "from converge import execute, oom_protect\n"
            "oom_protect('before', pattern=%r, score_adj=100, persist=False)\n"
            "execute([%r, '-c', %r, %r, %r])\n"
            "oom_protect('after', pattern=%r, score_adj=100, persist=False)\n"
            % (marker + "$", sys.executable, SPAWN, marker, str(pidfile), marker + "$"))
        spawned = int(pidfile.read_text())
        assert events[0]["warnings"][0].startswith("no process of root matches")
        assert events[2]["changes"][0].startswith("set oom_score_adj of pid %d (" % spawned)
        assert Path("/proc/%d/oom_score_adj" % spawned).read_text().strip() == "100"
        assert system.listings == 2
    finally:
        if pidfile.exists():
            os.kill(int(pidfile.read_text()), 9)
