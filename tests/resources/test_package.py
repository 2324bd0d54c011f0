"""package: compile-time validation; state read with the real dpkg-query from a
status file under a temporary root; batching and one-by-one retry through the
engine with a fake apt (real installs run in lab nodes: tests/lab/test_system_e2e.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence

import pytest

from converge.agent.engine import Engine
from converge.agent.system import RunResult, System
from converge.errors import PropertyError
from converge.resources import _pkg_backends
from tests.conftest import Converger, statuses

STATUS = """\
Package: oldpkg
Status: install ok installed
Version: 1.0-1
Architecture: all
Maintainer: t <t@localhost>
Description: t

Package: gone
Status: deinstall ok config-files
Version: 2.0
Architecture: all
Maintainer: t <t@localhost>
Description: t
"""


@pytest.mark.parametrize("call, message", [
    pytest.param('package("Bad Name")', "package[Bad Name]: 'Bad Name' is not a valid package "
                 "name (letters, digits and '+', '-', '.', '_', starting with a letter or digit)",
                 id="space"),
    pytest.param('package("-oAPT::x=1")', "'-oAPT::x=1' is not a valid package name",
                 id="option-injection"),
    pytest.param('package("curl; rm -rf /")', "'curl; rm -rf /' is not a valid package name",
                 id="shell"),
    pytest.param('package("Curl", provider="apt")', "'Curl' is not a valid package name",
                 id="debian-lowercase"),
    pytest.param('package([])', "package_name must be a name or a non-empty list of names",
                 id="empty-list"),
    pytest.param('package("curl", version="1.0 beta")', "version '1.0 beta' is not a package "
                 "version such as '1.2.3-1' or '2:1.0-3'", id="bad-version"),
    pytest.param('package("curl", version="-1")', "version '-1' is not a package version",
                 id="version-option"),
    pytest.param('package(["a1", "b1"], version="1.0")', "version pins one package",
                 id="version-with-list"),
    pytest.param('package("curl", provider="pip")', "provider 'pip' is not one of: apt, dnf, "
                 "yum, apk", id="provider"),
    pytest.param('package("curl", action="installed")', "action 'installed' is not one of: "
                 "install, upgrade, remove, purge, nothing", id="action"),
])
def test_bad_input_refused_at_compile_time(converger: Converger, call: str, message: str) -> None:
    with pytest.raises(PropertyError) as info:
        converger.compile("from converge import package\n" + call + "\n")
    assert message in str(info.value)
    assert "recipe.py:2" in str(info.value)


def test_list_is_one_resource(converger: Converger) -> None:
    plan = converger.compile('from converge import package\n'
                             'package(["bash", "curl", "bash"])\npackage("zsh")\n')
    assert [s.id for s in plan.steps] == ["package[bash,curl]", "package[zsh]"]
    assert plan.steps[0].props["package_name"] == ["bash", "curl"]
    assert plan.steps[0].resource().names == ["bash", "curl"]


@pytest.fixture
def debroot(converger: Converger) -> Converger:
    """A temporary root with a dpkg status file and the real dpkg tools linked in."""
    (converger.root / "var/lib/dpkg").mkdir(parents=True)
    (converger.root / "var/lib/dpkg/status").write_text(STATUS)
    (converger.root / "usr/bin").mkdir(parents=True)
    for tool in ("dpkg-query", "apt-get", "apt-cache"):
        (converger.root / "usr/bin" / tool).symlink_to("/usr/bin/" + tool)
    return converger


@pytest.mark.skipif(not Path("/usr/bin/dpkg-query").exists(), reason="needs dpkg-query")
@pytest.mark.parametrize("recipe, lines", [
    pytest.param('package("oldpkg", action="remove")', ["remove package oldpkg (1.0-1)"],
                 id="remove-installed"),
    pytest.param('package("gone", action="remove")', [], id="remove-config-files-only"),
    pytest.param('package("gone", action="purge")', ["purge configuration files of package gone"],
                 id="purge-config-files"),
    pytest.param('package(["oldpkg", "gone", "never"], action="purge")',
                 ["purge package oldpkg (1.0-1)", "purge configuration files of package gone"],
                 id="purge-list"),
    pytest.param('package("never", action="remove")', [], id="remove-absent"),
])
def test_state_from_dpkg(debroot: Converger, recipe: str, lines: List[str]) -> None:
    events = debroot.run("from converge import package\n" + recipe + "\n", mode="plan")
    assert events[0]["changes"] == lines
    assert events[0]["status"] == ("updated" if lines else "up_to_date")


@pytest.mark.skipif(not Path("/usr/bin/dpkg-query").exists(), reason="needs dpkg-query")
def test_unknown_package_fails_naming_it_and_a_tree_is_never_installed_into(
        debroot: Converger) -> None:
    events = debroot.run('from converge import package\npackage("nosuchpkg")\n'
                         'package("oldpkg", action="remove")\n')
    assert statuses(events) == ["failed", "failed"]
    assert events[0]["error"].startswith(
        "package nosuchpkg is not available from any configured repository")
    assert "cannot remove packages under the root directory" in events[1]["error"]
    assert (debroot.root / "var/lib/dpkg/status").read_text() == STATUS


class FakeApt(System):
    """apt as a dictionary: dpkg's status file, apt-cache policy and apt-get answer
    from ``repo`` and ``installed``; every apt-get call is recorded."""

    def __init__(self, repo: Dict[str, str], installed: Dict[str, str],
                 broken: Sequence[str] = ()) -> None:
        super().__init__("/")
        self.repo, self.installed, self.broken = repo, installed, set(broken)
        self.calls: List[List[str]] = []
        self.reads: List[List[str]] = []  # status file reads and apt-cache calls

    def which(self, program: str) -> Optional[str]:
        return "/usr/bin/" + program if program in ("apt-get", "dpkg-query") else None

    def read_text(self, path: str) -> Optional[str]:
        return "ID=debian\n" if path == "/etc/os-release" else None

    def read_bytes(self, path: str) -> Optional[bytes]:
        assert path == "/var/lib/dpkg/status", path
        self.reads.append(["status"])
        return "".join("Package: %s\nStatus: install ok installed\nVersion: %s\n"
                       "Architecture: all\n\n" % (n, v)
                       for n, v in self.installed.items()).encode()

    def listdir(self, path: str) -> List[str]:
        assert path == "/var/lib/dpkg/updates", path
        return []

    def run(self, argv, input=None, env=None, cwd=None, timeout=None, user=None) -> RunResult:
        argv = list(argv)
        if "--" not in argv:  # a guard such as ["true"]
            return super().run(argv)
        names = argv[argv.index("--") + 1:]
        assert argv[0] != "dpkg-query", "the status file is read in place"
        if argv[0] == "apt-cache":
            self.reads.append([argv[0]] + names)
            out = ""
            for n in names:
                if n in self.repo:
                    out += "%s:\n  Installed: (none)\n  Candidate: %s\n  Version table:\n" \
                           "     %s 500\n" % (n, self.repo[n], self.repo[n])
            return RunResult(0, out, "")
        self.calls.append(argv)
        assert env and env["DEBIAN_FRONTEND"] == "noninteractive"
        if any(n in self.broken for n in names):
            return RunResult(100, "", "E: Sub-process /usr/bin/dpkg returned an error code (1)")
        for n in names:
            self.installed[n] = self.repo[n]
        return RunResult(0, "", "")


RECIPE = """\
from converge import package
package("aa")
package(["bb", "cc"])
package("dd")
package("ee", action="remove")
package("ff", not_if=["true"])
"""


def test_consecutive_installs_are_one_transaction(converger: Converger) -> None:
    apt = FakeApt({"aa": "1", "bb": "2", "cc": "3", "dd": "4"}, {"dd": "4"})
    events = Engine(apt).run(converger.compile(RECIPE))
    assert [(e["id"], e["status"], e["changes"]) for e in events] == [
        ("package[aa]", "updated", ["install package aa (1)"]),
        ("package[bb,cc]", "updated", ["install package bb (2)", "install package cc (3)"]),
        ("package[dd]", "up_to_date", []),
        ("package[ee]", "up_to_date", []),
        ("package[ff]", "skipped", []),
    ]
    assert [c[-3:] for c in apt.calls] == [["aa", "bb", "cc"]]
    assert apt.calls[0][:2] == ["apt-get", "install"]
    assert "Dpkg::Options::=--force-confold" in apt.calls[0]
    again = Engine(apt).run(converger.compile(RECIPE))
    assert statuses(again) == ["up_to_date"] * 4 + ["skipped"]
    assert len(apt.calls) == 1


def test_candidates_are_read_only_where_needed(converger: Converger) -> None:
    """A plain install of installed packages asks apt-cache nothing (a no-op run
    reads dpkg's status file once, and starts no process); upgrades and version
    pins read every candidate."""
    apt = FakeApt({"aa": "1", "bb": "2", "cc": "3"}, {"aa": "1", "bb": "2"})
    Engine(apt).run(converger.compile('from converge import package\n'
                                      'package(["aa", "bb"])\n'))
    assert apt.reads == [["status"]]
    apt.reads = []
    Engine(apt).run(converger.compile('from converge import package\n'
                                      'package(["aa", "cc"])\n'))
    assert apt.reads == [["status"], ["apt-cache", "cc"]]
    apt.reads = []
    Engine(apt).run(converger.compile('from converge import package\n'
                                      'package("aa", action="upgrade")\n'
                                      'package("bb")\n'))
    assert apt.reads[1] == ["apt-cache", "aa", "bb"]


def test_failed_batch_is_retried_one_by_one(converger: Converger) -> None:
    apt = FakeApt({"aa": "1", "bb": "2", "cc": "3", "dd": "4"}, {}, broken=["cc"])
    events = Engine(apt).run(converger.compile(RECIPE))
    assert statuses(events)[:4] == ["updated", "failed", "updated", "up_to_date"]
    assert "apt-get install failed (exit 100)" in events[1]["error"]
    assert [c[c.index("--") + 1:] for c in apt.calls] == [
        ["aa", "bb", "cc", "dd"], ["aa"], ["bb", "cc"], ["dd"]]
    assert set(apt.installed) == {"aa", "dd"}


def test_plan_mode_installs_nothing(converger: Converger) -> None:
    apt = FakeApt({"aa": "1", "bb": "2", "cc": "3", "dd": "4"}, {})
    events = Engine(apt, mode="plan").run(converger.compile(RECIPE))
    assert statuses(events)[:3] == ["updated"] * 3
    assert apt.calls == [] and apt.installed == {}


def test_version_pin(converger: Converger) -> None:
    apt = FakeApt({"aa": "2.0"}, {"aa": "1.0"})
    events = Engine(apt).run(converger.compile(
        'from converge import package\npackage("aa", version="2.0")\n'
        'package("aa2", version="9")\n'))
    assert events[0]["changes"] == ["change package aa from 1.0 to 2.0"]
    assert apt.calls[0][-1] == "aa=2.0" and "--allow-downgrades" in apt.calls[0]
    assert events[1]["error"].startswith("package aa2 is not available")


def test_backend_choice_follows_os_release_then_tools() -> None:
    apt = FakeApt({}, {})
    assert _pkg_backends.choose(apt, None).name == "apt"
    with pytest.raises(Exception, match="provider apk was asked for, but apk is not installed"):
        _pkg_backends.choose(apt, "apk")
    assert _pkg_backends.Dnf().command("install", [("curl", "7.76")]) == [
        "dnf", "install", "-y", "-q", "--", "curl-7.76"]
    assert _pkg_backends.Apk().command("purge", [("curl", None)]) == [
        "apk", "del", "--no-progress", "--", "curl"]
