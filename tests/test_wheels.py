"""converge.wheels: wheels of converge and its dependencies made here, installed into
a temporary folder (as into a node's site-packages) by converge's own installer.
The install on a real node from a lab image is tests/lab/test_pull_install.py."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from converge import wheels
from converge.wheels import WheelError, build, install, parse_name


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    made = tmp_path_factory.mktemp("wheels")
    build(made)
    return made


def test_build_makes_converge_and_each_dependency_once(folder: Path) -> None:
    projects = [parse_name(w)[0] for w in sorted(folder.glob("*.whl"))]
    assert len(projects) == len(set(projects))
    for needed in ("converge_ops", "typer", "rich", "jinja2", "markupsafe", "pyyaml",
                   "paramiko", "cryptography"):
        assert needed in projects, projects
    assert "psycopg" not in projects  # an extra, only when asked
    with zipfile.ZipFile(next(folder.glob("converge_ops-*.whl"))) as archive:
        names = archive.namelist()
    assert "converge/wheels.py" in names and "converge/agent/engine.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert "converge_ops-0.1.0.dist-info/entry_points.txt" in names


def test_a_build_is_the_same_bytes_twice(folder: Path, tmp_path: Path) -> None:
    again = wheels.converge_wheel(tmp_path)
    assert again.read_bytes() == (folder / again.name).read_bytes()


def test_install_then_install_again_changes_nothing(folder: Path, tmp_path: Path) -> None:
    site, scripts = tmp_path / "site", tmp_path / "bin"
    first = install(folder, site, scripts)
    assert all(first.values()) and len(first) == len(list(folder.glob("*.whl")))
    assert (scripts / "converge").read_text().startswith("#!%s\n" % sys.executable)
    mtime = (site / "converge" / "cli.py").stat().st_mtime_ns
    second = install(folder, site, scripts)
    assert not any(second.values())
    assert (site / "converge" / "cli.py").stat().st_mtime_ns == mtime
    # the installed copy runs without this checkout: -S (no site-packages), only the folder
    done = subprocess.run([sys.executable, "-S", "-m", "converge", "pull", "--help"],
                          env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}, cwd="/",
                          capture_output=True, text=True)
    assert done.returncode == 0 and "--wheels DIR" in done.stdout, done.stderr
    check = [sys.executable, "-m", "converge.wheels", "check", str(folder), "--target", str(site)]
    assert subprocess.run(check, capture_output=True).returncode == 0
    (site / "converge_ops-0.1.0.dist-info" / wheels.MARKER).write_text("changed\n")
    done = subprocess.run(check, capture_output=True, text=True)
    assert done.returncode == 1 and "not installed: converge_ops-0.1.0" in done.stdout


def test_a_new_wheel_replaces_the_old_version_and_its_files(folder: Path,
                                                            tmp_path: Path) -> None:
    site = tmp_path / "site"
    old = tmp_path / "old"
    old.mkdir()
    old_wheel = old / "demo-1.0-py3-none-any.whl"
    wheels._write_wheel(old_wheel, [("demo/__init__.py", b"old = 1\n"),
                                    ("demo/gone.py", b""),
                                    ("demo-1.0.dist-info/METADATA", b"Name: demo\n")],
                        "demo-1.0.dist-info")
    assert wheels.install_one(old_wheel, site)
    new_wheel = old / "demo-2.0-py3-none-any.whl"
    wheels._write_wheel(new_wheel, [("demo/__init__.py", b"new = 2\n"),
                                    ("demo-2.0.dist-info/METADATA", b"Name: demo\n")],
                        "demo-2.0.dist-info")
    assert wheels.install_one(new_wheel, site)
    assert (site / "demo" / "__init__.py").read_text() == "new = 2\n"
    assert not (site / "demo" / "gone.py").exists()
    assert not (site / "demo-1.0.dist-info").exists()
    with pytest.raises(WheelError, match="more than one wheel of demo"):
        install(old, site)


@pytest.mark.parametrize(("name", "fits"), [
    ("x-1-py3-none-any.whl", True),
    ("x-1-py2.py3-none-any.whl", True),
    ("x-1-py2-none-any.whl", False),
    ("x-1-cp%d%d-cp%d%d-manylinux_2_17_x86_64.whl" % (sys.version_info[:2] * 2), True),
    ("x-1-cp39-cp39-manylinux_2_17_x86_64.whl", sys.version_info[:2] == (3, 9)),
    ("x-1-cp38-abi3-manylinux_2_34_x86_64.whl", True),
    ("x-1-cp311-cp311-manylinux_2_17_aarch64.whl", False),
    ("x-1-cp311-cp311-win_amd64.whl", False),
])
def test_tags(name: str, fits: bool) -> None:
    import os

    if os.uname().machine != "x86_64":
        pytest.skip("the table is written for x86_64")
    tags = parse_name(Path(name))[2]
    assert any(wheels._tag_fits(t) for t in wheels._expand(tags)) is fits


def test_a_wheel_for_another_python_is_refused_before_anything_is_installed(
        tmp_path: Path) -> None:
    folder = tmp_path / "w"
    folder.mkdir()
    wheels._write_wheel(folder / "converge_ops-0.1.0-py3-none-any.whl",
                        [("converge_ops-0.1.0.dist-info/METADATA", b"")],
                        "converge_ops-0.1.0.dist-info")
    wheels._write_wheel(folder / "pyyaml-6.0-cp27-cp27mu-manylinux1_x86_64.whl",
                        [("pyyaml-6.0.dist-info/METADATA", b"")], "pyyaml-6.0.dist-info")
    with pytest.raises(WheelError, match="does not run on this python3"):
        install(folder, tmp_path / "site")
    assert not (tmp_path / "site").exists()


def test_a_folder_without_converge_is_refused(tmp_path: Path) -> None:
    with pytest.raises(WheelError, match="holds no wheel of converge-ops"):
        install(tmp_path, tmp_path / "site")


def test_members_outside_the_site_are_not_written(tmp_path: Path) -> None:
    wheel = tmp_path / "evil-1-py3-none-any.whl"
    wheels._write_wheel(wheel, [("../../outside.py", b"x"), ("/abs.py", b"x"),
                                ("evil-1.dist-info/METADATA", b"")], "evil-1.dist-info")
    wheels.install_one(wheel, tmp_path / "site")
    assert not (tmp_path / "outside.py").exists() and not Path("/abs.py").exists()
