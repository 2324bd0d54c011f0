"""file: table of starting states → change lines → resulting state; idempotence."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.conftest import Converger, statuses

TARGET = "/etc/app.conf"


@pytest.mark.parametrize(
    "start, recipe, lines, content, mode",
    [
        pytest.param(None, 'file("/etc/app.conf", content="a\\n")',
                     ["create new file /etc/app.conf",
                      "update content in file /etc/app.conf from none to 87428fc5"],
                     b"a\n", "0644", id="create"),
        pytest.param(None, 'file("/etc/app.conf", content="a\\n", mode="0640", owner="root", '
                     'group="root")',
                     ["create new file /etc/app.conf",
                      "update content in file /etc/app.conf from none to 87428fc5",
                      "change mode from none to '0640'", "change owner from none to 'root'",
                      "change group from none to 'root'"],
                     b"a\n", "0640", id="create-with-mode-and-owner"),
        pytest.param((b"old\n", 0o600), 'file("/etc/app.conf", content="a\\n", mode="0644")',
                     ["update content in file /etc/app.conf from 01d09d19 to 87428fc5",
                      "change mode from '0600' to '0644'"],
                     b"a\n", "0644", id="content-and-mode"),
        pytest.param((b"a\n", 0o600), 'file("/etc/app.conf", content="a\\n", mode=0o640)',
                     ["change mode from '0600' to '0640'"], b"a\n", "0640", id="mode-only"),
        pytest.param((b"a\n", 0o644), 'file("/etc/app.conf", content="a\\n", mode="644")',
                     [], b"a\n", "0644", id="already-set"),
        pytest.param((b"keep\n", 0o600), 'file("/etc/app.conf", content="new\\n", '
                     'action="create_if_missing", mode="0644")',
                     [], b"keep\n", "0600", id="create-if-missing-leaves-existing-alone"),
        pytest.param(None, 'file("/etc/app.conf", content=b"\\x00\\x01", '
                     'action="create_if_missing")',
                     ["create new file /etc/app.conf",
                      "update content in file /etc/app.conf from none to b413f47d"],
                     b"\x00\x01", "0644", id="create-if-missing-creates-bytes"),
        pytest.param((b"x", 0o644), 'file("/etc/app.conf", action="delete")',
                     ["delete file /etc/app.conf"], None, None, id="delete"),
        pytest.param(None, 'file("/etc/app.conf", action="delete")', [], None, None,
                     id="delete-absent"),
        pytest.param(None, 'file("/etc/app.conf")', ["create new file /etc/app.conf"], b"",
                     "0644", id="no-content-creates-an-empty-file"),
        pytest.param((b"a\n", 0o644), 'file("/etc/app.conf", owner="www-data", group=33)',
                     ["change owner from 'root' to 'www-data'",
                      "change group from 'root' to '33'"], b"a\n", "0644",
                     id="owner-and-group-by-name-and-id"),
        pytest.param((b"x", 0o644), 'file("/etc/app.conf", action="delete", owner="gone")',
                     ["delete file /etc/app.conf"], None, None,
                     id="delete-whatever-its-owner-was-to-be"),
    ],
)
def test_file_table(converger: Converger, start, recipe, lines, content, mode) -> None:
    path = converger.path(TARGET)
    if start is not None:
        path.write_bytes(start[0])
        os.chmod(path, start[1])
    events = converger.run("from converge import file\n" + recipe + "\n")
    assert events[0]["changes"] == lines
    assert events[0]["status"] == ("updated" if lines else "up_to_date")
    if content is None:
        assert not path.exists()
    else:
        assert path.read_bytes() == content
        assert "%04o" % stat.S_IMODE(path.stat().st_mode) == mode


def test_second_run_is_up_to_date_and_keeps_mtime(converger: Converger, mtimes) -> None:
    recipe = """
        from converge import directory, file, template
        directory("/srv/app/conf", recursive=True, mode="0750")
        file("/srv/app/conf/a", content="one\\n", mode="0600", owner="www-data", group="33")
        template("/srv/app/conf/b", source="b.j2", variables={"n": 2})
        file("/srv/app/conf/c", content=b"\\xff\\x00", action="create_if_missing")
    """
    converger.write("templates/b.j2", "n={{ n }} host={{ node.hostname }}\n")
    first = converger.run(recipe)
    assert statuses(first) == ["updated"] * 4
    before = mtimes(converger.root)
    second = converger.run(recipe)
    assert statuses(second) == ["up_to_date"] * 4
    assert mtimes(converger.root) == before
    assert converger.path("/srv/app/conf/b").read_text() == "n=2 host=testhost\n"
    st = converger.path("/srv/app/conf/a").stat()
    assert (st.st_uid, st.st_gid) == (33, 33)


def test_plan_mode_changes_nothing(converger: Converger, mtimes) -> None:
    converger.path(TARGET).write_text("old\n")
    before = mtimes(converger.root)
    events = converger.run('from converge import file\nfile("/etc/app.conf", content="new\\n")\n'
                           'file("/etc/other", content="x")\n', mode="plan")
    assert statuses(events) == ["updated", "updated"]
    assert mtimes(converger.root) == before
    assert converger.path(TARGET).read_text() == "old\n"
    assert "-old\n+new\n" in events[0]["diffs"][0]


@pytest.mark.parametrize("prop, table", [("owner", "passwd"), ("group", "group")])
def test_owner_missing_fails_that_resource_only(converger: Converger, prop: str,
                                                table: str) -> None:
    events = converger.run('from converge import file\n'
                           'file("/etc/a", content="a", %s="nosuchone")\n'
                           'file("/etc/b", content="b")\n' % prop)
    assert statuses(events) == ["failed", "updated"]
    assert ("%s 'nosuchone' does not exist in %s/etc/%s" % (prop, converger.root, table)
            in events[0]["error"])
    assert not converger.path("/etc/a").exists()
    assert converger.path("/etc/b").read_text() == "b"


@pytest.mark.parametrize("keep, runs", [(5, 3), (2, 4), (1, 3)])
def test_replaced_file_is_backed_up_and_pruned_exactly(converger: Converger, keep: int,
                                                        runs: int) -> None:
    """Several replacements within one second each keep their own backup (named to
    the microsecond, never overwritten); the ``keep`` newest stay."""
    path = converger.path(TARGET)
    folder = converger.root / "var/lib/converge/backup/etc"
    for n in range(runs):
        path.write_text("version %d\n" % n)
        events = converger.run('from converge import file\n'
                               'file("/etc/app.conf", content="final\\n", backup=%d)\n' % keep)
        assert statuses(events) == ["updated"]
    backups = sorted(folder.iterdir())
    assert [b.read_text() for b in backups] == ["version %d\n" % n
                                                for n in range(runs)][-keep:]
    assert all(b.name.startswith("app.conf.") for b in backups)
    assert all(stat.S_IMODE(b.stat().st_mode) == 0o600 for b in backups)


def test_backups_of_files_on_slash_go_to_the_state_directory(tmp_path: Path,
                                                             monkeypatch) -> None:
    """A run on / keeps replaced files where its journal is: CONVERGE_STATE_DIR."""
    from converge.agent.engine import Engine
    from converge.agent.system import System
    from converge.recipe import compile_recipe

    state = tmp_path / "state"
    monkeypatch.setenv("CONVERGE_STATE_DIR", str(state))
    target = tmp_path / "app.conf"
    target.write_text("old\n")
    recipe = tmp_path / "r.py"
    recipe.write_text('from converge import file\nfile(%r, content="new\\n")\n' % str(target))
    events = Engine(System()).run(compile_recipe(recipe, facts=dict))
    assert statuses(events) == ["updated"]
    kept = list((state / "backup" / str(tmp_path).lstrip("/")).iterdir())
    assert [k.read_text() for k in kept] == ["old\n"]


def test_atomic_write_leaves_no_temp_file(converger: Converger) -> None:
    converger.run('from converge import file\nfile("/etc/app.conf", content="x" * 100000)\n')
    # temp files are named .NAME.converge-PID-RANDOM.tmp (System.write_atomic)
    assert sorted(os.listdir(converger.path("/etc"))) == ["app.conf", "group", "passwd"]
    assert converger.path("/etc/app.conf").read_text() == "x" * 100000
    converger.run('from converge import file\nfile("/etc/app.conf", content="y")\n')
    assert sorted(os.listdir(converger.path("/etc"))) == ["app.conf", "group", "passwd"]


def test_missing_parent_directory_fails_clearly(converger: Converger) -> None:
    events = converger.run('from converge import file\nfile("/nope/x", content="a")\n')
    assert events[0]["status"] == "failed"
    assert "parent directory /nope does not exist" in events[0]["error"]


def test_sensitive_content_never_in_changes_or_diffs(converger: Converger) -> None:
    converger.path(TARGET).write_text("old secret\n")
    events = converger.run('from converge import file\n'
                           'file("/etc/app.conf", content="s3cret\\n", sensitive=True)\n')
    assert events[0]["changes"] == ["update content in file /etc/app.conf (sensitive)"]
    assert events[0]["diffs"] == []
    assert "s3cret" not in repr(events)


def test_relative_path_is_relative_to_cwd(tmp_path: Path, monkeypatch) -> None:
    from converge.agent.engine import Engine
    from converge.agent.system import System
    from converge.recipe import compile_recipe

    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.py").write_text('from converge import file\nfile("x.txt", content="hi")\n')
    plan = compile_recipe(tmp_path / "r.py", facts=dict)
    assert plan.steps[0].id == "file[x.txt]"
    Engine(System()).run(plan)
    assert (tmp_path / "x.txt").read_text() == "hi"


def test_a_deleted_file_is_backed_up_like_a_replaced_one(converger: Converger) -> None:
    converger.path(TARGET).write_text("last words\n")
    events = converger.run('from converge import file\n'
                           'file("/etc/app.conf", action="delete", backup=2)\n')
    assert statuses(events) == ["updated"] and not converger.path(TARGET).exists()
    [backup] = (converger.root / "var/lib/converge/backup/etc").iterdir()
    assert backup.read_text() == "last words\n"


def test_delete_at_a_link_to_a_directory_removes_the_link(converger: Converger) -> None:
    (converger.root / "srv/data").mkdir(parents=True)
    converger.path(TARGET).symlink_to("../srv/data")
    events = converger.run('from converge import file\n'
                           'file("/etc/app.conf", action="delete")\n')
    assert events[0]["changes"] == ["delete symbolic link /etc/app.conf"]
    assert not converger.path(TARGET).is_symlink()
    assert (converger.root / "srv/data").is_dir()
