"""One way to reach a path (agent/paths.py), under a temporary root: links a user
other than root placed are never followed, root's own links in root-only
directories are (to manage what they point to), dangling ones are refused, link
targets stay inside the root, owner is set before mode, and the journal, the
run lock and the state directory go the same way.

uid 1000 plays alice: links and directories are made by this (root) process and
handed to her with lchown, which is what her own ``ln -s`` would leave. The lab
tests in tests/lab/test_symlink_attacks.py have a real alice do the planting.

Every link here points inside the temporary directory however it is resolved
(relative targets, or host paths of the test's own folders): code that followed
links as the kernel does, out of the root, still only changes the test's files,
never this machine's /etc.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest

from converge.agent import journal as jn
from converge.agent import runs
from converge.agent.lock import RunLock
from converge.agent.system import System
from converge.errors import ConvergeError
from tests.conftest import Converger, statuses

ALICE = 1000

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="handing links to uid 1000 needs root")


@pytest.fixture
def tree(converger: Converger) -> Converger:
    """The converger's root with alice: /home/alice (hers), /etc/shadow (0640),
    /run/stub-resolv.conf behind root's /etc/resolv.conf link."""
    root = converger.root
    with open(root / "etc/passwd", "a") as fh:
        fh.write("alice:x:1000:1000::/home/alice:/bin/sh\n")
    with open(root / "etc/group", "a") as fh:
        fh.write("alice:x:1000:\n")
    (root / "etc/shadow").write_text("root:secret\n")
    os.chmod(root / "etc/shadow", 0o640)
    (root / "etc/profile.d").mkdir()
    (root / "run").mkdir()
    (root / "run/stub-resolv.conf").write_text("nameserver 127.0.0.53\n")
    os.chmod(root / "run/stub-resolv.conf", 0o644)
    (root / "etc/resolv.conf").symlink_to("../run/stub-resolv.conf")
    (root / "home/alice").mkdir(parents=True)
    os.chown(root / "home/alice", ALICE, ALICE)
    return converger


def plant(link: Path, target: str, uid: int = ALICE) -> None:
    """``ln -s target link`` as uid would leave it."""
    link.symlink_to(target)
    os.lchown(link, uid, uid)


def snapshot(root: Path) -> Dict[str, tuple]:
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        data = path.read_bytes() if stat.S_ISREG(st.st_mode) else os.readlink(path) \
            if stat.S_ISLNK(st.st_mode) else None
        out[str(path.relative_to(root))] = (st.st_mode, st.st_uid, st.st_gid, data)
    return out


# -- issue 12, item 1: a file at a link ------------------------------------------------


def test_a_file_at_roots_link_in_etc_writes_its_source_and_the_link_stays(tree: Converger
                                                                           ) -> None:
    events = tree.run('from converge import file\n'
                      'file("/etc/resolv.conf", content="nameserver 10.0.0.1\\n")\n')
    assert statuses(events) == ["updated"], events
    link = tree.path("/etc/resolv.conf")
    assert link.is_symlink() and os.readlink(link) == "../run/stub-resolv.conf"
    source = tree.path("/run/stub-resolv.conf")
    assert source.read_text() == "nameserver 10.0.0.1\n"
    assert stat.S_IMODE(source.stat().st_mode) == 0o644  # never the link's own 0777
    assert statuses(tree.run('from converge import file\n'
                             'file("/etc/resolv.conf", content="nameserver 10.0.0.1\\n")\n')
                    ) == ["up_to_date"]


def test_a_file_at_roots_link_compares_the_mode_and_owner_of_its_source(tree: Converger
                                                                         ) -> None:
    recipe = ('from converge import file\n'
              'file("/etc/resolv.conf", content="nameserver 127.0.0.53\\n", mode="0644", '
              'owner="root", group="root")\n')
    events = tree.run(recipe)
    assert statuses(events) == ["up_to_date"], events  # not the link's own 0777
    os.chmod(tree.path("/run/stub-resolv.conf"), 0o600)
    events = tree.run(recipe)
    assert events[0]["changes"] == ["change mode from '0600' to '0644'"]


