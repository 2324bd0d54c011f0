"""Rollback under a temporary root: each resource type that can run rooted is put
back exactly as it was (content, mode, owner; created files and directories
gone), a second rollback changes nothing, and files changed since are refused."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

from converge.agent import journal as jn
from converge.agent import runs
from converge.errors import RunError
from tests.conftest import Converger, statuses

Snapshot = Dict[str, Tuple[Any, ...]]


def snapshot(root: Path) -> Snapshot:
    """Every path under the root but converge's own state: kind, mode, owner, content."""
    out: Snapshot = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if rel.startswith("var/lib/converge"):
            continue
        st = path.lstat()
        content = path.read_bytes() if stat.S_ISREG(st.st_mode) else None
        out[rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                    content)
    return out


def apply(converger: Converger, text: str) -> List[Dict[str, Any]]:
    return runs.apply_plan(converger.system, converger.compile(text))


def start_state(converger: Converger) -> None:
    """A machine with things to change: files of several modes and owners, a cron.d
    file shared by two entries, a sysctl with its live value and no persisted file."""
    for path, text, mode, owner in (("/etc/motd", "old motd\n", 0o600, 33),
                                    ("/etc/ssh/sshd_config", "PermitRootLogin yes\nPort 22\n",
                                     0o640, 0),
                                    ("/etc/legacy.conf", "legacy\n", 0o644, 0),
                                    ("/etc/cron.d/jobs", "# converge: keep\n1 * * * * root "
                                     "/bin/true\n", 0o644, 0)):
        target = converger.path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        os.chmod(target, mode)
        os.chown(target, owner, owner)
    (converger.root / "proc/sys/vm").mkdir(parents=True)
    converger.path("/proc/sys/vm/swappiness").write_text("60\n")


RECIPE = '''
from converge import cron, directory, file, line, sysctl, template
file("/etc/motd", content="new motd\\n", mode="0644", owner="root", group="root")
file("/etc/created.conf", content="created\\n")
file("/etc/legacy.conf", action="delete")
line("/etc/ssh/sshd_config", "PermitRootLogin no", match=r"^PermitRootLogin")
directory("/srv/app/releases", recursive=True, mode="0750")
sysctl("vm.swappiness", 10)
cron("collect", minute="*/10", command="/usr/lib/sysstat/sa1 1 1", cron_file="jobs")
cron("mine", hour=3, command="/usr/local/bin/backup", user="www-data")
'''


def test_rollback_restores_every_rooted_type_exactly(converger: Converger) -> None:
    start_state(converger)
    before = snapshot(converger.root)
    first = apply(converger, RECIPE)
    assert statuses(first) == ["updated"] * 8
    assert converger.path("/etc/motd").read_text() == "new motd\n"
    assert converger.path("/proc/sys/vm/swappiness").read_text() == "10\n"
    assert snapshot(converger.root) != before

    run_id = jn.run_ids(converger.system)[0]
    events = runs.rollback(converger.system)
    assert [e for e in events if e["status"] == "failed"] == []
    assert snapshot(converger.root) == before
    assert {e["source"] for e in events} == {"rollback of %s" % run_id}
    ids = [e["id"] for e in events]
    # newest first; under a root a crontab is its spool file
    assert ids.index("file[/etc/motd]") > ids.index("file[/var/spool/cron/crontabs/www-data]")
    assert "directory[/srv]" in ids and "file[/etc/sysctl.d/99-converge-vm.swappiness.conf]" \
        in ids

    again = runs.rollback(converger.system)
    assert set(statuses(again)) == {"up_to_date"}
    assert snapshot(converger.root) == before


