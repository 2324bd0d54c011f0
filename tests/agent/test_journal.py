"""The run journal under a temporary root: what a run records, file modes, backups,
sensitive content kept out, pruning, and a journal left readable by a killed run."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest

from converge.agent import journal as jn
from converge.agent import runs
from converge.errors import RunError
from tests.conftest import Converger

STATE = "var/lib/converge"

RECIPE = '''
from converge import directory, execute, file
file("/etc/motd", content="new\\n", mode="0644")
file("/etc/secret", content="hunter2-secret\\n", sensitive=True)
file("/etc/same", content="same\\n")
directory("/srv/app/data", recursive=True)
execute(["true"])
'''


def apply(converger: Converger, text: str, **options: Any) -> List[Dict[str, Any]]:
    return runs.apply_plan(converger.system, converger.compile(text), "apply",
                           runs.Options(**options))


def journals(converger: Converger) -> List[Dict[str, Any]]:
    folder = converger.root / STATE / "runs"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def mode(path: Path) -> str:
    return "%04o" % stat.S_IMODE(path.stat().st_mode)


def test_an_apply_journals_each_resource_with_its_prior_state(converger: Converger) -> None:
    motd = converger.path("/etc/motd")
    motd.write_text("old\n")
    os.chmod(motd, 0o600)
    converger.path("/etc/same").write_text("same\n")
    apply(converger, RECIPE)
    [run] = journals(converger)
    assert run["kind"] == "apply" and run["finished"] and run["recipe"].endswith("recipe.py")
    assert run["recipe_hash"] == converger.compile(RECIPE).digest()
    assert run["summary"]["updated"] == 4 and run["summary"]["up_to_date"] == 1
    records = {r["id"]: r for r in run["resources"]}
    assert records["file[/etc/same]"] == {"id": "file[/etc/same]", "type": "file",
                                          "action": "create", "status": "up_to_date"}
    states = records["file[/etc/motd]"]["files"]["/etc/motd"]
    old = hashlib.sha256(b"old\n").hexdigest()
    assert {k: states["before"][k] for k in ("exists", "sha256", "mode", "uid", "gid")} == {
        "exists": True, "sha256": old, "mode": "0600", "uid": os.getuid(), "gid": os.getgid()}
    assert states["after"]["sha256"] == hashlib.sha256(b"new\n").hexdigest()
    assert states["after"]["mode"] == "0644"
    backup = converger.path(states["before"]["backup"])
    assert backup.read_bytes() == b"old\n" and mode(backup) == "0600"
    assert records["file[/etc/secret]"]["files"]["/etc/secret"]["before"] == {"exists": False}
    assert records["directory[/srv/app/data]"]["before"] == {
        "created": ["/srv/app/data", "/srv/app", "/srv"]}
    assert records["execute[true]"]["irreversible"] == "what a command changed is not known"


def test_journal_and_backup_modes(converger: Converger) -> None:
    converger.path("/etc/motd").write_text("old\n")
    apply(converger, RECIPE)
    state = converger.root / STATE
    assert mode(state / "runs") == "0700"
    assert mode(state / "backup") == "0700"
    for path in (state / "runs").iterdir():
        assert mode(path) == "0600"
    for path in (state / "backup").rglob("*"):
        assert mode(path) == ("0700" if path.is_dir() else "0600"), path


def test_sensitive_content_is_never_in_the_journal(converger: Converger) -> None:
    converger.path("/etc/secret").write_text("old-hunter2-secret\n")
    apply(converger, '''
from converge import file, sysctl
file("/etc/secret", content="hunter2-secret\\n", sensitive=True)
''')
    text = (converger.root / STATE / "runs").glob("*.json").__next__().read_text()
    assert "hunter2" not in text
    record = json.loads(text)["resources"][0]
    assert record["sensitive"] is True
    before = record["files"]["/etc/secret"]["before"]
    # the backup rollback needs exists, 0600 under the 0700 backup directory
    assert converger.path(before["backup"]).read_bytes() == b"old-hunter2-secret\n"


def test_sensitive_hook_data_is_sealed_in_a_backup(converger: Converger) -> None:
    (converger.root / "proc/sys/vm").mkdir(parents=True)
    converger.path("/proc/sys/vm/swappiness").write_text("60\n")
    apply(converger, 'from converge import sysctl\n'
                     'sysctl("vm.swappiness", 17, sensitive=True)\n')
    [run] = journals(converger)
    record = run["resources"][0]
    assert set(record["before"]) == {"sealed"}
    assert '"60"' not in json.dumps(run) and "17" not in json.dumps(record["changes"])
    assert jn.unseal(converger.system, record["before"]) == {"key": "vm.swappiness",
                                                             "runtime": "60"}
    assert mode(converger.path(record["before"]["sealed"])) == "0600"


def test_plan_mode_writes_no_journal(converger: Converger) -> None:
    runs.apply_plan(converger.system, converger.compile(RECIPE), "plan")
    assert not (converger.root / STATE / "runs").exists()


def test_old_runs_and_their_backups_are_pruned(converger: Converger) -> None:
    for i in range(4):
        apply(converger, 'from converge import file\nfile("/etc/motd", content="%d\\n")\n' % i,
              keep_runs=2)
    left = journals(converger)
    assert len(left) == 2
    backups = sorted(p.name for p in (converger.root / STATE / "backup/runs").iterdir())
    assert backups == [r["id"] for r in left]
    assert jn.run_ids(converger.system) == [r["id"] for r in left]


def test_run_ids_sort_in_time_order_and_resolve_by_prefix(converger: Converger) -> None:
    for i in range(3):
        apply(converger, 'from converge import file\nfile("/etc/motd", content="%d\\n")\n' % i)
    ids = jn.run_ids(converger.system)
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert [r["started"] for r in journals(converger)] == sorted(
        r["started"] for r in journals(converger))
    assert jn.load(converger.system, ids[1])["id"] == ids[1]
    history = jn.history(converger.system)
    assert [h["id"] for h in history] == ids
    assert history[0]["changed"][0]["id"] == "file[/etc/motd]"


def test_a_finished_run_leaves_its_journal_and_no_log(converger: Converger) -> None:
    recipe = "from converge import file\nfile('/etc/same', content='same\\n')\n"
    apply(converger, recipe)
    folder = converger.root / STATE / "runs"
    first = {p.name for p in folder.iterdir()}
    apply(converger, recipe)
    [new] = {p.name for p in folder.iterdir()} - first
    assert new.endswith(".json")  # no write-ahead log was opened, none is left
    assert not list(folder.glob("*.partial"))


def test_a_killed_run_leaves_a_readable_journal(converger: Converger, tmp_path: Path) -> None:
    """SIGKILL in the middle of a run: the journal on disk says what it had done."""
    recipe = converger.write("killed.py", '''
from converge import execute, file
file("/etc/first", content="1\\n")
execute("kill -9 $PPID", shell=True)
file("/etc/never", content="2\\n")
''')
    done = subprocess.run([sys.executable, "-m", "converge", "apply", "--root",
                           str(converger.root), str(recipe)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == -9
    assert journals(converger) == []  # killed before its end: its write-ahead log only
    [run_id] = jn.run_ids(converger.system)
    assert (converger.root / STATE / "runs" / (run_id + ".partial")).is_file()
    run = jn.load(converger.system, run_id)
    assert run["finished"] is None
    assert [(r["id"], r["status"]) for r in run["resources"]] == [
        ("file[/etc/first]", "updated"), ("execute[kill -9 $PPID]", "applying")]
    assert jn.history(converger.system)[0]["interrupted"] is True
    events = runs.rollback(converger.system)
    assert not converger.path("/etc/first").exists()
    assert [e["status"] for e in events] == ["skipped", "updated"]


def test_history_lists_each_run_with_what_it_changed(converger: Converger) -> None:
    converger.path("/etc/same").write_text("same\n")
    apply(converger, RECIPE)
    [run] = journals(converger)
    [entry] = jn.history(converger.system)
    assert {k: entry[k] for k in ("id", "kind", "of", "recipe", "recipe_hash", "started",
                                  "finished", "summary")} == {
        k: run.get(k) for k in ("id", "kind", "of", "recipe", "recipe_hash", "started",
                                "finished", "summary")}
    assert entry["recipe"].endswith("recipe.py") and entry["recipe_hash"]
    assert entry["interrupted"] is False
    changed = {c["id"]: c for c in entry["changed"]}
    assert sorted(changed) == ["directory[/srv/app/data]", "execute[true]", "file[/etc/motd]",
                               "file[/etc/secret]"]
    assert changed["file[/etc/motd]"] == {
        "id": "file[/etc/motd]", "action": "create", "status": "updated",
        "changes": ["create new file /etc/motd",
                    "update content in file /etc/motd from none to %s"
                    % hashlib.sha256(b"new\n").hexdigest()[:8],
                    "change mode from none to '0644'"]}


def test_history_calls_a_run_interrupted_by_its_flag_or_its_missing_end(
        converger: Converger) -> None:
    apply(converger, 'from converge import file\nfile("/etc/a", content="a\\n")\n')
    [path] = sorted((converger.root / STATE / "runs").glob("*.json"))
    run = json.loads(path.read_text())
    for flag, finished, interrupted in ((True, run["finished"], True),  # Ctrl-C: ended
                                        (False, None, True), (False, run["finished"], False)):
        path.write_text(json.dumps({**run, "interrupted": flag, "finished": finished}))
        assert jn.history(converger.system)[0]["interrupted"] is interrupted


def test_a_missing_backup_is_named_with_what_to_do(converger: Converger) -> None:
    with pytest.raises(RunError) as caught:
        jn.load_blob(converger.system, "/var/lib/converge/backup/gone")
    assert caught.value.message == "backup /var/lib/converge/backup/gone is missing"
    assert caught.value.hint == "it was pruned or deleted; restore the file by hand"


# -- what the journal records about each resource, and reading journals back -------------


def test_fingerprint_of_a_dangling_link_names_the_link_and_its_owner(converger: Converger
                                                                    ) -> None:
    os.symlink("/nowhere", converger.path("/etc/dangling"))
    assert jn.fingerprint(converger.system, "/etc/dangling") == {
        "exists": True, "link": "/nowhere", "kind": "link", "uid": os.getuid(),
        "gid": os.getgid()}


def test_fingerprint_of_an_empty_file_hashes_no_bytes(converger: Converger) -> None:
    converger.path("/etc/empty").write_bytes(b"")
    state = jn.fingerprint(converger.system, "/etc/empty")
    assert state["sha256"] == hashlib.sha256(b"").hexdigest()


@pytest.mark.parametrize("key, other", [("exists", False), ("sha256", "0" * 64),
                                        ("mode", "0600"), ("uid", 1234), ("gid", 1234),
                                        ("kind", "directory"), ("link", "/elsewhere")])
def test_same_state_tells_apart_files_that_differ_in_any_one_property(key: str, other: Any
                                                                       ) -> None:
    """What a rollback compares to know whether someone changed a file since the run."""
    state = {"exists": True, "sha256": "a" * 64, "mode": "0644", "uid": 0, "gid": 0,
             "kind": "other", "link": "/target", "backup": "/b/1"}
    assert jn.same_state(state, dict(state, backup="/b/2"))  # backup paths aside
    assert not jn.same_state(state, dict(state, **{key: other}))
    assert not jn.same_state(None, state) and not jn.same_state(state, None)


def test_a_retried_resource_keeps_one_record_with_the_state_before_its_first_try(
        converger: Converger) -> None:
    marker = converger.path("/tmp/tried")
    apply(converger, '''
from converge import execute
execute(["sh", "-c", 'test -e "$1" || { touch "$1"; exit 1; }', "sh", %r], retries=1,
        retry_delay=0)
''' % str(marker))
    [run] = journals(converger)
    assert [(r["id"].split("[")[0], r["status"]) for r in run["resources"]] == [
        ("execute", "updated")]


def test_a_run_killed_while_a_resource_applies_leaves_it_applying_with_its_source(
        converger: Converger, tmp_path: Path) -> None:
    """The write-ahead log as a kill during the command would leave it (the command
    copies it): the record is there, status applying, naming its recipe line."""
    runs_dir = converger.root / STATE / "runs"
    copy = tmp_path / "copy"
    copy.mkdir()
    apply(converger, '''
from converge import execute, file
file("/etc/first", content="1\\n")
execute(["sh", "-c", 'cp "$1"/*.partial "$2"/ && stat -c %%a "$1"/*.partial > "$2"/mode',
         "sh", %r, %r])
''' % (str(runs_dir), str(copy)))
    assert (copy / "mode").read_text() == "600\n"  # the log is private, as the journal
    [log] = copy.glob("*.partial")
    [finished] = journals(converger)
    for path in runs_dir.iterdir():
        path.unlink()
    (runs_dir / log.name).write_bytes(log.read_bytes())
    run = jn.load(converger.system, finished["id"])
    assert run["finished"] is None and run["summary"] is None and run["pid"] == os.getpid()
    assert run["started"] == finished["started"] and run["kind"] == "apply"
    first, command = run["resources"]
    assert first["status"] == "updated" and command["status"] == "applying"
    assert command["source"].endswith("recipe.py:4") and first["source"].endswith("recipe.py:3")
    assert jn.changed(run) == [first, command]


def test_the_journal_records_why_a_resource_failed_was_skipped_or_ran(
        converger: Converger) -> None:
    apply(converger, '''
from converge import execute, file
target = file("/etc/notified", content="n", action="nothing")
file("/etc/one", content="1", notifies=target.create)
execute(["false"], ignore_failure=True)
file("/etc/guarded", content="g", only_if=["false"])
file("/missing/x", content="x")
''')
    [run] = journals(converger)
    records = [(r["id"], {k: r.get(k) for k in ("status", "skip_reason", "notified_by",
                                                  "ignored")}) for r in run["resources"]]
    assert records == [
        ("file[/etc/notified]", {"status": "skipped", "skip_reason": "action nothing",
                                 "notified_by": None, "ignored": None}),
        ("file[/etc/one]", {"status": "updated", "skip_reason": None, "notified_by": None,
                            "ignored": None}),
        ("execute[false]", {"status": "failed", "skip_reason": None, "notified_by": None,
                            "ignored": True}),
        ("file[/etc/guarded]", {"status": "skipped", "skip_reason": "only_if",
                                "notified_by": None, "ignored": None}),
        ("file[/missing/x]", {"status": "failed", "skip_reason": None, "notified_by": None,
                              "ignored": None}),
        ("file[/etc/notified]", {"status": "updated", "skip_reason": None,
                                 "notified_by": "file[/etc/one]", "ignored": None})]
    assert run["resources"][2]["error"].startswith("the command exited 1")
    [entry] = jn.history(converger.system)  # a failed file had begun: it is listed, why too
    assert [c for c in entry["changed"] if c["status"] == "failed"] == [
        {"id": "file[/missing/x]", "action": "create", "status": "failed",
         "changes": run["resources"][4]["changes"],
         "error": "parent directory /missing does not exist\n"
                  "declare it first: directory('/missing', recursive=True)"}]


def test_an_interrupted_resource_is_journaled_as_interrupted(converger: Converger) -> None:
    journal = jn.Journal(converger.system)  # an apply of no recipe file
    journal.event({"id": "file[/etc/a]", "type": "file", "action": "create",
                   "status": "failed", "error": "interrupted by SIGINT", "interrupted": True})
    journal.finish({"failed": 1}, interrupted=True)
    [run] = journals(converger)
    assert run["interrupted"] is True
    assert (run["kind"], run["of"], run["recipe"], run["recipe_hash"]) == ("apply", None, "", "")
    assert run["resources"] == [{"id": "file[/etc/a]", "type": "file", "action": "create",
                                 "status": "failed", "error": "interrupted by SIGINT",
                                 "interrupted": True}]


def test_each_sensitive_resource_seals_its_own_prior_state(converger: Converger) -> None:
    (converger.root / "proc/sys/vm").mkdir(parents=True)
    converger.path("/proc/sys/vm/swappiness").write_text("60\n")
    converger.path("/proc/sys/vm/overcommit_memory").write_text("0\n")
    apply(converger, 'from converge import sysctl\n'
                     'sysctl("vm.swappiness", 17, sensitive=True)\n'
                     'sysctl("vm.overcommit_memory", 1, sensitive=True)\n')
    [run] = journals(converger)
    assert [jn.unseal(converger.system, r["before"]) for r in run["resources"]] == [
        {"key": "vm.swappiness", "runtime": "60"},
        {"key": "vm.overcommit_memory", "runtime": "0"}]


def test_changed_counts_what_a_run_changed_or_began_to_change() -> None:
    records = [{"id": "updated", "status": "updated"},
               {"id": "applying", "status": "applying"},
               {"id": "failed-with-files", "status": "failed", "files": {}},
               {"id": "failed-with-before", "status": "failed", "before": {}},
               {"id": "failed-before-applying", "status": "failed"},
               {"id": "up-to-date", "status": "up_to_date", "files": {}},
               {"id": "skipped", "status": "skipped", "before": {}}]
    assert [r["id"] for r in jn.changed({"resources": records})] == [
        "updated", "applying", "failed-with-files", "failed-with-before"]


def test_load_finds_a_run_by_its_id_or_a_unique_beginning(converger: Converger) -> None:
    folder = converger.root / STATE / "runs"
    folder.mkdir(parents=True)
    for run_id in ("20260101T000000-000001", "20260101T000000-0000012",
                   "20260102T000000-000001"):
        (folder / (run_id + ".json")).write_text(json.dumps({"version": 1, "id": run_id}))
    assert jn.load(converger.system, "20260101T000000-000001")["id"] == (
        "20260101T000000-000001")  # the exact id, though it begins another
    assert jn.load(converger.system, "20260102")["id"] == "20260102T000000-000001"
    with pytest.raises(RunError) as caught:
        jn.load(converger.system, "20260101")
    assert caught.value.message == ("run id 20260101 is ambiguous: 20260101T000000-000001, "
                                    "20260101T000000-0000012")
    assert caught.value.hint == "give more of the id"
    with pytest.raises(RunError) as caught:
        jn.load(converger.system, "2027")
    assert caught.value.message == "no run 2027 in the journal of this machine"
    assert caught.value.hint == "list the runs with: converge history"


@pytest.mark.parametrize("text, problem", [
    ('{"version": 2, "id": "x"}', "is not a version 1 journal"),
    ('["not", "a", "journal"]', "is not a version 1 journal"),
    ('{"version": 1', "is damaged: "),
])
def test_a_journal_of_another_version_or_damaged_is_named(converger: Converger, text: str,
                                                         problem: str) -> None:
    folder = converger.root / STATE / "runs"
    folder.mkdir(parents=True)
    (folder / "20260101T000000-000001.json").write_text(text)
    with pytest.raises(RunError) as caught:
        jn.load(converger.system, "20260101T000000-000001")
    path = "/var/lib/converge/runs/20260101T000000-000001.json"
    assert caught.value.message.startswith("the journal %s %s" % (path, problem))


def test_with_nothing_changed_there_is_no_run_to_roll_back(converger: Converger) -> None:
    converger.path("/etc/same").write_text("same\n")
    apply(converger, "from converge import file\nfile('/etc/same', content='same\\n')\n")
    apply(converger, "from converge import file\nfile('/etc/same', content='same\\n')\n")
    with pytest.raises(RunError) as caught:
        jn.last_changed(converger.system)
    assert caught.value.message == "no run in the journal of this machine changed anything"
    assert caught.value.hint == "list the runs with: converge history"


def test_history_lists_a_changed_record_without_change_lines_with_none(
        converger: Converger) -> None:
    folder = converger.root / STATE / "runs"
    folder.mkdir(parents=True)
    (folder / "20260101T000000-000001.json").write_text(json.dumps({
        "version": 1, "id": "20260101T000000-000001", "kind": "apply", "finished": "x",
        "resources": [{"id": "file[/etc/a]", "action": "create", "status": "updated"}]}))
    [entry] = jn.history(converger.system)
    assert entry["changed"] == [{"id": "file[/etc/a]", "action": "create",
                                 "status": "updated", "changes": []}]


def test_runs_are_stamped_in_utc_and_named_by_their_start(converger: Converger) -> None:
    import re
    import time

    before = time.time()
    apply(converger, "from converge import file\nfile('/etc/a', content='a\\n')\n")
    after = time.time()
    [run] = journals(converger)
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    for key in ("started", "finished"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", run[key]), run[key]
        assert (time.strftime(stamp, time.gmtime(before)) <= run[key]
                <= time.strftime(stamp, time.gmtime(after)))
    assert re.fullmatch(r"\d{8}T\d{6}-\d{6}", run["id"]), run["id"]
    assert run["id"][:15] == run["started"].replace("-", "").replace(":", "")[:15]


def test_two_runs_started_in_the_same_microsecond_get_two_ids(
        converger: Converger, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jn.time, "time", lambda: 1767225600.25)
    first = jn.Journal(converger.system)
    first.finish({})
    second = jn.Journal(converger.system)
    second.finish({})
    assert first.id == "20260101T000000-250000"
    assert second.id != first.id and second.id.startswith("20260101T000000-")
    assert jn.run_ids(converger.system) == sorted([first.id, second.id])


def test_keep_one_run_and_no_fewer(converger: Converger) -> None:
    with pytest.raises(ValueError, match="keep must be 1 or more"):
        jn.Journal(converger.system, keep=0)
    for i in range(2):
        apply(converger, 'from converge import file\nfile("/etc/motd", content="%d\\n")\n' % i,
              keep_runs=1)
    assert len(journals(converger)) == 1


def test_a_state_directory_made_with_its_parents_leaves_them_0755(converger: Converger
                                                                  ) -> None:
    import shutil

    shutil.rmtree(converger.root / "var")
    apply(converger, "from converge import file\nfile('/etc/a', content='a\\n')\n")
    assert [mode(converger.root / p) for p in ("var", "var/lib", STATE, STATE + "/runs")] == [
        "0755", "0755", "0755", "0700"]


def test_a_backup_folder_opened_up_by_hand_is_made_private_again(converger: Converger
                                                                 ) -> None:
    apply(converger, "from converge import file\nfile('/etc/a', content='a\\n')\n")
    backup = converger.root / STATE / "backup"
    os.chmod(backup, 0o755)
    apply(converger, "from converge import file\nfile('/etc/a', content='b\\n')\n")
    assert mode(backup) == "0700"


def test_a_runs_folder_owned_by_someone_else_is_refused_with_what_to_do(
        converger: Converger) -> None:
    runs_dir = converger.root / STATE / "runs"
    runs_dir.mkdir(parents=True, mode=0o700)
    os.chown(runs_dir, 4242, 4242)
    with pytest.raises(RunError) as caught:
        jn.Journal(converger.system)
    assert caught.value.message == (
        "the state directory /var/lib/converge/runs is owned by uid 4242, not by the user "
        "converge runs as (uid %d): someone else could read or change the journal"
        % os.geteuid())
    assert caught.value.hint == ("remove it (converge creates it again), or set "
                                 "CONVERGE_STATE_DIR to a directory of your own")


def test_a_dead_writers_temp_file_in_a_kept_backup_folder_is_swept(converger: Converger
                                                                   ) -> None:
    converger.path("/etc/a").write_text("a\n")
    apply(converger, "from converge import file\nfile('/etc/a', content='b\\n')\n")
    [folder] = (converger.root / STATE / "backup/runs").iterdir()
    dead = folder / ".blob.converge-4194305-0a1b2c.tmp"  # above any pid_max
    dead.write_bytes(b"half a backup")
    from converge.agent.system import System

    runs.apply_plan(System(str(converger.root), cwd="/"),  # the next run: a process anew
                    converger.compile("from converge import file\nfile('/etc/a', content='c')\n"))
    assert folder.is_dir() and not dead.exists()