@pytest.mark.parametrize("owner", [0, ALICE], ids=["root-link", "alice-link"])
def test_a_dangling_link_is_refused_and_nothing_is_created(tree: Converger, owner: int
                                                           ) -> None:
    plant(tree.path("/etc/motd"), "../var/tmp/planted", owner)
    (tree.root / "var/tmp").mkdir(parents=True)
    before = snapshot(tree.root)
    events = tree.run('from converge import file\nfile("/etc/motd", content="hi\\n")\n')
    assert statuses(events) == ["failed"]
    assert "/etc/motd" in events[0]["error"]
    if owner == 0:
        assert "the link is dangling" in events[0]["error"]
    else:
        assert "owned by alice (uid 1000)" in events[0]["error"]
    assert snapshot(tree.root) == before


# -- item 2: a mode change through alice's link ------------------------------------------


def test_a_mode_change_never_follows_alices_link_to_shadow(tree: Converger) -> None:
    plant(tree.path("/home/alice/public.txt"), "../../etc/shadow")
    before = snapshot(tree.root)
    events = tree.run('from converge import file\n'
                      'file("/home/alice/public.txt", mode="0644", owner="alice")\n')
    assert statuses(events) == ["failed"]
    assert events[0]["error"] == (
        "refusing to follow the symbolic link /home/alice/public.txt -> ../../etc/shadow: it is "
        "owned by alice (uid 1000), and a link a user other than root placed may lead "
        "anywhere\nremove the link, or have the recipe manage the path it points to")
    assert snapshot(tree.root) == before
    assert stat.S_IMODE(tree.path("/etc/shadow").stat().st_mode) == 0o640


def test_roots_link_in_a_directory_alice_can_write_is_not_followed(tree: Converger) -> None:
    plant(tree.path("/home/alice/notes"), "../../etc/shadow", uid=0)  # root's link, alice's dir
    before = snapshot(tree.root)
    events = tree.run('from converge import file\n'
                      'file("/home/alice/notes", mode="0644")\n')
    assert statuses(events) == ["failed"]
    assert ("it is in /home/alice (owner alice, mode 0755), a directory a user other than "
            "root can write" in events[0]["error"])
    assert snapshot(tree.root) == before


# -- item 3: a link higher up the path -----------------------------------------------------


@pytest.mark.parametrize("recipe", [
    'file("/home/alice/app/profile.d/alice-env.sh", content="x", owner="alice")',
    'file("/home/alice/app/shadow", action="delete")',
    'directory("/home/alice/app/cron.d", owner="alice")',
    'line("/home/alice/app/shadow", line="alice::0:0")',
], ids=["file", "delete", "directory", "line"])
def test_a_link_higher_up_is_not_followed(tree: Converger, recipe: str) -> None:
    plant(tree.path("/home/alice/app"), "../../etc")
    before = snapshot(tree.root)
    events = tree.run("from converge import directory, file, line\n" + recipe + "\n")
    assert statuses(events) == ["failed"], events
    assert "the symbolic link /home/alice/app -> ../../etc" in events[0]["error"]
    assert snapshot(tree.root) == before


# -- item 4: --root: link targets resolve inside the root ----------------------------------


def test_an_absolute_link_inside_the_root_never_leads_out(tree: Converger, tmp_path: Path
                                                          ) -> None:
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    tree.path("/srv").mkdir()
    plant(tree.path("/srv/out"), str(outside), uid=0)  # root's own link, absolute host path
    events = tree.run('from converge import file\nfile("/srv/out/sub/motd", content="x")\n')
    assert statuses(events) == ["failed"]
    assert events[0]["error"].startswith("parent directory /srv/out/sub does not exist")
    assert list((outside / "sub").iterdir()) == []