def test_rollback_is_journaled_as_a_run_of_its_own(converger: Converger) -> None:
    start_state(converger)
    apply(converger, RECIPE)
    runs.rollback(converger.system)
    [applied, rolled] = jn.history(converger.system)
    assert (rolled["kind"], rolled["of"]) == ("rollback", applied["id"])
    assert rolled["summary"]["updated"] == len(rolled["changed"]) > 0
    # the default is the last *apply* that changed something, not the rollback
    assert jn.last_changed(converger.system)["id"] == applied["id"]
    # and the rollback itself can be rolled back: the recipe's state again
    runs.rollback(converger.system, rolled["id"])
    assert converger.path("/etc/motd").read_text() == "new motd\n"
    assert not converger.path("/etc/legacy.conf").exists()


def sha8(data: bytes) -> str:
    """The short hash rollback's messages show for a content."""
    return hashlib.sha256(data).hexdigest()[:8]


def test_a_file_changed_since_the_run_is_refused_unless_forced(converger: Converger) -> None:
    start_state(converger)
    apply(converger, RECIPE)
    motd = converger.path("/etc/motd")
    motd.write_text("edited by hand\n")
    os.chmod(converger.path("/etc/created.conf"), 0o600)
    untouched = snapshot(converger.root)
    with pytest.raises(RunError) as caught:
        runs.rollback(converger.system)
    message = str(caught.value)
    assert "2 files were changed since that run" in message
    assert "/etc/motd: content is now %s, the run left %s" % (
        sha8(b"edited by hand\n"), sha8(b"new motd\n")) in message
    assert "/etc/created.conf: mode is now 0600, the run left 0644" in message
    assert "--force" in message
    assert snapshot(converger.root) == untouched
    assert len(jn.run_ids(converger.system)) == 1  # refused before a journal was started

    runs.rollback(converger.system, force=True)
    assert motd.read_text() == "old motd\n"
    assert not converger.path("/etc/created.conf").exists()


def test_content_conflict_names_both_hashes(converger: Converger) -> None:
    converger.path("/etc/motd").write_text("old\n")
    apply(converger, 'from converge import file\nfile("/etc/motd", content="new\\n")\n')
    converger.path("/etc/motd").write_text("mine\n")
    with pytest.raises(RunError, match=r"/etc/motd: content is now ([0-9a-f]{8}), the run "
                                       r"left ([0-9a-f]{8})") as caught:
        runs.rollback(converger.system)
    assert str(caught.value).count("/etc/motd: content is now %s, the run left %s"
                                      % (sha8(b"mine\n"), sha8(b"new\n"))) == 1


def test_a_sensitive_file_conflict_shows_no_hash(converger: Converger) -> None:
    converger.path("/etc/secret").write_text("old\n")
    apply(converger, 'from converge import file\n'
                     'file("/etc/secret", content="new\\n", sensitive=True)\n')
    converger.path("/etc/secret").write_text("mine\n")
    with pytest.raises(RunError, match="/etc/secret: its content changed\n"):
        runs.rollback(converger.system)


def test_several_resources_on_one_file_restore_it_once_to_the_first_state(
        converger: Converger) -> None:
    converger.path("/etc/app.conf").write_text("a=1\n")
    apply(converger, '''
from converge import line
line("/etc/app.conf", "b=2")
line("/etc/app.conf", "c=3")
''')
    assert converger.path("/etc/app.conf").read_text() == "a=1\nb=2\nc=3\n"
    events = runs.rollback(converger.system)
    assert [e["id"] for e in events] == ["file[/etc/app.conf]"]
    assert converger.path("/etc/app.conf").read_text() == "a=1\n"


def test_unknown_run_and_nothing_to_roll_back(converger: Converger) -> None:
    with pytest.raises(RunError, match="no run in the journal of this machine changed"):
        runs.rollback(converger.system)
    converger.path("/etc/motd").write_text("same\n")
    apply(converger, 'from converge import file\nfile("/etc/motd", content="same\\n")\n')
    with pytest.raises(RunError, match="changed anything"):
        runs.rollback(converger.system)
    with pytest.raises(RunError, match="no run 1999 in the journal"):
        runs.rollback(converger.system, "1999")


