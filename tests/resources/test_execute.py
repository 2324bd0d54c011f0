"""execute, and the engine's guards, notifications and retries through real resources.

Commands really run (on this machine, as the test user), but only ever write under
the temporary root: their ``cwd`` is a directory of it.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from converge.errors import PropertyError
from converge.report import Console
from tests.conftest import Converger, statuses
from tests.procs import exits_within


@pytest.fixture
def work(converger: Converger) -> Converger:
    converger.path("/srv").mkdir()
    return converger


def console(events, plan: bool = False) -> str:
    out = io.StringIO()
    view = Console(out, plan=plan, color=False)
    for event in events:
        view.event(event)
    return out.getvalue()


def test_runs_and_reports_updated(work: Converger) -> None:
    events = work.run('from converge import execute\n'
                      'execute(["sh", "-c", "echo $GREETING > out"], cwd="/srv", '
                      'environment={"GREETING": "hello"})\n')
    assert events[0]["status"] == "updated"
    assert events[0]["changes"] == ["execute sh -c 'echo $GREETING > out'"]
    assert work.path("/srv/out").read_text() == "hello\n"
    assert console(events) == ("* execute[sh -c 'echo $GREETING > out'] action run\n"
                               "  - execute sh -c 'echo $GREETING > out'\n")


def test_creates_skips_and_is_idempotent(work: Converger) -> None:
    recipe = ('from converge import execute\n'
              'execute("echo x > made", shell=True, cwd="/srv", creates="made")\n')
    first = work.run(recipe)
    assert statuses(first) == ["updated"]
    second = work.run(recipe)
    assert statuses(second) == ["skipped"]
    assert second[0]["skip_reason"] == "creates"
    assert console(second) == "* execute[echo x > made] action run (skipped due to creates)\n"


def test_failure_shows_the_output_and_the_run_goes_on(work: Converger) -> None:
    events = work.run('from converge import execute\n'
                      'execute("echo to-out; echo to-err >&2; exit 3", shell=True)\n'
                      'execute(["sh", "-c", "exit 3"], returns=[0, 3])\n'
                      'execute(["false"], ignore_failure=True)\n'
                      'execute(["/nonexistent/prog"])\n')
    assert statuses(events) == ["failed", "updated", "failed", "failed"]
    assert events[0]["error"] == "the command exited 3, not 0; its output:\nto-out\nto-err"
    assert events[2]["ignored"] is True
    assert events[2]["error"] == "the command exited 1, not 0 (and printed nothing)"
    assert events[3]["error"] == ("the command exited 127, not 0; its output:\n"
                                  "/nonexistent/prog: command not found")
    text = console(events)
    assert "* execute[echo to-out; echo to-err >&2; exit 3] action run (failed)\n" in text
    assert "  ! recipe.py:2: the command exited 3, not 0; its output:\n    to-out\n" in text


def test_timeout_kills_the_command_and_its_children(work: Converger) -> None:
    """How soon it gives up is benchmarks/execute_bench.py's to measure."""
    events = work.run('from converge import execute\n'
                      'execute("sleep 30 & echo $! > child; sleep 30; echo late > late", '
                      'shell=True, cwd="/srv", timeout=0.3)\n')
    assert events[0]["status"] == "failed"
    assert "the command exited 124, not 0" in events[0]["error"]
    assert "timed out after 0.3s, killed" in events[0]["error"]
    assert not work.path("/srv/late").exists()
    child = int(work.path("/srv/child").read_text())
    assert exits_within(child, 10)  # SIGKILLed: it may still be running its exit



@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_user_gets_its_home(work: Converger) -> None:
    events = work.run('from converge import execute\n'
                      'execute(["sh", "-c", \'test "$(id -u)" = 33 && test "$HOME" = /var/www '
                      '&& test "$USER" = www-data\'], user="www-data")\n')
    assert events[0]["status"] == "updated", events[0]["error"]


def test_live_output_goes_to_stderr(work: Converger, capfd: pytest.CaptureFixture) -> None:
    events = work.run('from converge import execute\n'
                      'execute(["sh", "-c", "echo step one; echo step two"], live=True)\n')
    assert events[0]["status"] == "updated"
    assert capfd.readouterr().err == "step one\nstep two\n"


def test_plan_mode_runs_nothing(work: Converger) -> None:
    events = work.run('from converge import execute\n'
                      'execute(["touch", "x"], cwd="/srv")\n', mode="plan")
    assert events[0]["changes"] == ["execute touch x"]
    assert console(events, plan=True) == ("* execute[touch x] action run\n"
                                          "  - would execute touch x\n")
    assert not work.path("/srv/x").exists()


def test_guards_with_commands_and_callables(work: Converger) -> None:
    work.path("/srv/flag").write_text("")
    flag = str(work.path("/srv/flag"))
    events = work.run('from converge import execute\n'
                      'execute(["touch", "a"], cwd="/srv", only_if=["test", "-e", %r])\n'
                      'execute(["touch", "b"], cwd="/srv", only_if=["test", "-e", "/nope"])\n'
                      'execute(["touch", "c"], cwd="/srv", not_if=["test", "-e", %r])\n'
                      'execute(["touch", "d"], cwd="/srv", not_if=lambda: False)\n'
                      % (flag, flag))
    assert statuses(events) == ["updated", "skipped", "skipped", "updated"]
    assert sorted(os.listdir(work.path("/srv"))) == ["a", "d", "flag"]
    text = console(events)
    assert "* execute[touch b] action run (skipped due to only_if)\n" in text
    assert "* execute[touch c] action run (skipped due to not_if)\n" in text