def test_dot_dot_in_a_link_stops_at_the_root(tree: Converger, tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()  # where ../../x leads from the root's /etc, by the kernel
    tree.path("/x").mkdir()
    plant(tree.path("/etc/up"), "../../x", uid=0)
    events = tree.run('from converge import file\nfile("/etc/up/motd", content="x")\n')
    assert statuses(events) == ["updated"], events
    assert tree.path("/x/motd").read_text() == "x"  # '..' stopped at the root
    assert list((tmp_path / "x").iterdir()) == []


def test_the_run_lock_is_never_opened_through_a_link(tree: Converger) -> None:
    state = tree.root / "var/lib/converge"
    state.mkdir(parents=True)
    (state / "lock").symlink_to("../../../etc/shadow")
    with pytest.raises(ConvergeError, match="refusing to open /var/lib/converge/lock: it is "
                       "a symbolic link"):
        RunLock(tree.system, 0).acquire()
    assert tree.path("/etc/shadow").read_text() == "root:secret\n"


def test_the_journal_log_is_never_opened_through_a_link(tree: Converger) -> None:
    journal = jn.Journal(tree.system)
    runs_dir = tree.root / "var/lib/converge/runs"
    (runs_dir / (journal.id + ".partial")).symlink_to("../../../../etc/shadow")
    event = {"id": "file[/etc/x]", "type": "file", "action": "create", "changes": ["c"]}
    resource = tree.compile('from converge import file\nfile("/etc/x", content="x")\n'
                            ).steps[0].resource()
    with pytest.raises(ConvergeError, match="refusing to open /var/lib/converge/runs/"):
        journal.begin(event, resource, {}, [])
    assert tree.path("/etc/shadow").read_text() == "root:secret\n"


# -- item 5: the state directory --------------------------------------------------------------


def test_an_existing_state_directory_keeps_its_mode(tree: Converger) -> None:
    state = tree.root / "var/lib/converge"
    state.mkdir(parents=True)
    os.chmod(state, 0o1777)
    plan = tree.compile('from converge import file\nfile("/etc/x", content="x")\n')
    events = runs.apply_plan(tree.system, plan)
    assert statuses(events) == ["updated"]
    assert stat.S_IMODE(state.stat().st_mode) == 0o1777
    assert stat.S_IMODE((state / "runs").stat().st_mode) == 0o700


def test_a_runs_folder_someone_else_made_is_refused(tree: Converger) -> None:
    state = tree.root / "var/lib/converge"
    (state / "runs").mkdir(parents=True)
    os.chown(state / "runs", ALICE, ALICE)
    with pytest.raises(ConvergeError, match="is owned by uid 1000"):
        jn.Journal(tree.system)


# -- item 6: owner before mode -----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["4755", "2755", "6755"])
def test_setuid_and_setgid_survive_the_first_apply_of_a_file(tree: Converger, mode: str
                                                             ) -> None:
    recipe = ('from converge import file\nfile("/etc/tool", content="#!/bin/sh\\n", '
              'mode="%s", owner="alice", group="alice")\n' % mode)
    assert statuses(tree.run(recipe)) == ["updated"]
    st = tree.path("/etc/tool").stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid) == (int(mode, 8), ALICE)
    assert statuses(tree.run(recipe)) == ["up_to_date"]


@pytest.mark.parametrize("mode", ["4755", "2755"])
def test_setuid_survives_an_owner_change_of_an_existing_file(tree: Converger, mode: str
                                                             ) -> None:
    tool = tree.path("/etc/tool")
    tool.write_text("#!/bin/sh\n")
    os.chmod(tool, int(mode, 8))
    recipe = 'from converge import file\nfile("/etc/tool", owner="alice", group="alice")\n'
    assert statuses(tree.run(recipe)) == ["updated"]
    assert stat.S_IMODE(tool.stat().st_mode) == int(mode, 8)
    assert statuses(tree.run(recipe)) == ["up_to_date"]


@pytest.mark.parametrize("mode", ["1777", "2755", "3770"])
def test_special_bits_of_a_directory_survive_the_first_apply(tree: Converger, mode: str
                                                             ) -> None:
    recipe = ('from converge import directory\ndirectory("/srv/shared", mode="%s", '
              'owner="alice", group="alice")\n' % mode)
    tree.path("/srv").mkdir()
    assert statuses(tree.run(recipe)) == ["updated"]
    st = tree.path("/srv/shared").stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid) == (int(mode, 8), ALICE)
    assert statuses(tree.run(recipe)) == ["up_to_date"]