def test_a_pruned_backup_is_refused_before_anything_changes(converger: Converger) -> None:
    converger.path("/etc/a").write_text("a\n")
    converger.path("/etc/b").write_text("b\n")
    apply(converger, 'from converge import file\nfile("/etc/b", content="B\\n")\n'
                     'file("/etc/a", content="A\\n")\n')
    run = jn.load(converger.system, jn.run_ids(converger.system)[0])
    os.unlink(converger.path(run["resources"][1]["files"]["/etc/a"]["before"]["backup"]))
    with pytest.raises(RunError, match="backup .* is missing"):
        runs.rollback(converger.system)
    assert converger.path("/etc/b").read_text() == "B\n"


@pytest.mark.parametrize("props", [
    pytest.param({"minute": "*/10", "command": "/usr/lib/sysstat/sa1 1 1"}, id="fields"),
    pytest.param({"hour": "2", "minute": "30", "weekday": "1-5", "command": "a  b   c",
                  "environment": {"MAILTO": "ops@example.com", "EMPTY": ""}}, id="environment"),
    pytest.param({"special": "@reboot", "command": "/usr/local/bin/warm"}, id="special"),
    pytest.param({"minute": "5", "command": "/bin/true", "disabled": True}, id="disabled"),
])
def test_a_crontab_entry_is_recreated_from_its_lines(props: Dict[str, Any]) -> None:
    """A user's live crontab is undone entry by entry: the lines a rollback reads
    back must make the same entry."""
    from converge.resources._crontab import parse_entry
    from converge.resources.cron import Cron

    entry = Cron(name="job", user="alice", **props)
    again = Cron(name="job", user="alice", **parse_entry(entry.block()))
    assert again.block() == entry.block()


def test_what_a_rollback_cannot_undo_is_a_skipped_event_saying_why(converger: Converger
                                                                     ) -> None:
    converger.path("/etc/motd").write_text("old\n")
    apply(converger, 'from converge import execute, file\nexecute(["true"])\n'
                     'file("/etc/motd", content="new\\n")\n')
    run_id = jn.run_ids(converger.system)[0]
    events = runs.rollback(converger.system)
    assert [(e["id"], e["status"], e["source"]) for e in events] == [
        ("execute[true]", "skipped", "rollback of %s" % run_id),
        ("file[/etc/motd]", "updated", "rollback of %s" % run_id)]
    assert events[0] == {
        "id": "execute[true]", "type": "execute", "action": "run", "status": "skipped",
        "changes": [], "diffs": [], "error": None, "warnings": [],
        "source": "rollback of %s" % run_id,
        "skip_reason": "no rollback: what a command changed is not known"}


def test_a_sensitive_value_is_put_back_without_showing_it(converger: Converger) -> None:
    import json

    (converger.root / "proc/sys/vm").mkdir(parents=True)
    converger.path("/proc/sys/vm/swappiness").write_text("60\n")
    apply(converger, 'from converge import sysctl\n'
                     'sysctl("vm.swappiness", 17, sensitive=True)\n')
    events = runs.rollback(converger.system)
    assert converger.path("/proc/sys/vm/swappiness").read_text() == "60\n"
    assert "60" not in json.dumps([[e["changes"], e["diffs"]] for e in events])
    assert "17" not in json.dumps([[e["changes"], e["diffs"]] for e in events])


def test_a_file_replaced_by_a_link_or_chowned_is_named_with_each_difference(
        converger: Converger) -> None:
    converger.path("/etc/motd").write_text("old\n")
    apply(converger, 'from converge import file\nfile("/etc/motd", content="new\\n", '
                     'mode="0644")\n')
    run_id = jn.run_ids(converger.system)[0]
    real = converger.path("/etc/real")
    real.write_text("new\n")
    os.chmod(real, 0o600)
    os.chown(real, 33, 34)
    converger.path("/etc/motd").unlink()
    os.symlink("/etc/real", converger.path("/etc/motd"))
    with pytest.raises(RunError) as caught:
        runs.rollback(converger.system)
    assert caught.value.message == (
        "rollback of run %s refused: 1 file was changed since that run:\n"
        "  /etc/motd: it is now a symbolic link to /etc/real, the run left a file; "
        "mode is now 0600, the run left 0644; owner is now 33, the run left 0; "
        "group is now 34, the run left 0" % run_id)
    assert caught.value.hint == ("look at what changed; run again with --force to restore "
                                 "them anyway")


