"""Parallel runs over many hosts with a fake transport: isolation, recap, output."""

from __future__ import annotations

import io
import re
import threading
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import pytest

from converge.errors import ConnectError, RecipeError, TransportError
from converge.plan import Plan
from converge.report import Console, FleetConsole, recap_lines
from converge.runner import run

RECIPE = "from converge import file\nfile('/etc/motd', content='hi %s\\n' % attrs.who)\n"
FACTS_RECIPE = "from converge import file\nfile('/etc/motd', content=node.hostname)\n"


class FakeTransport:
    """Answers run() with canned events; can fail in facts() or run(), or wait."""

    def __init__(self, host: str, *, status: str = "up_to_date", fail: Optional[Exception]
                 = None, facts_fail: Optional[Exception] = None, after: int = 0,
                 barrier: Optional[threading.Barrier] = None) -> None:
        self.host = host
        self.status = status
        self.fail = fail
        self.facts_fail = facts_fail
        self.after = after
        self.barrier = barrier
        self.ran: List[Plan] = []
        self.facts_calls = 0
        self.closed = False

    def facts(self) -> Dict[str, Any]:
        self.facts_calls += 1
        if self.facts_fail:
            raise self.facts_fail
        return {"hostname": self.host}

    def run(self, plan: Plan, *, mode: str = "apply", fail_fast: bool = False,
            emit: Optional[Callable[[Dict[str, Any]], None]] = None) -> List[Dict[str, Any]]:
        self.ran.append(plan)
        if self.barrier is not None:
            self.barrier.wait(timeout=30)  # every host is in flight at once
        events = []
        for step in plan.steps[: self.after if self.fail else None]:
            event = {"id": step.id, "type": step.type, "action": step.action,
                     "status": self.status, "changes": ["did it"] if self.status == "updated"
                     else [], "diffs": [], "error": None, "warnings": []}
            events.append(event)
            if emit:
                emit(event)
        if self.fail:
            raise self.fail
        return events

    def warm(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def recipe(tmp_path: Path) -> Path:
    path = tmp_path / "recipe.py"
    path.write_text(RECIPE)
    return path


def test_hosts_run_in_parallel_up_to_forks(recipe: Path) -> None:
    barrier = threading.Barrier(10)
    fleet = [FakeTransport("n%d" % i, barrier=barrier) for i in range(10)]
    outcome = run(recipe, fleet, attrs={"who": "x"}, remote=True, forks=10)
    assert not outcome.failed
    assert all(t.closed and len(t.ran) == 1 for t in fleet)
    assert list(outcome.report["hosts"]) == ["n%d" % i for i in range(10)]


def test_one_host_failing_never_stops_the_others(recipe: Path) -> None:
    fleet = [
        FakeTransport("ok1", status="updated"),
        FakeTransport("down", fail=ConnectError("connection refused", host="down")),
        FakeTransport("dropped", fail=TransportError("connection lost mid-run"), after=1),
        FakeTransport("buggy", fail=RuntimeError("boom")),
        FakeTransport("ok2"),
    ]
    seen: List[str] = []
    outcome = run(recipe, fleet, attrs={"who": "x"}, remote=True, forks=2,
                  on_host=lambda host, entry: seen.append(host))
    hosts = outcome.report["hosts"]
    assert sorted(seen) == sorted(t.host for t in fleet)
    assert hosts["ok1"]["summary"]["updated"] == 1 and "error" not in hosts["ok1"]
    assert hosts["down"]["unreachable"] is True
    assert "connection lost" in hosts["dropped"]["error"]
    assert hosts["dropped"]["summary"]["total"] == 1 and "unreachable" not in hosts["dropped"]
    assert "internal error: RuntimeError: boom" in hosts["buggy"]["error"]
    assert outcome.failed
    summary = outcome.report["summary"]
    assert (summary["failed_hosts"], summary["unreachable_hosts"]) == (3, 1)
    assert recap_lines(outcome.report) == [
        "ok1      changed      1 updated, 0 up to date, 0 failed",
        "down     unreachable",
        "dropped  failed       0 updated, 1 up to date, 0 failed",
        "buggy    failed",
        "ok2      ok           0 updated, 1 up to date, 0 failed",
    ]


def test_compile_error_stops_everything_before_any_host(tmp_path: Path) -> None:
    path = tmp_path / "recipe.py"
    path.write_text("from converge import file\nfile('/etc/motd', mode='999')\n")
    fleet = [FakeTransport("a"), FakeTransport("b")]
    with pytest.raises(RecipeError, match="recipe.py:2"):
        run(path, fleet, remote=True)
    assert all(not t.ran and t.closed for t in fleet)


class WarmingTransport(FakeTransport):
    """A transport with warm(): it records the call and can block until released."""

    def __init__(self, host: str, release: Optional[threading.Event] = None) -> None:
        super().__init__(host)
        self.release = release
        self.warmed = threading.Event()

    def warm(self) -> None:
        self.warmed.set()
        if self.release is not None:
            self.release.wait()


def test_the_first_forks_hosts_warm_up_while_the_recipe_compiles(recipe: Path) -> None:
    fleet = [WarmingTransport("h%d" % i) for i in range(5)]
    outcome = run(recipe, fleet, attrs={"who": "x"}, remote=True, forks=3)
    assert not outcome.failed
    assert [t.warmed.wait(timeout=30) for t in fleet[:3]] == [True] * 3
    assert [t.warmed.is_set() for t in fleet[3:]] == [False, False]


def test_a_compile_error_does_not_wait_for_hosts_still_connecting(tmp_path: Path) -> None:
    path = tmp_path / "recipe.py"
    path.write_text("from converge import file\nfile('/etc/motd', mode='999')\n")
    stuck = threading.Event()  # never set: a host whose connection never completes
    fleet = [WarmingTransport("a", stuck), WarmingTransport("b", stuck)]
    with pytest.raises(RecipeError, match="recipe.py:2"):
        run(path, fleet, remote=True)
    assert all(t.closed and not t.ran for t in fleet)


def test_host_var_errors_in_one_host_stop_everything(recipe: Path) -> None:
    fleet = [FakeTransport("a"), FakeTransport("b")]
    with pytest.raises(RecipeError, match="attribute 'who' is not set"):
        run(recipe, fleet, host_vars={"a": {"who": "a"}}, remote=True)
    assert not any(t.ran for t in fleet)


def test_facts_only_when_read_and_once_per_host(tmp_path: Path, recipe: Path) -> None:
    fleet = [FakeTransport("a"), FakeTransport("b")]
    run(recipe, fleet, host_vars={"a": {"who": "a"}, "b": {"who": "b"}}, remote=True)
    assert [t.facts_calls for t in fleet] == [0, 0]
    assert fleet[0].ran[0].steps[0].props["content"] == "hi a\n"
    assert fleet[1].ran[0].steps[0].props["content"] == "hi b\n"
    facts_recipe = tmp_path / "facts.py"
    facts_recipe.write_text(FACTS_RECIPE)
    fleet = [FakeTransport("a"), FakeTransport("b"),
             FakeTransport("c", facts_fail=ConnectError("no route", host="c"))]
    outcome = run(facts_recipe, fleet, remote=True)
    assert [t.facts_calls for t in fleet] == [1, 1, 1]
    assert [t.ran[0].steps[0].props["content"] for t in fleet[:2]] == ["a", "b"]
    assert not fleet[2].ran and outcome.report["hosts"]["c"]["unreachable"]


def test_identical_hosts_share_one_compiled_plan(recipe: Path) -> None:
    fleet = [FakeTransport("n%d" % i) for i in range(5)]
    run(recipe, fleet, attrs={"who": "x"}, remote=True)
    assert len({id(t.ran[0]) for t in fleet}) == 1


def test_fleet_console_groups_lines_under_each_host(recipe: Path) -> None:
    stream = io.StringIO()
    fleet_out = FleetConsole(Console(stream, color=False), 2, progress=False)
    fleet = [FakeTransport("web1", status="updated"),
             FakeTransport("web2", fail=ConnectError("connection refused",
                                                     host="web2"))]
    outcome = run(recipe, fleet, attrs={"who": "x"}, remote=True, forks=1,
                  on_event=fleet_out.event, on_host=fleet_out.host_done)
    fleet_out.finish(outcome.report)
    assert stream.getvalue().splitlines() == [
        "web1",
        "  * file[/etc/motd] action create",
        "    - did it",
        "web2",
        "  ! unreachable: connection refused",
        "",
        "RECAP",
        "web1  changed      1 updated, 0 up to date, 0 failed",
        "web2  unreachable",
        "Converged 2 hosts: 0 ok, 1 changed, 0 failed, 1 unreachable; 1 resource: 1 updated, "
        "0 up to date, 0 failed in %.2fs" % outcome.report["summary"]["seconds"],
    ]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def fleet_output(recipe: Path, stream: io.StringIO) -> str:
    """Two hosts, one at a time: web1 changes something, then `down` is unreachable."""
    fleet_out = FleetConsole(Console(stream, color=True), 2)
    outcome = run(recipe, [FakeTransport("web1", status="updated"),
                           FakeTransport("down", fail=ConnectError("refused", host="down"))],
                  attrs={"who": "x"}, remote=True, forks=1,
                  on_event=fleet_out.event, on_host=fleet_out.host_done)
    fleet_out.finish(outcome.report)
    return stream.getvalue()


def fleet_transcript(recipe: Path, transports: List[FakeTransport], *, mode: str = "apply",
                     quiet: bool = False) -> str:
    stream = io.StringIO()
    plan = mode == "plan"
    fleet_out = FleetConsole(Console(stream, color=False, plan=plan, quiet=quiet),
                             len(transports), progress=False)
    outcome = run(recipe, transports, attrs={"who": "x"}, remote=True, forks=1, mode=mode,
                  on_event=fleet_out.event, on_host=fleet_out.host_done)
    fleet_out.finish(outcome.report, plan=plan)
    return stream.getvalue().replace(" in %.2fs" % outcome.report["summary"]["seconds"],
                                     " in 0.00s")


def test_check_on_an_in_sync_fleet_prints_the_recap_alone(recipe: Path) -> None:
    text = fleet_transcript(recipe, [FakeTransport("web1"), FakeTransport("web2")],
                            mode="plan", quiet=True)
    assert text == (
        "RECAP\n"
        "web1  ok  0 would change, 1 up to date, 0 failed\n"
        "web2  ok  0 would change, 1 up to date, 0 failed\n"
        "Plan for 2 hosts: 2 ok, 0 would change, 0 failed, 0 unreachable; 2 resources: "
        "0 would change, 2 up to date, 0 failed in 0.00s\n")


def test_check_counts_drift_as_would_change_not_as_changed(recipe: Path) -> None:
    text = fleet_transcript(recipe, [FakeTransport("web1", status="updated"),
                                     FakeTransport("web2")], mode="plan", quiet=True)
    assert text == (
        "web1\n"
        "  * file[/etc/motd] action create\n"
        "    - would did it\n"
        "\n"
        "RECAP\n"
        "web1  would change  1 would change, 0 up to date, 0 failed\n"
        "web2  ok            0 would change, 1 up to date, 0 failed\n"
        "Plan for 2 hosts: 1 ok, 1 would change, 0 failed, 0 unreachable; 2 resources: "
        "1 would change, 1 up to date, 0 failed in 0.00s\n")


def test_skipped_resources_are_counted_in_the_recap_and_the_fleet_line(recipe: Path) -> None:
    text = fleet_transcript(recipe, [FakeTransport("web1", status="skipped")])
    assert text.splitlines()[-2:] == [
        "web1  ok  0 updated, 0 up to date, 0 failed, 1 skipped",
        "Converged 1 host: 1 ok, 0 changed, 0 failed, 0 unreachable; 1 resource: 0 updated, "
        "0 up to date, 0 failed, 1 skipped in 0.00s"]


def test_fleet_console_progress_bar_on_a_terminal(recipe: Path) -> None:
    raw = fleet_output(recipe, Terminal())
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", raw)
    # every frame of the bar: hosts done of 2, hosts changed, hosts failed
    frames = [tuple(int(n) for n in frame) for frame in
              re.findall(r"hosts [━╺╸ ]+ (\d)/2 (\d) with changes, (\d) failed or unreachable",
                         text)]
    # (frames between come from rich's refresh thread, ten a second: not asserted)
    assert frames[0] == (0, 0, 0) and frames[-1] == (2, 1, 1)
    lines = re.sub(r"hosts [━╺╸ ]+ \d/2 \d with changes, \d failed or unreachable [0-9:]+\r",
                   "", text)
    assert "web1\n  * file[/etc/motd] action create\n" in lines  # lines printed above it
    assert "down\n  ! unreachable: refused\n" in lines
    # taken down before the recap: nothing of it is left on the screen after it
    assert raw.index("\x1b[?25h") < raw.index("RECAP")  # the cursor shown again
    assert text.index("RECAP") > text.rindex("1 failed or unreachable")
    assert re.search(r"\x1b\[1A\x1b\[2K\s*RECAP", raw)  # its last frame erased


def test_fleet_console_no_progress_bar_off_a_terminal(recipe: Path) -> None:
    text = fleet_output(recipe, io.StringIO())
    assert "━" not in text and "0/2" not in text and "\x1b[?25l" not in text
    assert "web1\n  * file[/etc/motd] action create\n" in re.sub(r"\x1b\[[0-9;]*m", "", text)