# -- rollback restores a link as a link (item 1) -------------------------------------------------


def rollback(system: System) -> List[dict]:
    return runs.rollback(system, force=False, yes=True)


def test_rollback_after_writing_through_roots_link_keeps_the_link(tree: Converger) -> None:
    plan = tree.compile('from converge import file\n'
                        'file("/etc/resolv.conf", content="nameserver 10.0.0.1\\n")\n')
    assert statuses(runs.apply_plan(tree.system, plan)) == ["updated"]
    assert statuses(rollback(tree.system)) == ["up_to_date", "updated"]
    link = tree.path("/etc/resolv.conf")
    assert link.is_symlink() and os.readlink(link) == "../run/stub-resolv.conf"
    assert tree.path("/run/stub-resolv.conf").read_text() == "nameserver 127.0.0.53\n"


def test_rollback_of_a_deleted_link_makes_the_link_again(tree: Converger) -> None:
    plan = tree.compile('from converge import file\n'
                        'file("/etc/resolv.conf", action="delete")\n')
    events = runs.apply_plan(tree.system, plan)
    assert events[0]["changes"] == ["delete symbolic link /etc/resolv.conf"]
    assert tree.path("/run/stub-resolv.conf").exists()
    assert not os.path.lexists(tree.path("/etc/resolv.conf"))
    rollback(tree.system)
    link = tree.path("/etc/resolv.conf")
    assert link.is_symlink() and os.readlink(link) == "../run/stub-resolv.conf"
    assert tree.path("/run/stub-resolv.conf").read_text() == "nameserver 127.0.0.53\n"


def test_rollback_of_a_link_that_replaced_a_file_puts_the_file_back(tree: Converger) -> None:
    tree.path("/etc/localtime").write_bytes(b"TZif old")
    plan = tree.compile('from converge import link\n'
                        'link("/etc/localtime", to="/usr/share/zoneinfo/UTC", force=True)\n')
    assert runs.apply_plan(tree.system, plan)[0]["changes"] == [
        "replace file /etc/localtime with a symbolic link to /usr/share/zoneinfo/UTC"]
    assert os.readlink(tree.path("/etc/localtime")) == "/usr/share/zoneinfo/UTC"
    rollback(tree.system)
    assert not tree.path("/etc/localtime").is_symlink()
    assert tree.path("/etc/localtime").read_bytes() == b"TZif old"


def test_rollback_of_a_forced_hard_link_puts_the_file_back(tree: Converger) -> None:
    tree.path("/etc/tool").write_bytes(b"tool")
    tree.path("/etc/app").write_bytes(b"app old")
    plan = tree.compile('from converge import link\n'
                        'link("/etc/app", to="tool", link_type="hard", force=True)\n')
    assert runs.apply_plan(tree.system, plan)[0]["changes"] == [
        "replace file /etc/app with a hard link to tool"]
    assert tree.path("/etc/app").stat().st_ino == tree.path("/etc/tool").stat().st_ino
    rollback(tree.system)
    assert tree.path("/etc/app").read_bytes() == b"app old"
    assert tree.path("/etc/app").stat().st_ino != tree.path("/etc/tool").stat().st_ino
    assert tree.path("/etc/tool").read_bytes() == b"tool"


def test_rollback_of_a_hard_link_that_replaced_a_symbolic_link_makes_the_link_again(
        tree: Converger) -> None:
    tree.path("/etc/tool").write_bytes(b"tool")
    os.symlink("tool", tree.path("/etc/app"))
    plan = tree.compile('from converge import link\n'
                        'link("/etc/app", to="tool", link_type="hard")\n')
    assert runs.apply_plan(tree.system, plan)[0]["changes"] == [
        "replace symbolic link /etc/app with a hard link to tool"]
    assert not tree.path("/etc/app").is_symlink()
    rollback(tree.system)
    assert os.readlink(tree.path("/etc/app")) == "tool"


