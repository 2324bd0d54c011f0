"""Terminal escapes in everything a target sends (issue 12 item 11): events (every
text field), the error that ends a host, notices (the run lock's holder), the run
journal shown by ``converge history``, a rollback's package list. A hostile target
answers through a fake transport, the way the SSH transport hands its answers on;
every channel that reaches a terminal (console lines, live and grouped fleet
output, recap, history, notices, errors) must hold no control character but the
newlines between lines, the tabs of diffs and converge's own colours."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import pytest
from hypothesis import given
from hypothesis import strategies as st

from converge.errors import ResourceError, RunError, TransportError, printable_lines
from converge.plan import Plan
from converge.report import RESET, Console, FleetConsole, history_lines
from converge.runner import run
from tests.hostile.conftest import TRIED as tried

#: C0, DEL and C1 controls, and escape sequences a terminal acts on
CONTROLS = ["\x1b[2J", "\x1b]0;owned\x07", "\x1b]52;c;ZXZpbA==\x07", "\x9b31m", "\x9d0;x\x9c",
            "\r", "\b", "\x7f", "\x00", "\x85", "\u2028", "\x1bc", "\x1b[?1049h", "\t", "\n"]
# what converge adds itself: its colours
OURS = re.compile(r"\x1b\[(?:0|1|2|31|32|33)m")

hostile = st.lists(st.one_of(st.sampled_from(CONTROLS), st.text(max_size=4)),
                   min_size=1, max_size=6).map("".join).filter(bool)


def raw_controls(text: str, tabs: bool = True) -> List[str]:
    """The control characters left in ``text`` once converge's colours and the
    line breaks are taken out."""
    text = OURS.sub("", text)
    return [c for c in text if c != "\n" and not (tabs and c == "\t")
            and not (c.isprintable() or c == " ")]


class HostileTransport:
    """A target that puts ``text`` in every field it sends back."""

    def __init__(self, host: str, text: str, fail: Optional[Exception] = None,
                 notice: Optional[Callable[[str], None]] = None) -> None:
        self.host = host
        self.text = text
        self.fail = fail
        self.notice = notice

    def facts(self) -> Dict[str, Any]:
        return {"hostname": self.text}

    def event(self, status: str) -> Dict[str, Any]:
        t = self.text
        return {"id": "file[%s]" % t, "type": t, "action": t, "status": status,
                "changes": [t, "update content in %s" % t], "diffs": ["--- %s\n+++ %s\n-%s\n+%s\n"
                                                                      % (t, t, t, t)],
                "error": t if status == "failed" else None, "warnings": [t], "source": t,
                "skip_reason": t, "notified_by": t}

    def run(self, plan: Plan, *, mode: str = "apply", fail_fast: bool = False,
            emit: Optional[Callable[[Dict[str, Any]], None]] = None) -> List[Dict[str, Any]]:
        if self.notice:
            self.notice("waiting for the converge run of pid %s (started %s) to finish"
                        % (self.text, self.text))
        events = [self.event(s) for s in ("updated", "failed", "skipped", "up_to_date")]
        for event in events:
            if emit:
                emit(event)
        if self.fail:
            raise self.fail
        return events

    def history(self) -> List[Dict[str, Any]]:
        t = self.text
        return [{"id": t, "started": t, "kind": t, "recipe": t, "summary": {"updated": t},
                 "changed": [{"id": t, "status": t, "changes": [t, t]}]},
                {"id": t, "error": t}, {"id": t, "of": t, "kind": "rollback", "started": t,
                                        "interrupted": True, "changed": []}]

    def warm(self) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def recipe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("escapes") / "recipe.py"
    path.write_text("from converge import file\nfile('/srv/a', content='a')\n")
    return path


@given(text=hostile, color=st.booleans(), live=st.booleans(), diff=st.booleans())
def test_a_run_shows_nothing_a_target_sends_raw(recipe: Path, text: str, color: bool,
                                                live: bool, diff: bool) -> None:
    from converge.cli import _notice

    out = io.StringIO()
    fleet = FleetConsole(Console(out, diff=diff, color=color), 2, progress=False, live=live)
    notices: List[str] = []
    errors = [TransportError("agent: %s" % text, host="web1", hint=text),
              RunError("another converge run: pid %s" % text, host="web2")]
    transports = [HostileTransport(name, text, fail=error, notice=notices.append)
                  for name, error in zip(("web1", "web2"), errors, strict=True)]
    outcome = run(recipe, transports, remote=True, forks=1, on_event=fleet.event,
                  on_host=fleet.host_done)
    fleet.finish(outcome.report)
    shown = out.getvalue()
    assert raw_controls(shown) == []
    assert "failed" in shown and "RECAP" in shown
    say = _notice("web1")
    for notice in notices:
        assert raw_controls(_capture(say, notice), tabs=False) == []
    tried["escapes: run output"] += 1


@given(text=hostile)
def test_history_shows_nothing_a_target_sends_raw(text: str) -> None:
    lines = history_lines(HostileTransport("web1", text).history())
    assert len(lines) >= 4
    for line in lines:
        assert raw_controls(line, tabs=False) == []
        assert "\n" not in line
    tried["escapes: history"] += 1


@given(text=hostile)
def test_an_error_message_is_shown_line_by_line_escaped(text: str) -> None:
    for error in (ResourceError(text, host="web1", hint=text), RunError(text, source=text)):
        shown = printable_lines(str(error))
        assert raw_controls(shown, tabs=False) == []
        assert shown.count("\n") == str(error).count("\n")
    tried["escapes: errors"] += 1


def _capture(say: Callable[[str], None], text: str) -> str:
    """What ``say(text)`` writes to standard error."""
    import contextlib

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        say(text)
    return err.getvalue()


def test_the_check_sees_raw_controls() -> None:
    assert raw_controls("a\x1b[2Jb\x9b1m\r") == ["\x1b", "\x9b", "\r"]
    assert raw_controls("\x1b[31mred" + RESET + "\n\tdiff") == []


def test_the_run_store_shows_nothing_a_target_sent_raw(tmp_path: Path) -> None:
    """`converge runs` and `runs show` print what the store kept of a run: the
    target's events and the error that ended the host."""
    import subprocess
    import sys

    from converge.store import connect, new_run_id

    text = "".join(CONTROLS)
    url = "sqlite:///%s" % (tmp_path / "store.db")
    store = connect(url)
    run_id = new_run_id()
    transport = HostileTransport("web1", text)
    events = [transport.event(s) for s in ("updated", "failed")]
    entry = {"summary": {"total": 2, "updated": 1, "failed": 1, "up_to_date": 0,
                         "skipped": 0}, "error": "agent: " + text}
    try:
        store.start(run_id, "apply", None, [])
        store.host_done(run_id, "web1", 0, entry, events)
        store.finish(run_id, {"hosts": {"web1": entry}, "summary": {}})
    finally:
        store.close()
    for args in (["runs"], ["runs", "show", run_id, "--diff"]):
        done = subprocess.run([sys.executable, "-m", "converge", args[0], "--store", url,
                               *args[1:]],
                              capture_output=True, text=True, timeout=60, cwd=tmp_path,
                              stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stderr
        assert raw_controls(done.stdout + done.stderr) == [], args
    assert "error: agent: \\x1b[2J" in done.stdout
    tried["escapes: run store"] += 1
