"""Installed packages' resource types (entry point group converge.resources), found
without importlib.metadata: the same entry points it finds, in its order, the first
copy of a distribution only; the same errors."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from converge.agent.extensions import entry_points, load_entry_points
from converge.errors import RecipeError
from tests.banner_package import banner_package

REPO = Path(__file__).resolve().parent.parent.parent
GROUP = "converge.resources"


def dist(folder: Path, name: str, files: Dict[str, str]) -> None:
    (folder / name).mkdir(parents=True)
    for filename, text in files.items():
        (folder / name / filename).write_text(textwrap.dedent(text))


def points_of_importlib(group: str) -> List[Tuple[str, str]]:
    from importlib import metadata

    return [(p.name, p.value) for p in metadata.entry_points(group=group)]


def test_entry_points_are_those_importlib_metadata_finds(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    first, second, eggs = tmp_path / "first", tmp_path / "second", tmp_path / "eggs"
    dist(first, "demo_types-1.0.dist-info", {
        "METADATA": "Name: demo-types\nVersion: 1.0\n",
        "entry_points.txt": """\
            [console_scripts]
            demo = demo_types.cli:main

            [converge.resources]
            # a comment
            banner = demo_types.banner
            motd2=demo_types.motd2
            """})
    dist(first, "quiet-1.0.dist-info", {"METADATA": "Name: quiet\n"})  # no entry points
    dist(first, "Zeta.Pkg-3.egg-info", {"PKG-INFO": "Name: Zeta.Pkg\n",
                                        "entry_points.txt": "[converge.resources]\nzeta = z.z\n"})
    # a second copy of demo-types (another spelling of its name): importlib.metadata
    # reads the first only; so does quiet's (its entry point is never seen)
    dist(second, "Demo.Types-2.0.dist-info", {
        "METADATA": "Name: Demo.Types\n",
        "entry_points.txt": "[converge.resources]\nshadowed = demo_types.shadowed\n"})
    dist(second, "quiet-2.0.dist-info", {
        "entry_points.txt": "[converge.resources]\nloud = quiet.loud\n"})
    dist(second, "alpha-1.0.dist-info", {
        "entry_points.txt": "[other.group]\nx = y\n[converge.resources]\nalpha = a.alpha\n"})
    dist(eggs / "old-1.0-py3.egg", "EGG-INFO", {
        "PKG-INFO": "Name: old\n", "entry_points.txt": "[converge.resources]\nold = o.old\n"})
    monkeypatch.setattr(sys, "path", [str(first), str(tmp_path / "missing"), str(second),
                                      str(eggs / "old-1.0-py3.egg")])

    found = entry_points(GROUP)
    assert found == points_of_importlib(GROUP)
    assert sorted(found) == [("alpha", "a.alpha"), ("banner", "demo_types.banner"),
                             ("motd2", "demo_types.motd2"), ("old", "o.old"),
                             ("zeta", "z.z")]
    assert entry_points("console_scripts") == [("demo", "demo_types.cli:main")]


def test_entry_points_of_this_interpreter_are_importlib_metadata_s() -> None:
    for group in ("console_scripts", GROUP, "pytest11"):
        assert entry_points(group) == points_of_importlib(group), group


@pytest.mark.parametrize("value, message", [
    pytest.param("nowhere_at_all.banner", "entry point banner = nowhere_at_all.banner "
                 "(converge.resources): module not found", id="module-not-found"),
    pytest.param("typespkg.other", "entry point banner = typespkg.other: the module file "
                 "must be named after the type (banner.py)", id="misnamed-module"),
])
def test_a_bad_entry_point_is_an_error_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  value: str, message: str) -> None:
    (tmp_path / "typespkg").mkdir()
    (tmp_path / "typespkg/__init__.py").write_text("")
    (tmp_path / "typespkg/other.py").write_text("")
    dist(tmp_path, "typespkg-1.0.dist-info", {
        "entry_points.txt": "[converge.resources]\nbanner = %s\n" % value})
    monkeypatch.setattr(sys, "path", [str(tmp_path)] + sys.path)
    with pytest.raises(RecipeError) as caught:
        load_entry_points()
    assert str(caught.value) == message


def test_a_line_of_the_group_that_is_not_name_equals_value_is_an_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dist(tmp_path, "broken-1.0.dist-info", {
        "entry_points.txt": "[other]\nnot an entry point\n[converge.resources]\nbanner\n"})
    monkeypatch.setattr(sys, "path", [str(tmp_path)])
    with pytest.raises(RecipeError, match=r"entry_points.txt: 'banner' in "
                       r"\[converge.resources\] is not NAME = VALUE"):
        entry_points(GROUP)




def test_a_type_of_a_package_installed_in_a_folder_on_sys_path(tmp_path: Path) -> None:
    """pip installs a real distribution into a folder; with it on PYTHONPATH, its type
    is loaded, and importlib.metadata is not imported to find it."""
    package = banner_package(tmp_path)
    target = tmp_path / "site"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index",
                                "--no-build-isolation", "--no-deps", "--target", str(target),
                                str(package)], capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert list(target.glob("converge_banner-1.0.dist-info/entry_points.txt"))
    code = ("import sys\nfrom converge.agent.extensions import load_entry_points\n"
            "print(load_entry_points(), 'importlib.metadata' in sys.modules)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(target), str(REPO)]))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=str(tmp_path), timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "['banner'] False\n"