def test_a_hard_link_never_links_through_a_planted_directory_link(tree: Converger) -> None:
    (tree.root / "srv/www").mkdir(parents=True)
    os.chown(tree.root / "srv/www", ALICE, ALICE)
    plant(tree.path("/srv/www/etc"), "../../etc")  # alice: /srv/www/etc -> /etc
    tree.path("/etc/shadow").write_text("secret")
    events = tree.run('from converge import link\n'
                      'link("/srv/www/etc/shadow2", to="/etc/shadow", link_type="hard")\n'
                      'link("/srv/www/s", to="/srv/www/etc/shadow", link_type="hard")\n')
    assert [e["status"] for e in events] == ["failed", "failed"]
    assert not os.path.lexists(tree.path("/etc/shadow2"))
    assert not os.path.lexists(tree.path("/srv/www/s"))
    assert tree.path("/etc/shadow").stat().st_nlink == 1


def test_a_rollback_never_writes_through_a_link_planted_since(tree: Converger) -> None:
    (tree.root / "srv/www").mkdir(parents=True)
    os.chown(tree.root / "srv/www", ALICE, ALICE)
    page = tree.path("/srv/www/index.html")
    page.write_text("old\n")
    plan = tree.compile('from converge import file\n'
                        'file("/srv/www/index.html", content="new\\n")\n')
    runs.apply_plan(tree.system, plan)
    page.unlink()
    plant(page, "../../etc/shadow")  # alice swaps the page for a link to /etc/shadow
    before = snapshot(tree.root / "etc")
    with pytest.raises(ConvergeError, match="it is now a symbolic link to ../../etc/shadow"):
        rollback(tree.system)
    events = runs.rollback(tree.system, force=True, yes=True)  # the link goes, not shadow
    assert [e["changes"][0] for e in events] == [
        "delete symbolic link /srv/www/index.html", "create new file /srv/www/index.html"]
    assert not page.is_symlink() and page.read_text() == "old\n"
    assert snapshot(tree.root / "etc") == before


# -- item 4 and issue 13, item 12: an empty tree -------------------------------------------------


def test_root_is_uid_0_in_an_empty_tree_and_other_names_say_where_they_were_looked_up(
        tmp_path: Path) -> None:
    root, recipe = tmp_path / "tree", tmp_path / "recipe.py"
    root.mkdir()
    recipe.write_text('from converge import directory, file\n'
                      'directory("/srv", owner="root", group="root")\n'
                      'file("/srv/a", content="a", owner="root", group="root", mode="0640")\n'
                      'file("/srv/b", content="b", owner="www-data")\n')
    argv = [sys.executable, "-m", "converge", "apply", "--root", str(root), str(recipe)]
    done = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert (root / "srv/a").read_text() == "a" and (root / "srv/a").stat().st_uid == 0
    assert ("owner 'www-data' does not exist in %s/etc/passwd" % root) in done.stdout
    assert not (root / "srv/b").exists()


def test_unsafe_path_is_a_resource_error() -> None:
    from converge.agent.paths import UnsafePath

    assert issubclass(UnsafePath, ConvergeError)


def test_read_in_each_follows_no_link(tmp_path: Path) -> None:
    """System.read_in_each (oom_protect's one pass over /proc) reads NAME/leaf for each
    name from one descriptor of the folder, and follows no link on the way: a linked
    NAME, a linked leaf and a name that is a path all read as None."""
    from converge.agent.system import System

    tree = tmp_path / "root"
    (tree / "proc/1").mkdir(parents=True)
    (tree / "proc/1/cmdline").write_bytes(b"/sbin/init\0splash\0")
    (tree / "secret").mkdir()
    (tree / "secret/cmdline").write_bytes(b"secret")
    (tree / "proc/2").symlink_to(tree / "secret")
    (tree / "proc/3").mkdir()
    (tree / "proc/3/cmdline").symlink_to(tree / "secret/cmdline")
    found = System(str(tree)).read_in_each("/proc", ["1", "2", "3", "4", "../secret", ".."],
                                           "cmdline")
    assert found == {"1": b"/sbin/init\0splash\0", "2": None, "3": None, "4": None,
                     "../secret": None, "..": None}
    assert System(str(tree)).read_in_each("/nowhere", ["1"], "cmdline") == {"1": None}
