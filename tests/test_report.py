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
    assert "create new file /tmp/a\\x1b]0;title\\x07" in lines[1]
    assert "first\\x1b[1Aline" in lines[2] and lines[3] == "    second line"
    assert "odd\\rline" in lines[4]
    assert all("\x1b[2J" not in line and "\x07" not in line and "\r" not in line
               for line in lines)
    assert lines[2].startswith("\x1b[31m")  # our own colour is still ours
    event["status"] = "updated"
    diff = console.lines(event)[-2]
    assert diff == "    \x1b[32m+\tindented\\x1b[2J\x1b[0m"  # tabs kept, escapes shown


def test_a_failed_event_s_source_is_shown_escaped_whatever_its_type() -> None:
    console = Console(io.StringIO(), color=False)
    event = {"id": "file[/tmp/a]", "action": "create", "status": "failed", "changes": [],
             "error": "boom", "source": "recipe.py:3\x1b[2J"}
    assert console.lines(event)[1] == "  ! recipe.py:3\\x1b[2J: boom"
    event["source"] = 3  # a target's JSON may say anything: rendered, not a TypeError
    assert console.lines(event)[1] == "  ! 3: boom"
