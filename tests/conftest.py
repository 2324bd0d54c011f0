"""Shared fixtures: recipes compiled and converged under a temporary root."""

from __future__ import annotations

import importlib.util
import os
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Dict, List

import pytest

from converge.agent.engine import Engine
from converge.agent.system import System
from converge.recipe import compile_recipe
from converge.resources import load_all
from tests.faults.helpers import FIGURES, FIGURES_PROPERTY

# Lab images (converge/lab/images.py) outlive the session, so the second run of the
# suite on a machine does not build them again; they are kept in the user's cache,
# never under the machine's /var (the suite writes nothing there).
os.environ.setdefault("CONVERGE_LAB_IMAGES", os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "converge-lab",
    "images"))

# Every resource type is loaded before any test runs: their property types (such as
# List[Union[str, int]]) are then the typing objects converge's own modules declare.
# typing caches generics by equal arguments, and Union[int, str] == Union[str, int]:
# a library imported first in-process (invoke, through a test of paramiko's "Match
# exec") would otherwise decide the order docs/resources.md shows
# (tests/test_docs.py::test_resource_reference_is_fresh). paramiko itself, which used
# to be imported at collection, now loads only where a connection is made.
load_all()

# Warm SSH connections (converge/transport/persist.py) are on by default for users; the
# suite's runs connect afresh and leave no broker behind. Tests of warm connections
# turn them on for their own runs, each with a broker folder of its own
# (tests/lab/test_warm_ssh.py), and stop that broker when they end.
os.environ["CONVERGE_SSH_PERSIST"] = "no"

# The fault-injection tests' figures, added up from every test's report (xdist or not).
FAULT_FIGURES: Counter[str] = Counter()
#: the hostile inputs tests/hostile tried, by outcome, from every test's report
TRIED_PROPERTY = "hostile_inputs"
HOSTILE_TRIED: Counter[str] = Counter()

# The lab's fixtures (lab, lab_node, ...), once the lab package provides them.
# Under CI=true a skipped test fails (tests/strict.py); under --cov a data file the
# combine could not read fails the run (tests/coverage_data.py).
pytest_plugins = (["tests.strict", "tests.coverage_data"] + (["converge.lab.pytest_plugin"]
                  if importlib.util.find_spec("converge.lab.pytest_plugin") else []))

FACTS = {"hostname": "testhost", "fqdn": "testhost.example", "os": "linux",
         "platform": "debian", "platform_family": "debian", "platform_version": "12",
         "init": "sysvinit", "cpu_count": 2, "memory_mb": 1024, "python_version": "3.11"}


class Converger:
    """Compile a recipe text and converge it under a temporary root."""

    def __init__(self, root: Path, workdir: Path) -> None:
        self.root = root
        self.workdir = workdir
        self.system = System(str(root), cwd="/")
        for folder in ("etc", "var/lib", "tmp"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                         "www-data:x:33:33::/var/www:/bin/sh\n")
        (root / "etc/group").write_text("root:x:0:\nwww-data:x:33:\n")

    def write(self, name: str, text: str) -> Path:
        path = self.workdir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return path

    def compile(self, text: str, name: str = "recipe.py", **kwargs: Any):  # type: ignore[no-untyped-def]
        path = self.write(name, text)
        kwargs.setdefault("facts", lambda: FACTS)
        return compile_recipe(path, **kwargs)

    def run(self, text: str, mode: str = "apply", **kwargs: Any) -> List[Dict[str, Any]]:
        plan = self.compile(text, **kwargs)
        return Engine(self.system, mode=mode).run(plan)

    def path(self, target: str) -> Path:
        return self.root / target.lstrip("/")


@pytest.fixture(autouse=True)
def _state_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
               ) -> None:
    """Runs on / (the CLI without --root, the agent under test) keep their journal,
    backups and run lock in a temporary directory, never in this machine's
    /var/lib/converge; subprocesses inherit it."""
    monkeypatch.setenv("CONVERGE_STATE_DIR", str(tmp_path_factory.mktemp("state")))


@pytest.fixture
def converger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Converger:
    root, work = tmp_path / "root", tmp_path / "work"
    root.mkdir()
    work.mkdir()
    monkeypatch.chdir(work)
    return Converger(root, work)


def statuses(events: List[Dict[str, Any]]) -> List[str]:
    return [e["status"] for e in events]


@pytest.fixture
def mtimes() -> Callable[[Path], Dict[str, int]]:
    def snapshot(root: Path) -> Dict[str, int]:
        return {str(p): os.stat(p, follow_symlinks=False).st_mtime_ns
                for p in root.rglob("*")}
    return snapshot


# -- an unprivileged user in a lab node ------------------------------------------------


class Alice:
    """An unprivileged user ``alice`` (home /home/alice, hers, 0755) in a lab node:
    ``alice.run(argv)`` runs a command as her, ``alice.sh(script)`` a shell line as
    her, and both return the CompletedProcess."""

    name = "alice"
    home = "/home/alice"

    def __init__(self, node: Any) -> None:
        self.node = node
        done = node.run(["useradd", "--create-home", "--shell", "/bin/sh", self.name])
        assert done.returncode == 0, done.stderr
        node.run(["chmod", "0755", self.home])
        self.uid = int(node.run(["id", "-u", self.name]).stdout)

    def run(self, argv: List[str]) -> Any:
        return self.node.run(["runuser", "-u", self.name, "--", *argv])

    def sh(self, script: str) -> Any:
        return self.run(["sh", "-c", script])


@pytest.fixture
def alice(lab_node: Any) -> Alice:
    """A fresh lab node (``alice.node``) with the unprivileged user alice in it, for
    tests where a local user plants links, odd names or escapes for converge to meet."""
    return Alice(lab_node)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "teardown":
        for name, value in report.user_properties:
            if name == FIGURES_PROPERTY:
                FAULT_FIGURES.update(value)
            elif name == TRIED_PROPERTY:
                HOSTILE_TRIED.update(value)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if HOSTILE_TRIED:
        parts = ", ".join("%s %d" % item for item in sorted(HOSTILE_TRIED.items()))
        terminalreporter.write_line("hostile inputs tried: %d (%s)"
                                    % (sum(HOSTILE_TRIED.values()), parts))
    if not FAULT_FIGURES:
        return
    terminalreporter.section("fault injection")
    for key, text in FIGURES:
        if key in FAULT_FIGURES:
            terminalreporter.write_line("%-50s %d" % (text + ":", FAULT_FIGURES[key]))
    for key in sorted(set(FAULT_FIGURES) - {k for k, _ in FIGURES}):
        terminalreporter.write_line("%-50s %d" % (key + ":", FAULT_FIGURES[key]))
