"""converge as a package: the sdist and the wheel build (``python3 -m build``), the
wheel installs into a fresh virtual environment and runs the first example there,
and the CHANGELOG has a heading for the version being built.

Offline: the build runs without isolation (setuptools and wheel from the dev
extras), and the venv sees this machine's site-packages for the dependencies, so
pip fetches nothing (``--no-index``); the converge it runs is the wheel's, which
the test checks."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DIST = "converge-ops"  # the distribution's name; "converge" on the package index is another


def clean_env() -> dict:
    """The environment without this checkout on the path: the venv's converge runs."""
    return {k: v for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}


def test_the_distribution_is_named_converge_ops_and_installs_the_converge_command() -> None:
    text = (REPO / "pyproject.toml").read_text()
    assert re.search(r'^name = "%s"$' % DIST, text, re.M)
    assert re.search(r'^converge = "converge\.launch:main"$', text, re.M)


def test_the_changelog_has_a_heading_for_this_version_and_releases_newest_first() -> None:
    from converge import __version__

    text = (REPO / "CHANGELOG.md").read_text()
    versions = re.findall(r"^## (\d+\.\d+\.\d+) — \d{4}-\d\d-\d\d$", text, re.M)
    assert __version__ in versions, "CHANGELOG.md has no '## %s — DATE' heading" % __version__
    as_tuples = [tuple(int(p) for p in v.split(".")) for v in versions]
    assert as_tuples == sorted(as_tuples, reverse=True)
    headings = re.findall(r"^## (.+)$", text, re.M)
    assert headings[0] in ("Unreleased", versions[0])


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist and the wheel, built from a copy of the checkout's files (a build
    writes build/ and *.egg-info beside its sources)."""
    source = tmp_path_factory.mktemp("source")
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=REPO, capture_output=True,
                            check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--sdist",
                           "--wheel", "--outdir", str(out), str(source)],
                          capture_output=True, text=True, timeout=600, env=clean_env(),
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


def test_sdist_and_wheel_build_with_the_package_and_its_docs(built: Path) -> None:
    from converge import __version__

    wheels = list(built.glob("converge_ops-%s-py3-none-any.whl" % __version__))
    sdists = list(built.glob("converge[-_]ops-%s.tar.gz" % __version__))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(p.name for p in built.iterdir())
    names = zipfile.ZipFile(wheels[0]).namelist()
    for module in ("converge/cli.py", "converge/agent/engine.py", "converge/lab/lab.py",
                   "converge/resources/file.py", "converge/transport/ssh.py"):
        assert module in names, module
    assert not [n for n in names if n.startswith("tests/")]
    entry_points = zipfile.ZipFile(wheels[0]).read(
        "converge_ops-%s.dist-info/entry_points.txt" % __version__).decode()
    assert "converge = converge.launch:main" in entry_points
    with tarfile.open(sdists[0]) as sdist:
        members = {m.name.split("/", 1)[-1] for m in sdist.getmembers()}
    assert {"pyproject.toml", "README.md", "converge/cli.py"} <= members


def test_the_wheel_installs_into_a_fresh_venv_and_runs_the_first_example(
        built: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                   check=True, timeout=300, env=clean_env())
    wheel = next(built.glob("converge_ops-*.whl"))
    pip = subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "--no-index",
                          "--no-cache-dir", "--disable-pip-version-check", "-q", str(wheel)],
                         capture_output=True, text=True, timeout=600, env=clean_env(),
                         stdin=subprocess.DEVNULL)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    where = subprocess.run([str(venv / "bin/python"), "-c",
                            "import converge; print(converge.__file__)"],
                           capture_output=True, text=True, env=clean_env(), cwd=tmp_path)
    assert where.stdout.startswith(str(venv)), where.stdout + where.stderr  # the wheel's copy
    work = tmp_path / "work"
    work.mkdir()
    (work / "hello.py").write_text((REPO / "examples/hello.py").read_text())
    runs = [subprocess.run([str(venv / "bin/converge"), "apply", "hello.py"], cwd=work,
                           capture_output=True, text=True, env=clean_env(), timeout=120,
                           stdin=subprocess.DEVNULL) for _ in range(2)]
    assert runs[0].returncode == 0, runs[0].stdout + runs[0].stderr
    assert runs[0].stdout.startswith("* file[file.txt] action create\n"
                                     "  - create new file file.txt\n")
    assert runs[1].stdout.startswith("* file[file.txt] action create (up to date)\n")
    assert (work / "file.txt").read_text() == "Hello Tunnelix"
    version = subprocess.run([str(venv / "bin/converge"), "--version"], capture_output=True,
                             text=True, env=clean_env())
    from converge import __version__

    assert version.stdout == "converge %s\n" % __version__
