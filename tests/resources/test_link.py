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


def test_a_file_is_replaced_a_directory_refused_and_delete_leaves_files(
        converger: Converger) -> None:
    converger.path("/etc/localtime").write_text("TZif")
    events = converger.run(LINK % "/usr/share/zoneinfo/UTC")
    assert events[0]["changes"] == ["replace file /etc/localtime with a symbolic link to "
                                    "/usr/share/zoneinfo/UTC"]
    assert converger.path("/etc/localtime").is_symlink()
    converger.path("/etc/app").mkdir()
    events = converger.run('from converge import link\nlink("/etc/app", to="/x")\n')
    assert statuses(events) == ["failed"]
    assert events[0]["error"].startswith("/etc/app is a directory, not a symbolic link")
    converger.path("/etc/motd").write_text("hi")
    events = converger.run('from converge import link\nlink("/etc/motd", action="delete")\n')
    assert statuses(events) == ["failed"]
    assert converger.path("/etc/motd").read_text() == "hi"


@pytest.mark.parametrize("call, message", [
    ('link("/etc/x")', "link[/etc/x]: to= is required to create a link: where it points"),
    ('link("/etc/x", to="")', "link[/etc/x]: to must not be empty"),
    ('link("/etc/x", to="a\\nb")', "contains a line break"),
])
def test_bad_links_are_refused_at_compile_time(converger: Converger, call: str,
                                               message: str) -> None:
    with pytest.raises(PropertyError, match=message.replace("[", r"\[").replace("]", r"\]")):
        converger.compile("from converge import link\n" + call + "\n")
