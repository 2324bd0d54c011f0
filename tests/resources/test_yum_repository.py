"""yum_repository under a temporary root: the .repo text, bad input refused
while compiling (a line break that would add a section of its own, options
that shadow properties), idempotence without touching the mtime, mode drift,
delete. Parsed back with configparser here; tests/e2e has dnf read it."""

from __future__ import annotations

import configparser
import os
import re
from pathlib import Path
from typing import Callable, Dict

import pytest

from converge.errors import PropertyError
from tests.conftest import Converger

HEAD = "from converge import yum_repository\n"
REPO = "/etc/yum.repos.d/tools.repo"


def recipe(args: str) -> str:
    return HEAD + "yum_repository(%s)\n" % args


@pytest.mark.parametrize("args, message", [
    pytest.param("'a/b', 'https://x.example/'", "repo_name 'a/b' is not a repository id",
                 id="name-slash"),
    pytest.param("'.hidden', 'https://x.example/'", "repo_name '.hidden' is not", id="dot"),
    pytest.param("'x', 'gopher://x.example/'", "baseurl 'gopher://x.example/' is not",
                 id="scheme"),
    pytest.param("'x', ['https://x.example/', 'https://y.example/ z']", "baseurl "
                 "'https://y.example/ z' is not", id="space-in-list"),
    pytest.param("'x', 'https://x.example/', description='ok\\n[evil]\\nbaseurl=http://e/'",
                 "contains a line break", id="description-newline"),
    pytest.param("'x', 'https://x.example/', options={'priority': '1\\ngpgcheck=0'}",
                 "contains a line break", id="option-newline"),
    pytest.param("'x', 'https://x.example/', options={'gpgcheck': 0}",
                 "option 'gpgcheck' is a property of yum_repository: give it as gpgcheck=",
                 id="option-shadows"),
    pytest.param("'x', 'https://x.example/', options={'Bad Key': 1}",
                 "option name 'Bad Key' is not", id="option-name"),
    pytest.param("'x', mirrorlist=['https://a/', 'https://b/']",
                 "mirrorlist must be a string, not ['https://a/', 'https://b/']",
                 id="mirrorlist-list"),
    pytest.param("'x'", "create needs baseurl, mirrorlist or metalink", id="no-url"),
    pytest.param("'x', 'https://x.example/', gpgcheck='yes'", "gpgcheck must be True or False",
                 id="bool"),
])
def test_bad_input_is_refused_while_compiling(converger: Converger, args: str,
                                              message: str) -> None:
    with pytest.raises(PropertyError, match=re.escape(message)) as info:
        converger.compile(recipe(args))
    assert "recipe.py:2: yum_repository[" in str(info.value)


def test_create_is_idempotent_and_parses(converger: Converger,
                                         mtimes: Callable[[Path], Dict[str, int]]) -> None:
    text = recipe("'tools', ['https://a.example/$basearch/', 'https://b.example/'], "
                  "description='Tools: all of them', gpgkey='https://a.example/key', "
                  "options={'sslverify': False, 'priority': 5}")
    events = converger.run(text)
    assert events[0]["changes"] == ["create " + REPO]
    written = converger.path(REPO).read_text()
    assert written == (
        "# Managed by converge: yum_repository[tools]\n[tools]\nname=Tools: all of them\n"
        "baseurl=https://a.example/$basearch/\n        https://b.example/\nenabled=1\n"
        "gpgcheck=1\ngpgkey=https://a.example/key\npriority=5\nsslverify=0\n")
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(written)
    assert parser.sections() == ["tools"]
    assert parser["tools"]["baseurl"].split() == ["https://a.example/$basearch/",
                                                  "https://b.example/"]
    assert oct(os.stat(converger.path(REPO)).st_mode & 0o777) == "0o644"
    before = mtimes(converger.root)
    assert [e["status"] for e in converger.run(text)] == ["up_to_date"]
    assert mtimes(converger.root) == before

    os.chmod(converger.path(REPO), 0o600)
    assert converger.run(text)[0]["changes"] == [
        "change mode of %s from '0600' to '0644'" % REPO]
    gone = converger.run(recipe("'tools', action='delete'"))
    assert gone[0]["changes"] == ["delete " + REPO]
    assert not converger.path(REPO).exists()
    assert converger.run(recipe("'tools', action='delete'"))[0]["status"] == "up_to_date"