NOTIFY = '''
from converge import execute, line
reload = execute(["sh", "-c", "echo reloaded >> log"], cwd="/srv", action="nothing")
line("/srv/app.conf", "a = 1", notifies=reload.run)
line("/srv/app.conf", "b = 2", notifies=[("run", reload)])
now = execute(["sh", "-c", "echo now >> log"], cwd="/srv", action="nothing")
line("/srv/other.conf", "c = 3", notifies=now.run, immediately=True)
'''


def test_line_change_notifies_execute_once(work: Converger) -> None:
    events = work.run(NOTIFY)
    assert [(e["id"], e["status"], e.get("notified_by")) for e in events] == [
        ("execute[sh -c 'echo reloaded >> log']", "skipped", None),
        ("line[/srv/app.conf: a = 1]", "updated", None),
        ("line[/srv/app.conf: b = 2]", "updated", None),
        ("execute[sh -c 'echo now >> log']", "skipped", None),
        ("line[/srv/other.conf: c = 3]", "updated", None),
        ("execute[sh -c 'echo now >> log']", "updated", "line[/srv/other.conf: c = 3]"),
        ("execute[sh -c 'echo reloaded >> log']", "updated", "line[/srv/app.conf: a = 1]"),
    ]
    assert work.path("/srv/log").read_text() == "now\nreloaded\n"
    second = work.run(NOTIFY)
    assert statuses(second) == ["skipped", "up_to_date", "up_to_date", "skipped", "up_to_date"]
    assert work.path("/srv/log").read_text() == "now\nreloaded\n"


def test_failed_resource_does_not_notify(work: Converger) -> None:
    events = work.run('from converge import execute\n'
                      'after = execute(["touch", "after"], cwd="/srv", action="nothing")\n'
                      'execute(["false"], notifies=after.run)\n'
                      'execute(["touch", "next"], cwd="/srv")\n')
    assert statuses(events) == ["skipped", "failed", "updated"]
    assert sorted(os.listdir(work.path("/srv"))) == ["next"]


@pytest.mark.parametrize("retries, tries, status", [
    pytest.param(0, 1, "failed", id="no-retry"),
    pytest.param(1, 2, "failed", id="one-retry-not-enough"),
    pytest.param(2, 3, "updated", id="third-try-succeeds"),
    pytest.param(5, 3, "updated", id="no-retry-after-success"),
])
def test_retries(work: Converger, retries: int, tries: int, status: str) -> None:
    """The command succeeds on its third try; each try adds a line to `tries`."""
    flaky = ('execute("echo x >> tries; [ $(wc -l < tries) -ge 3 ]", shell=True, '
             'cwd="/srv", retries=%d, retry_delay=0)\n')
    events = work.run('from converge import execute\n' + flaky % retries)
    assert statuses(events) == [status]
    assert work.path("/srv/tries").read_text() == "x\n" * tries


def test_cli_apply_under_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "srv").mkdir(parents=True)
    recipe = tmp_path / "recipe.py"
    recipe.write_text(NOTIFY)
    argv = [sys.executable, "-m", "converge", "apply", "--root", str(root), str(recipe)]
    first = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert first.returncode == 0, first.stderr
    assert ("* execute[sh -c 'echo reloaded >> log'] action run (notified by "
            "line[/srv/app.conf: a = 1])\n  - execute sh -c 'echo reloaded >> log'\n"
            in first.stdout)
    second = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert second.returncode == 0
    assert "(skipped due to action nothing)" in second.stdout
    assert "  - " not in second.stdout
    assert (root / "srv/log").read_text() == "now\nreloaded\n"


@pytest.mark.parametrize("recipe, message", [
    ('execute("update-grub")', "execute[update-grub]: command is a string, and strings are "
     "never run by a shell unless asked: give an argument list such as ['update-grub'], or "
     "shell=True"),
    ('execute(["a", "b"], shell=True)', "execute[a b]: shell=True takes the command as "
     "one string, not a list"),
    ('execute([])', "execute[]: command must be an argument list such as ['update-grub'], "
     "not []"),
    ('execute(["a"], returns="zero")', "execute[a]: returns must be an integer or a list "
     "of integers, not 'zero'"),
    ('execute(["a"], returns=[0, 256])', "execute[a]: returns '256' is out of range 0..255"),
    ('execute(["a"], timeout=0)', "execute[a]: timeout must be a positive number of "
     "seconds, not 0"),
    ('execute(["a"], environment={"A=B": "x"})', "execute[a]: environment name 'A=B' is "
     "not a variable name"),
    ('execute(["a"], only_if="test -e /x")', "execute[a]: only_if must be an argument list such "
     "as ['test', '-f', '/etc/x'] or a callable; a string is never run by a shell (write "
     "['sh', '-c', 'test -e /x'] to say so)"),
])
def test_bad_input_refused_at_compile_time(converger: Converger, recipe, message) -> None:
    with pytest.raises(PropertyError) as info:
        converger.compile("from converge import execute\n" + recipe + "\n")
    assert str(info.value) == "recipe.py:2: " + message
