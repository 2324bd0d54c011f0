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
