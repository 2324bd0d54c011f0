"""Console lines: what a target sends is shown, never obeyed by the terminal."""

from __future__ import annotations

import io

from converge.report import Console


def test_terminal_escapes_from_a_target_are_shown_escaped_and_colour_stays_ours() -> None:
    console = Console(io.StringIO(), diff=True, color=True)
    event = {"id": "file[/tmp/a\x1b[31mb]", "action": "create", "status": "failed",
             "changes": ["create new file /tmp/a\x1b]0;title\x07"],
             "diffs": ["+\tindented\x1b[2J\n"], "warnings": ["odd\rline"],
             "error": "first\x1b[1Aline\nsecond line", "source": "recipe.py:3"}
    lines = console.lines(event)
    assert lines[0].startswith("* file[/tmp/a\\x1b[31mb] action create")
    assert "first\\x1b[1Aline" in lines[1] and lines[2] == "    second line"
    assert "odd\\rline" in lines[3]
    assert all("\x1b[2J" not in line and "\x07" not in line and "\r" not in line
               for line in lines)
    assert lines[1].startswith("\x1b[31m")  # our own colour is still ours
    event["status"] = "updated"
    assert "create new file /tmp/a\\x1b]0;title\\x07" in console.lines(event)[1]
    diff = console.lines(event)[-2]
    assert diff == "    \x1b[32m+\tindented\\x1b[2J\x1b[0m"  # tabs kept, escapes shown


def test_a_failed_event_s_source_is_shown_escaped_whatever_its_type() -> None:
    console = Console(io.StringIO(), color=False)
    event = {"id": "file[/tmp/a]", "action": "create", "status": "failed", "changes": [],
             "error": "boom", "source": "recipe.py:3\x1b[2J"}
    assert console.lines(event)[1] == "  ! recipe.py:3\\x1b[2J: boom"
    event["source"] = 3  # a target's JSON may say anything: rendered, not a TypeError
    assert console.lines(event)[1] == "  ! 3: boom"


def test_a_failed_resource_s_changes_are_not_shown_as_made() -> None:
    """Apply failed part way: which of its changes were made is not known, so none is
    printed as made; the error is (the way Chef shows a failing action)."""
    console = Console(io.StringIO(), color=False)
    event = {"id": "oom_protect[sshd]", "action": "apply", "status": "failed",
             "changes": ["create cron entry oom_protect-sshd"],
             "error": "could not set the score: nothing was persisted",
             "source": "recipe.py:4"}
    assert console.lines(event) == [
        "* oom_protect[sshd] action apply (failed)",
        "  ! recipe.py:4: could not set the score: nothing was persisted"]
    event["ignored"] = True
    assert console.lines(event)[0] == "* oom_protect[sshd] action apply (failed, ignored)"
    assert len(console.lines(event)) == 2


def test_profile_table_escapes_what_came_from_targets() -> None:
    """Host names and resource ids reach the --profile table escaped; a phase that
    does not apply (a local run's connection) is '-'."""
    from converge.report import profile_lines

    evil = "web\x1b]0;owned\x07"
    profile = {"connect": None, "auth": None, "agent_start": None, "bundle_sent": None,
               "compile": 0.01, "run": 0.2, "setup": 0.05, "resources": 0.1, "report": 0.01,
               "total": 0.3, "slowest": [{"id": "file[/tmp/\x1b[2Jx]", "action": "create",
                                          "seconds": 0.1}]}
    lines = profile_lines({"hosts": {evil: {"profile": profile}, "quiet": {}}})
    assert not any("\x1b" in line or "\x07" in line for line in lines)
    assert lines[2].split()[:4] == ["web\\x1b]0;owned\\x07", "-", "-", "-"]
    assert lines[2].split()[4:] == ["0.010", "0.050", "0.100", "0.010", "0.300"]
    assert lines[3] == "  slowest: file[/tmp/\\x1b[2Jx] 0.100"
    assert len(lines) == 4  # the host without a profile has no row
    assert profile_lines({"hosts": {"a": {}}}) == []