def test_two_conflicts_are_listed_one_a_line(converger: Converger) -> None:
    apply(converger, 'from converge import file\nfile("/etc/a", content="a\\n")\n'
                     'file("/etc/b", content="b\\n")\n')
    converger.path("/etc/a").write_text("A\n")
    converger.path("/etc/b").write_text("B\n")
    with pytest.raises(RunError) as caught:
        runs.rollback(converger.system)
    assert caught.value.message.split(":\n", 1)[1] == (
        "  /etc/b: content is now %s, the run left %s\n"
        "  /etc/a: content is now %s, the run left %s"
        % (sha8(b"B\n"), sha8(b"b\n"), sha8(b"A\n"), sha8(b"a\n")))
    assert " 2 files were changed since that run" in caught.value.message


def test_only_packages_the_run_installed_are_removals_to_confirm(converger: Converger
                                                                  ) -> None:
    from converge.agent import rollback as rb

    record = {"id": "package[htop, vim]", "type": "package", "action": "install",
              "status": "updated", "changes": [],
              "before": {"provider": "apt", "packages": {"htop": None, "vim": "2:9.0"}}}
    restore = rb.build(converger.system, {"id": "20260101T000000-000001",
                                          "resources": [record]})
    assert restore.removes == ["htop"]
    assert restore.preview() == {"run": "20260101T000000-000001", "remove_packages": ["htop"],
                                 "conflicts": [], "steps": 2}
    assert [(s.type, s.action) for s in restore.steps] == [("package", "install"),
                                                            ("package", "remove")]
    with pytest.raises(RunError) as caught:
        rb.refuse_removals(restore)
    assert caught.value.message == ("rollback of run 20260101T000000-000001 would remove "
                                    "packages: htop; nothing was changed")
    assert caught.value.hint == "confirm with --yes"


def test_a_link_the_run_made_is_not_called_changed_when_only_its_file_is(
        converger: Converger) -> None:
    real = converger.path("/etc/real")
    real.write_text("real\n")
    os.chmod(real, 0o644)
    apply(converger, 'from converge import link\nlink("/etc/motd", to="/etc/real")\n')
    run_id = jn.run_ids(converger.system)[0]
    os.chmod(real, 0o600)
    with pytest.raises(RunError) as caught:
        runs.rollback(converger.system)
    assert caught.value.message == (
        "rollback of run %s refused: 1 file was changed since that run:\n"
        "  /etc/motd: mode is now 0600, the run left 0644" % run_id)


def test_a_sensitive_files_restore_is_secret_in_the_rollback_and_in_its_rollback(
        converger: Converger) -> None:
    from converge.agent import rollback as rb

    converger.path("/etc/secret").write_text("old\n")
    apply(converger, 'from converge import file\n'
                     'file("/etc/secret", content="new\\n", sensitive=True)\n'
                     'file("/etc/plain", content="plain\\n")\n')
    applied = jn.last_changed(converger.system)
    assert rb.build(converger.system, applied).secret_files == ["/etc/secret"]
    runs.rollback(converger.system)
    [rolled] = [r for r in jn.history(converger.system) if r["kind"] == "rollback"]
    again = rb.build(converger.system, jn.load(converger.system, rolled["id"]))
    assert again.secret_files == ["/etc/secret"]
    assert [s.id for s in again.steps if s.secret_file] == ["file[/etc/secret]"]
