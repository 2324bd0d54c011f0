"""The managed-file layer (agent/managed.py) itself: sensitive content never in a
diff, whatever type renders it; backups never share a name; the state directory
is one choice for the journal, the backups and the run store."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, List

import pytest

from converge import store
from converge.agent import managed
from converge.agent.system import System
from tests.conftest import Converger

SECRET = "s3cret-0xC0FFEE"


def _changes(converger: Converger, recipe: str) -> List[Any]:
    """The changes of the recipe's one resource, as the engine computes them (the
    engine's own diff filter is not in the way: this is what the type returns)."""
    [step] = converger.compile("from converge import *\n" + recipe + "\n").steps
    resource = step.resource()
    return list(resource.changes(resource.current(converger.system)))


@pytest.mark.parametrize("start, recipe", [
    pytest.param(("/etc/app.conf", "old\n"),
                 'file("/etc/app.conf", content="pw=%s\\n", sensitive=True)' % SECRET,
                 id="file"),
    pytest.param(("/etc/app.conf", "old\n"),
                 'template("/etc/app.conf", source="t.j2", variables={"pw": "%s"}, '
                 'sensitive=True)' % SECRET, id="template"),
    pytest.param(("/etc/cron.d/app", "# old\n"),
                 'cron("job", command="/bin/true %s", cron_file="app", sensitive=True)' % SECRET,
                 id="cron"),
    pytest.param(("/etc/app.conf", "old\n"),
                 'line("/etc/app.conf", "pw=%s", sensitive=True)' % SECRET, id="line"),
    pytest.param(("/etc/systemd/system/app.service", "[Service]\nExecStart=/bin/true\n"),
                 'systemd_unit("app.service", "[Service]\\nEnvironment=PW=%s\\n'
                 'ExecStart=/bin/true\\n", action="create", sensitive=True)' % SECRET,
                 id="systemd_unit"),
    pytest.param(("/etc/app.conf", "old\n"),
                 'remote_file("/etc/app.conf", "file:///srv/src", sensitive=True)',
                 id="remote_file"),
    pytest.param(("/etc/yum.repos.d/tools.repo", "[tools]\n"),
                 'yum_repository("tools", "https://u:%s@x.example/", sensitive=True)' % SECRET,
                 id="yum_repository"),
])
def test_a_sensitive_resource_gives_no_diff_and_no_content(converger: Converger, start,
                                                           recipe: str) -> None:
    path = converger.path(start[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(start[1])
    converger.write("templates/t.j2", "pw={{ pw }}\n")
    converger.path("/srv").mkdir()
    converger.path("/srv/src").write_text("pw=%s\n" % SECRET)
    changes = _changes(converger, recipe)
    writes = [c.data for c in changes if isinstance(c.data, managed.Write)]
    assert writes and SECRET.encode() in writes[-1].content  # it does write the secret
    assert [c.diff for c in changes] == [None] * len(changes)
    assert SECRET not in repr([c.text for c in changes])
    # the same resource, not sensitive, shows its diff: the layer hid it above
    shown = _changes(converger, recipe.replace(", sensitive=True", ""))
    assert any(SECRET in (c.diff or "") for c in shown)


def test_a_file_a_sensitive_resource_writes_hides_its_diff_for_every_writer(
        converger: Converger) -> None:
    """secret_file (plan.mark_secret_files): the cron entry shares a file with a
    sensitive one, so its diff, which would show that file, is hidden too."""
    converger.path("/etc/cron.d").mkdir()
    plan = converger.compile(
        "from converge import cron\n"
        'cron("a", command="/bin/a %s", cron_file="app", sensitive=True)\n'
        'cron("b", command="/bin/b", cron_file="app")\n' % SECRET)
    other = plan.steps[1].resource()
    assert other.meta.secret_file
    changes = other.changes(other.current(converger.system))
    assert changes and [c.diff for c in changes] == [None]


def test_backup_names_are_unique_within_one_microsecond(converger: Converger) -> None:
    system = converger.system
    target = converger.path("/etc/app.conf")
    for n in range(5):
        target.write_text("version %d\n" % n)
        managed.keep_backup(system, "/etc/app.conf", 10, now=1767225600.000001)
    folder = converger.path("/var/lib/converge/backup/etc")
    kept = sorted(folder.iterdir())
    assert [k.name for k in kept] == ["app.conf.20260101000000-%06d" % m for m in range(1, 6)]
    assert [k.read_text() for k in kept] == ["version %d\n" % n for n in range(5)]
    assert {stat.S_IMODE(k.stat().st_mode) for k in kept} == {0o600}
    # and the newest are kept when fewer are wanted
    managed.keep_backup(system, "/etc/app.conf", 2, now=1767225600.000001)
    assert [k.read_text() for k in sorted(folder.iterdir())] == ["version 4\n"] * 2


def test_write_backs_up_replaces_and_removes(converger: Converger) -> None:
    system = converger.system
    target = converger.path("/etc/app.conf")
    target.write_text("old\n")
    os.chmod(target, 0o640)
    managed.write(system, managed.Write("/etc/app.conf", b"new\n", backup=3))
    assert target.read_text() == "new\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # mode None: the replaced file's
    managed.write(system, managed.Write("/etc/app.conf", None, backup=3))
    assert not target.exists()
    folder = converger.path("/var/lib/converge/backup/etc")
    assert sorted(k.read_text() for k in folder.iterdir()) == ["new\n", "old\n"]
    with pytest.raises(Exception, match="parent directory /nope does not exist"):
        managed.write(system, managed.Write("/nope/x", b""))
    managed.write(system, managed.Write("/made/here/x", b"x", 0o600, parents=0o750))
    assert stat.S_IMODE(converger.path("/made/here").stat().st_mode) == 0o750
    assert stat.S_IMODE(converger.path("/made/here/x").stat().st_mode) == 0o600


def test_a_link_at_the_path_is_replaced_not_backed_up_as_what_it_leads_to(
        converger: Converger) -> None:
    """Without follow, a link at a managed path is what gets replaced: the file it
    leads to is neither written nor copied into the backups."""
    victim = converger.path("/etc/victim")
    victim.write_text("victim\n")
    converger.path("/etc/app.conf").symlink_to("victim")
    managed.write(converger.system, managed.Write("/etc/app.conf", b"new\n", backup=3))
    assert victim.read_text() == "victim\n"
    assert converger.path("/etc/app.conf").read_text() == "new\n"
    assert not converger.path("/etc/app.conf").is_symlink()
    assert not converger.path("/var/lib/converge/backup").exists()


def test_one_state_directory_from_converge_state_dir(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The journal, the backups (of a run on /) and the run store share the state
    directory CONVERGE_STATE_DIR names."""
    state = tmp_path / "state"
    monkeypatch.setenv("CONVERGE_STATE_DIR", str(state))
    monkeypatch.delenv("CONVERGE_STORE", raising=False)
    system = System()
    assert system.state_dir() == str(state)
    assert managed.backup_root(system) == str(state) + "/backup"
    assert store.default_url() == "sqlite:///" + str(state / "store.db").lstrip("/")
    target = tmp_path / "app.conf"
    target.write_text("old\n")
    managed.write(system, managed.Write(str(target), b"new\n", backup=1))
    [kept] = (state / "backup" / str(tmp_path).lstrip("/")).iterdir()
    assert kept.read_text() == "old\n"
    # a rooted System keeps its own, under its root, whatever the environment says
    assert System(str(tmp_path / "root")).state_dir() == "/var/lib/converge"
