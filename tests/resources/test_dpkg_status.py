"""dpkg's status file read in place (converge/resources/_dpkg_status.py) says what
the real dpkg-query says: crafted entries in a temporary dpkg database (every
package state, hold, multi-arch instances of one name, a virtual package, the
updates journal of an interrupted dpkg), queried with ``dpkg-query --admindir``
(read only). The same comparison over every package of a lab node's real
database is in tests/lab/test_dpkg_status_lab.py."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any, Dict, List

import pytest

from converge.agent.system import System
from converge.errors import ResourceError
from converge.resources import _dpkg_status
from converge.resources._pkg_backends import Apt

needs_dpkg = pytest.mark.skipif(not Path("/usr/bin/dpkg-query").exists(),
                                reason="needs dpkg-query")


def stanza(name: str, status: str, version: str = "", arch: str = "amd64", extra: str = ""
           ) -> str:
    return ("Package: %s\nStatus: %s\n%sMaintainer: t <t@localhost>\n%s%s"
            "Description: test\n a long description\n .\n Package: decoy\n\n"
            % (name, status, "Version: %s\n" % version if version else "",
               "Architecture: %s\n" % arch if arch else "", extra))


STATUS = "".join([
    stanza("okinst", "install ok installed", "1.0-1", "all"),
    stanza("held", "hold ok installed", "2.0"),
    stanza("cfg", "deinstall ok config-files", "3.0"),
    stanza("half", "install reinstreq half-installed", "4.0"),
    stanza("unpacked", "install ok unpacked", "5.0"),
    stanza("halfconf", "install ok half-configured", "6.0"),
    stanza("trigaw", "install ok triggers-awaited", "7.0", extra="Triggers-Awaited: trigpend\n"),
    stanza("trigpend", "install ok triggers-pending", "8.0",
           extra="Triggers-Pending: /usr/share/trig\n"),
    stanza("notinst", "purge ok not-installed"),
    stanza("libmulti", "install ok installed", "1.1", extra="Multi-Arch: same\n"),
    stanza("libmulti", "deinstall ok config-files", "1.0", "i386", extra="Multi-Arch: same\n"),
    stanza("libtwo", "install ok installed", "2.2", "i386", extra="Multi-Arch: same\n"),
    stanza("libtwo", "install ok unpacked", "2.2", extra="Multi-Arch: same\n"),
    stanza("journaled", "install ok installed", "9.0"),
    stanza("provider", "install ok installed", "1.0", extra="Provides: virt\n"),
    stanza("okinst-extra", "install ok installed", "1.5"),
]).rstrip("\n") + "\n"  # dpkg ends the file with one newline
UPDATES = {  # what an interrupted dpkg left in its journal: later files win
    "0000": stanza("journaled", "deinstall ok config-files", "9.0"),
    "0001": stanza("newone", "install ok installed", "3.0"),
    "0002": stanza("newone", "install ok half-configured", "3.1"),
}
SPECS = ["okinst", "held", "cfg", "half", "unpacked", "halfconf", "trigaw", "trigpend",
         "notinst", "libmulti", "libmulti:amd64", "libmulti:i386", "libtwo", "libtwo:i386",
         "libtwo:amd64", "journaled", "newone", "provider", "virt", "nosuch", "okinst:all",
         "okinst:amd64", "decoy", "okinst-extra"]
EXPECTED = {  # (installed, broken, config_files): what the package resource acts on
    "okinst": ("1.0-1", None, False), "held": ("2.0", None, False),
    "cfg": (None, None, True), "half": (None, "4.0", False), "unpacked": (None, "5.0", False),
    "halfconf": (None, "6.0", False), "trigaw": ("7.0", None, False),
    "trigpend": ("8.0", None, False), "notinst": (None, None, False),
    "libmulti": ("1.1", None, True), "libmulti:amd64": ("1.1", None, False),
    "libmulti:i386": (None, None, True), "libtwo": ("2.2", "2.2", False),
    "libtwo:i386": ("2.2", None, False), "libtwo:amd64": (None, "2.2", False),
    "journaled": (None, None, True), "newone": (None, "3.1", False),
    "provider": ("1.0", None, False), "virt": (None, None, False),
    "nosuch": (None, None, False), "okinst:all": ("1.0-1", None, False),
    "okinst:amd64": (None, None, False), "decoy": (None, None, False),
    "okinst-extra": ("1.5", None, False),
}


def from_dpkg_query(lines: List[str]) -> Dict[str, Any]:
    """What the apt backend made of `dpkg-query -W -f '${db:Status-Abbrev}\\t${Version}'`
    lines before it read the status file itself (its lines, later ones winning)."""
    state: Dict[str, Any] = {"installed": None, "broken": None, "config_files": False}
    for line in lines:
        abbrev, version = line.split("\t")
        status = abbrev[1:2]
        if status in ("i", "W", "t"):
            state["installed"] = version
        elif status in ("U", "F", "H"):
            state["broken"] = version
        elif status == "c":
            state["config_files"] = True
    return state


def dpkg_query(admindir: Path, spec: str) -> Dict[str, Any]:
    done = subprocess.run(["dpkg-query", "--admindir=%s" % admindir, "-W",
                           "-f=${db:Status-Abbrev}\\t${Version}\\n", "--", spec],
                          capture_output=True, text=True, env={"LC_ALL": "C"})
    assert done.returncode in (0, 1), done.stderr
    return from_dpkg_query(done.stdout.splitlines())


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "var/lib/dpkg/updates").mkdir(parents=True)
    (tmp_path / "var/lib/dpkg/status").write_text(STATUS)
    for name, text in UPDATES.items():
        (tmp_path / "var/lib/dpkg/updates" / name).write_text(text)
    (tmp_path / "var/lib/dpkg/updates/tmp.i").write_text(stanza("newone", "purge ok "
                                                                "not-installed"))
    return tmp_path


def triple(state: Dict[str, Any]) -> tuple:
    return state["installed"], state["broken"], state["config_files"]


@needs_dpkg
def test_crafted_entries_read_as_dpkg_query_reads_them(root: Path) -> None:
    found = Apt().state(System(str(root)), SPECS, False)
    ours = {spec: triple(found[spec]) for spec in SPECS}
    theirs = {spec: triple(dpkg_query(root / "var/lib/dpkg", spec)) for spec in SPECS}
    assert ours == theirs
    assert ours == EXPECTED
    assert all(found[spec]["exact_pins"] for spec in SPECS)


def test_parser_alone_without_updates_and_with_a_status_file_of_one_stanza() -> None:
    assert triple(_dpkg_status.states(STATUS.encode(), [], ["journaled"])["journaled"]) == (
        "9.0", None, False)
    one = b"Package: solo\nStatus: install ok installed\nVersion: 1\n"
    assert triple(_dpkg_status.states(one, [], ["solo"])["solo"]) == ("1", None, False)
    assert triple(_dpkg_status.states(b"", [], ["solo"])["solo"]) == (None, None, False)


def test_no_status_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ResourceError, match="dpkg's status file .*/var/lib/dpkg/status "
                                            "does not exist"):
        Apt().state(System(str(tmp_path)), ["bash"], False)
