"""link: a symbolic link managed itself, under a temporary root."""

from __future__ import annotations

import os

import pytest

from converge.errors import PropertyError
from tests.conftest import Converger, statuses

LINK = 'from converge import link\nlink("/etc/localtime", to=%r)\n'


def test_create_change_and_delete_a_link(converger: Converger) -> None:
    path = converger.path("/etc/localtime")
    events = converger.run(LINK % "/usr/share/zoneinfo/UTC")
    assert events[0]["changes"] == ["create symbolic link /etc/localtime to "
                                    "/usr/share/zoneinfo/UTC"]
    assert os.readlink(path) == "/usr/share/zoneinfo/UTC"
    assert statuses(converger.run(LINK % "/usr/share/zoneinfo/UTC")) == ["up_to_date"]
    events = converger.run(LINK % "../usr/share/zoneinfo/Europe/Paris")
    assert events[0]["changes"] == ["change symbolic link /etc/localtime from "
                                    "/usr/share/zoneinfo/UTC to ../usr/share/zoneinfo/Europe/Paris"]
    assert os.readlink(path) == "../usr/share/zoneinfo/Europe/Paris"
    delete = 'from converge import link\nlink("/etc/localtime", action="delete")\n'
    assert converger.run(delete)[0]["changes"] == ["delete symbolic link /etc/localtime"]
    assert not os.path.lexists(path)
    assert statuses(converger.run(delete)) == ["up_to_date"]


def test_a_file_in_the_way_fails_unless_forced(converger: Converger) -> None:
    converger.path("/etc/localtime").write_text("TZif")
    events = converger.run(LINK % "/usr/share/zoneinfo/UTC")
    assert statuses(events) == ["failed"]
    assert events[0]["error"].startswith("/etc/localtime is a file, not a symbolic link")
    assert converger.path("/etc/localtime").read_text() == "TZif"
    forced = ('from converge import link\n'
              'link("/etc/localtime", to="/usr/share/zoneinfo/UTC", force=True)\n')
    events = converger.run(forced)
    assert events[0]["changes"] == ["replace file /etc/localtime with a symbolic link to "
                                    "/usr/share/zoneinfo/UTC"]
    assert converger.path("/etc/localtime").is_symlink()
    assert statuses(converger.run(forced)) == ["up_to_date"]


def test_a_directory_is_refused_even_forced_and_delete_leaves_files(
        converger: Converger) -> None:
    converger.path("/etc/app").mkdir()
    events = converger.run('from converge import link\n'
                           'link("/etc/app", to="/x", force=True)\n')
    assert statuses(events) == ["failed"]
    assert events[0]["error"].startswith("/etc/app is a directory, not a link")
    assert converger.path("/etc/app").is_dir()
    converger.path("/etc/motd").write_text("hi")
    events = converger.run('from converge import link\nlink("/etc/motd", action="delete")\n')
    assert statuses(events) == ["failed"]
    assert events[0]["error"].startswith("/etc/motd is a file, not a symbolic link")
    assert converger.path("/etc/motd").read_text() == "hi"


def test_a_hard_link_is_made_kept_and_deleted_only_when_it_is_the_same_file(
        converger: Converger) -> None:
    tool = converger.path("/opt/tool")
    tool.parent.mkdir(parents=True, exist_ok=True)
    tool.write_text("#!/bin/sh\n")
    hard = ('from converge import link\n'
            'link("/usr/bin/tool", to="/opt/tool", link_type="hard"%s)\n')
    converger.path("/usr/bin").mkdir(parents=True, exist_ok=True)
    events = converger.run(hard % "")
    assert events[0]["changes"] == ["create hard link /usr/bin/tool to /opt/tool"]
    link = converger.path("/usr/bin/tool")
    assert not link.is_symlink() and link.stat().st_ino == tool.stat().st_ino
    assert statuses(converger.run(hard % "")) == ["up_to_date"]
    # another file at the path: refused, then replaced with force
    link.unlink()
    link.write_text("other\n")
    assert statuses(converger.run(hard % "")) == ["failed"]
    assert statuses(converger.run(hard % ", action='delete'")) == ["failed"]
    assert link.read_text() == "other\n"
    events = converger.run(hard % ", force=True")
    assert events[0]["changes"] == ["replace file /usr/bin/tool with a hard link to /opt/tool"]
    assert link.stat().st_ino == tool.stat().st_ino
    assert sorted(p.name for p in link.parent.iterdir()) == ["tool"]
    events = converger.run(hard % ", action='delete'")
    assert events[0]["changes"] == ["delete hard link /usr/bin/tool"]
    assert not link.exists() and tool.read_text() == "#!/bin/sh\n"


def test_a_hard_link_to_a_missing_file_fails(converger: Converger) -> None:
    events = converger.run('from converge import link\n'
                           'link("/etc/x", to="/nowhere", link_type="hard")\n')
    assert statuses(events) == ["failed"]
    assert events[0]["error"].startswith("/nowhere does not exist")
    assert not os.path.lexists(converger.path("/etc/x"))


def test_owner_and_group_are_the_links_own(converger: Converger) -> None:
    target = converger.path("/etc/target")
    target.write_text("t")
    owned = ('from converge import link\n'
             'link("/etc/alias", to="target", owner="www-data", group="www-data")\n')
    events = converger.run(owned)
    assert events[0]["changes"] == ["create symbolic link /etc/alias to target",
                                    "change owner from none to 'www-data'",
                                    "change group from none to 'www-data'"]
    st = os.lstat(converger.path("/etc/alias"))
    assert (st.st_uid, st.st_gid) == (33, 33)
    assert (target.stat().st_uid, target.stat().st_gid) == (0, 0)
    assert statuses(converger.run(owned)) == ["up_to_date"]
    os.lchown(converger.path("/etc/alias"), 0, -1)
    events = converger.run(owned)
    assert events[0]["changes"] == ["change owner from 'root' to 'www-data'"]
    assert os.lstat(converger.path("/etc/alias")).st_uid == 33
    assert target.stat().st_uid == 0


@pytest.mark.parametrize("call, message", [
    ('link("/etc/x")', "link[/etc/x]: to is required for action 'create'"),
    ('link("/etc/x", action="delete", link_type="hard")',
     "link[/etc/x]: to is required to delete a hard link: the file it is a link to"),
    ('link("/etc/x", to="/y", link_type="soft")',
     "link[/etc/x]: link_type 'soft' is not one of: symbolic, hard"),
    ('link("/etc/x", to="/y", owner="a b")', "owner"),
    ('link("/etc/x", to="")', "link[/etc/x]: to must not be empty"),
    ('link("/etc/x", to="a\\nb")', "contains a line break"),
])
def test_bad_links_are_refused_at_compile_time(converger: Converger, call: str,
                                               message: str) -> None:
    with pytest.raises(PropertyError, match=message.replace("[", r"\[").replace("]", r"\]")):
        converger.compile("from converge import link\n" + call + "\n")
