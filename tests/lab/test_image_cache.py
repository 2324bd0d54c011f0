"""The image cache: named by what an image holds, built once, locked, renamed into
place whole. mmdebstrap is a fake here (a script that writes a tiny tree); the real
builds are tests/lab/test_images.py's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from converge.lab import LabError
from converge.lab.images import PACKAGES, Images

REPO = Path(__file__).resolve().parent.parent.parent

# A stand-in for mmdebstrap: records its call, writes what a build leaves (a root with
# apt lists), and with GATE set waits until that file exists (and says it started).
FAKE = """#!/bin/sh
set -e
for last; do :; done
target=""
for arg; do case "$arg" in -*|deb\\ *) ;; *) target="$arg";; esac; done
echo "$*" >> "$CALLS"
echo "I: pretending to bootstrap"
if [ -n "$GATE" ]; then
    touch "$GATE.started"
    while [ ! -e "$GATE" ]; do sleep 0.01; done
fi
[ -z "$FAIL" ] || { echo "E: the archive said no" >&2; exit 1; }
mkdir -p "$target/var/lib/apt/lists" "$target/var/lib/dpkg" "$target/etc"
echo "Package: base-files" > "$target/var/lib/dpkg/status"
echo fake > "$target/etc/debian_version"
"""


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    script = tmp_path / "mmdebstrap"
    script.write_text(FAKE)
    script.chmod(0o755)
    monkeypatch.setenv("CALLS", str(tmp_path / "calls"))
    return script


def calls(tmp_path: Path) -> list[str]:
    path = tmp_path / "calls"
    return path.read_text().splitlines() if path.exists() else []


def make(tmp_path: Path, fake: Path, **kwargs: object) -> Images:
    return Images(tmp_path / "images", mirror="http://archive.invalid/debian",
                  mmdebstrap=str(fake), **kwargs)  # type: ignore[arg-type]


def test_an_image_is_built_once_and_named_by_its_release_and_packages(tmp_path, fake):
    images = make(tmp_path, fake)
    said: list[str] = []
    image = images.ensure("debian-11", echo=said.append)
    assert image.path.name.startswith("debian-11-") and image.rootfs.is_dir()
    assert (image.rootfs / "etc/debian_version").read_text() == "fake\n"
    info = json.loads((image.path / "image.json").read_text())
    assert info["release"] == "bullseye" and info["packages"] == sorted(PACKAGES)
    assert "deb http://archive.invalid/debian bullseye main" in calls(tmp_path)[0]
    assert said[0].startswith("building image debian-11 (bullseye")
    assert "  pretending to bootstrap" in said  # mmdebstrap's progress, passed on
    # its package lists are kept beside the root, not in it (nodes get the lab's)
    assert (image.path / "apt/lists").is_dir()
    assert sorted(os.listdir(image.rootfs / "var/lib/apt/lists")) == ["partial"]
    again: list[str] = []
    assert images.ensure("debian-11", echo=again.append).path == image.path
    assert again == [] and len(calls(tmp_path)) == 1


def test_a_changed_package_list_is_another_image(tmp_path, fake):
    first = make(tmp_path, fake).ensure("debian-12", echo=lambda _: None)
    more = make(tmp_path, fake, packages=[*PACKAGES, "git"])
    assert more.find("debian-12") is None
    second = more.ensure("debian-12", echo=lambda _: None)
    assert second.path != first.path and len(calls(tmp_path)) == 2
    assert "git" in calls(tmp_path)[1]
    # the older image goes (no node runs on it); an image of another release stays
    other = make(tmp_path, fake).ensure("debian-11", echo=lambda _: None)
    assert not first.path.exists()
    assert {image.path: more.is_current(image) for image in more.list()} == \
        {second.path: True, other.path: False}


def test_a_failed_build_leaves_nothing(tmp_path, fake, monkeypatch):
    monkeypatch.setenv("FAIL", "1")
    images = make(tmp_path, fake)
    with pytest.raises(LabError, match=r"mmdebstrap bookworm failed \(exit 1\): .*the archive "
                                       r"said no"):
        images.build("debian-12", echo=lambda _: None)
    assert images.find("debian-12") is None
    assert [p.name for p in images.directory.iterdir() if not p.name.endswith(".lock")] == []


def test_an_unknown_image_name_lists_the_known_ones(tmp_path, fake):
    with pytest.raises(LabError, match="no image named 'debian-10': choose one of "
                                       "debian-11, debian-12, debian-13"):
        make(tmp_path, fake).ensure("debian-10")


def waiting_on_a_lock(pid: int) -> bool:
    """Whether process pid is blocked waiting for a file lock (/proc/locks' '->' lines)."""
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if len(fields) > 5 and fields[1] == "->" and fields[5] == str(pid):
            return True
    return False


def test_two_processes_building_one_image_build_it_once(tmp_path, fake):
    """The second waits on the image's lock while the first builds, then finds it."""
    gate = tmp_path / "gate"
    env = {**os.environ, "GATE": str(gate), "PYTHONPATH": str(REPO)}
    code = ("import sys; from converge.lab.images import Images; "
            "i = Images(sys.argv[1], mirror='http://archive.invalid/debian', "
            "mmdebstrap=sys.argv[2]).build('debian-13', echo=lambda _: None); "
            "print(i.path)")
    argv = [sys.executable, "-c", code, str(tmp_path / "images"), str(fake)]
    first = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not Path(f"{gate}.started").exists():
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    second = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True)
    while not waiting_on_a_lock(second.pid):
        assert second.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    building = [p.name for p in (tmp_path / "images").iterdir() if ".build-" in p.name]
    assert len(building) == 1  # the first builds apart from the image's own name
    gate.touch()
    paths = {first.communicate(timeout=60)[0].strip(), second.communicate(timeout=60)[0].strip()}
    assert first.returncode == second.returncode == 0
    assert len(paths) == 1 and len(calls(tmp_path)) == 1
    assert sorted(p.name for p in (tmp_path / "images").iterdir()
                  if not p.name.startswith(".")) == [Path(paths.pop()).name]


def test_threads_asking_for_one_image_get_one_build(tmp_path, fake):
    images = make(tmp_path, fake)
    found: list[Path] = []
    threads = [threading.Thread(target=lambda: found.append(
        images.ensure("debian-11", echo=lambda _: None).path)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(found)) == 1 and len(calls(tmp_path)) == 1


def test_image_ls_and_rm_on_the_command_line(tmp_path, fake):
    images = make(tmp_path, fake)
    built = images.ensure("debian-12", echo=lambda _: None)
    env = {**os.environ, "CONVERGE_LAB_IMAGES": str(images.directory),
           "PYTHONPATH": str(REPO)}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "converge", "lab", "image", *args],
                              env=env, capture_output=True, text=True, timeout=120)

    listed = cli("ls")
    assert listed.returncode == 0
    name, release, _, _, state, path = listed.stdout.strip().split("\t")
    assert (name, release, state, path) == ("debian-12", "bookworm", "current",
                                            str(built.path))
    removed = cli("rm", "debian-12")
    assert removed.stdout == f"removed {built.path}\n" and not built.path.exists()
    assert cli("ls").stderr == f"no images in {images.directory}\n"
    missing = cli("rm", "debian-12")
    assert missing.returncode == 1
    assert missing.stderr == f"error: no image debian-12 built in {images.directory}\n"
