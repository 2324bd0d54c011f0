"""line: Ansible lineinfile semantics on files under a temporary root."""

from __future__ import annotations

import os
import stat

import pytest

from converge.errors import PropertyError
from tests.conftest import Converger, statuses

SAR = 'alias sar="LANG=C sar"'
BASHRC = "/root/.bashrc"


@pytest.mark.parametrize(
    "start, recipe, lines, result",
    [
        pytest.param(None, "line(%r, %r)" % (BASHRC, SAR),
                     ["create new file /root/.bashrc",
                      "append line '%s' to /root/.bashrc" % SAR],
                     SAR + "\n", id="create-missing-file"),
        pytest.param("export A=1\n", "line(%r, %r)" % (BASHRC, SAR),
                     ["append line '%s' to /root/.bashrc" % SAR],
                     "export A=1\n" + SAR + "\n", id="append"),
        pytest.param("export A=1", "line(%r, %r)" % (BASHRC, SAR),
                     ["append line '%s' to /root/.bashrc" % SAR],
                     "export A=1\n" + SAR + "\n", id="no-final-newline-gets-one"),
        pytest.param("a\n" + SAR + "\nb", "line(%r, %r)" % (BASHRC, SAR), [],
                     "a\n" + SAR + "\nb", id="already-there-file-untouched"),
        pytest.param("alias sar=sar\nx\nalias sar='sar -A'\n",
                     "line(%r, %r, match=r'^alias sar=')" % (BASHRC, SAR),
                     ["replace line 3 'alias sar='sar -A'' with '%s' in /root/.bashrc" % SAR],
                     "alias sar=sar\nx\n" + SAR + "\n", id="replace-last-match"),
        pytest.param("x\n", "line(%r, %r, match=r'^alias sar=')" % (BASHRC, SAR),
                     ["append line '%s' to /root/.bashrc" % SAR],
                     "x\n" + SAR + "\n", id="no-match-appends"),
        pytest.param("x\n" + SAR + "\n", "line(%r, %r, match=r'^nothing')" % (BASHRC, SAR),
                     [], "x\n" + SAR + "\n", id="no-match-but-line-present"),
        pytest.param("a\n" + SAR + "\nb\n" + SAR + "\n",
                     "line(%r, %r, action='absent')" % (BASHRC, SAR),
                     ["remove 2 lines '%s' from /root/.bashrc" % SAR], "a\nb\n",
                     id="absent-exact"),
        pytest.param("http_proxy=a\nx\nhttp_proxy=b\n",
                     "line('/root/.bashrc', match='^http_proxy=', action='absent')",
                     ["remove 2 lines matching '^http_proxy=' from /root/.bashrc"], "x\n",
                     id="absent-match"),
        pytest.param(None, "line(%r, %r, action='absent')" % (BASHRC, SAR), [], None,
                     id="absent-missing-file"),
        pytest.param("only\n", "line(%r, 'only', action='absent')" % BASHRC,
                     ["remove 1 line 'only' from /root/.bashrc"], "", id="absent-last-line"),
    ],
)
def test_line_table(converger: Converger, start, recipe, lines, result) -> None:
    path = converger.path(BASHRC)
    path.parent.mkdir(parents=True, exist_ok=True)
    if start is not None:
        path.write_text(start)
    events = converger.run("from converge import line\n" + recipe + "\n")
    assert events[0]["error"] is None
    assert events[0]["changes"] == lines
    assert (path.read_text() if path.exists() else None) == result
    second = converger.run("from converge import line\n" + recipe + "\n")
    assert statuses(second) == ["up_to_date"]


def test_several_lines_in_one_file_and_second_run(converger: Converger, mtimes) -> None:
    converger.path("/root").mkdir()
    converger.path(BASHRC).write_text("# bashrc\n")
    os.chmod(converger.path(BASHRC), 0o600)
    os.chown(converger.path(BASHRC), 33, 33)
    recipe = ("from converge import line\n"
              "line(%r, %r)\n" % (BASHRC, SAR) +
              "line(%r, 'export HISTSIZE=5000', match='^export HISTSIZE=')\n" % BASHRC)
    events = converger.run(recipe)
    assert [e["id"] for e in events] == ["line[/root/.bashrc: %s]" % SAR,
                                         "line[/root/.bashrc: export HISTSIZE=5000]"]
    assert statuses(events) == ["updated", "updated"]
    st = converger.path(BASHRC).stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o600, 33, 33)
    before = mtimes(converger.root)
    assert statuses(converger.run(recipe)) == ["up_to_date", "up_to_date"]
    assert mtimes(converger.root) == before
    assert converger.path(BASHRC).read_text() == "# bashrc\n%s\nexport HISTSIZE=5000\n" % SAR


def test_plan_mode_changes_nothing(converger: Converger, mtimes) -> None:
    converger.path("/root").mkdir()
    converger.path(BASHRC).write_text("x\n")
    before = mtimes(converger.root)
    events = converger.run("from converge import line\nline(%r, %r)\n" % (BASHRC, SAR),
                           mode="plan")
    assert events[0]["changes"] == ["append line '%s' to /root/.bashrc" % SAR]
    assert "+" + SAR in events[0]["diffs"][0]
    assert mtimes(converger.root) == before


def test_new_file_mode_and_create_false(converger: Converger) -> None:
    converger.path("/root").mkdir()
    events = converger.run("from converge import line\n"
                           "line('/root/a', 'x')\nline('/root/b', 'x', create=False)\n"
                           "line('/nope/c', 'x')\n")
    assert statuses(events) == ["updated", "failed", "failed"]
    assert stat.S_IMODE(converger.path("/root/a").stat().st_mode) == 0o644
    assert events[1]["error"] == ("/root/b does not exist (create=False)\n"
                                  "create the file first, or drop create=False")
    assert events[2]["error"].startswith("parent directory /nope does not exist")
    assert not converger.path("/root/b").exists()


def test_sensitive_line_is_not_shown(converger: Converger) -> None:
    converger.path("/root").mkdir()
    events = converger.run("from converge import line\n"
                           "line('/root/.netrc', 'password hunter2', sensitive=True)\n")
    assert events[0]["changes"] == ["create new file /root/.netrc",
                                    "append line (sensitive) to /root/.netrc"]
    assert "hunter2" not in repr(events[0]["changes"]) + repr(events[0]["diffs"])


@pytest.mark.parametrize("recipe, message", [
    ("line('/etc/x', 'a\\nb')", "line[/etc/x: a\\nb]: line contains a newline; declare one "
     "line resource per line"),
    ("line('/etc/x', 'a', match='(')", "line[/etc/x: a]: match '(' is not a valid regular "
     "expression: missing ), unterminated subpattern at position 0"),
    ("line('/etc/x')", "line[/etc/x]: give the line, or a match for action='absent'"),
    ("line('/etc/x', match='^a')", "line[/etc/x: ^a]: line is required for action 'present'"),
    ("line('/etc/x', 'a', create='no')", "line[/etc/x: a]: create must be True or False, "
     "not 'no'"),
])
def test_bad_input_refused_at_compile_time(converger: Converger, recipe, message) -> None:
    with pytest.raises(PropertyError) as info:
        converger.compile("from converge import line\n" + recipe + "\n")
    assert str(info.value) == "recipe.py:2: " + message
