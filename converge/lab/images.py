"""Lab images: minimal Debian root file systems that nodes start from, built with
mmdebstrap from Debian's archive and cached on this machine.

An image is the read-only lower layer of its nodes' root: nothing of this machine's
/etc, /usr or /var shows in them, so a recipe runs on the release it names
(bullseye, bookworm, trixie) whatever this machine runs, and an `apt-get` on the
machine cannot disturb them. Images are built once and kept under the image
directory (``CONVERGE_LAB_IMAGES``, else /var/cache/converge-lab/images):

    debian-12-3f2a9c41b07e/
        rootfs/          the root file system (a node's lower layer, never written)
        apt/lists/       the release's package lists, for mirroring packages into
        sources.list     the archive they came from
        image.json       release, packages, mmdebstrap options, when, how long
    repos/debian-12/     the release's offline apt repository (its nodes' only source)

The directory name carries a digest of the release, the package list and the
mmdebstrap options: change any of them and the next use builds a new image. Two
processes building one image take turns (a lock per image); a build happens in a
directory of its own and is renamed into place whole, so nobody ever sees half an
image.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List

from converge.lab._files import atomic_write, read_json
from converge.lab.errors import LabError
from converge.lab.repo import LocalRepo

DEFAULT_DIRECTORY = "/var/cache/converge-lab/images"
RELEASES = {"debian-11": "bullseye", "debian-12": "bookworm", "debian-13": "trixie"}
# What a node needs: python3 (converge's agent), sshd, and the tools converge's
# resources and the lab itself run (ip, crontab, sudo, pgrep/sysctl, useradd, service).
PACKAGES = ("cron", "init-system-helpers", "iproute2", "openssh-server", "passwd", "procps",
            "python3", "sudo")
# The "required" variant is Debian's minimal system (debootstrap's minbase: what
# every Debian install has, mount and tzdata included); documentation and
# translations are left out (a third of the size, and of the time).
MMDEBSTRAP_OPTIONS = (
    "--variant=required", "--skip=cleanup/apt/lists",
    "--dpkgopt=path-exclude=/usr/share/man/*", "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    "--dpkgopt=path-exclude=/usr/share/locale/*", "--dpkgopt=path-exclude=/usr/share/info/*",
    # no host keys in the image: each node gets its own
    '--customize-hook=rm -f "$1"/etc/ssh/ssh_host_*',
)
# apt settings of this machine an image build takes over (how it reaches the archive).
APT_PASSED = ("Acquire::http::Proxy", "Acquire::https::Proxy", "Acquire::Check-Valid-Until",
              "Acquire::Check-Date")
MIRROR_ENV = "CONVERGE_IMAGE_MIRROR"
IMAGES_ENV = "CONVERGE_LAB_IMAGES"


@dataclass(frozen=True)
class Image:
    """A built image: its name (debian-12), directory, and what image.json says."""

    name: str
    path: Path
    info: dict[str, Any]

    @property
    def rootfs(self) -> Path:
        return self.path / "rootfs"

    @property
    def release(self) -> str:
        return str(self.info["release"])


class Images:
    """The images cached in one directory (see the module docstring)."""

    def __init__(self, directory: str | os.PathLike[str] | None = None,
                 mirror: str | None = None, *, packages: Iterable[str] = PACKAGES,
                 mmdebstrap: str = "mmdebstrap") -> None:
        self.directory = Path(directory or os.environ.get(IMAGES_ENV)
                              or DEFAULT_DIRECTORY).absolute()
        self._mirror = mirror or os.environ.get(MIRROR_ENV)
        self.packages = sorted(set(packages))
        self.mmdebstrap = mmdebstrap

    # -- names -----------------------------------------------------------------

    @staticmethod
    def check_name(name: str) -> str:
        """The release of an image name, or a LabError listing the names there are."""
        if name not in RELEASES:
            raise LabError(f"no image named {name!r}: choose one of {', '.join(RELEASES)}")
        return RELEASES[name]

    def digest(self, name: str) -> str:
        """What the image's directory name carries: release, packages, options."""
        recipe = {"release": RELEASES[name], "packages": self.packages,
                  "options": list(MMDEBSTRAP_OPTIONS)}
        return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]

    def path(self, name: str) -> Path:
        self.check_name(name)
        return self.directory / f"{name}-{self.digest(name)}"

    # -- queries ---------------------------------------------------------------

    def find(self, name: str) -> Image | None:
        """The built, current image of that name, or None."""
        path = self.path(name)
        info = read_json(path / "image.json")
        return Image(name, path, info) if info is not None else None

    def list(self) -> List[Image]:
        """Every image built here, current or left from an older package list."""
        found = []
        for meta in sorted(self.directory.glob("debian-*/image.json")):
            info = read_json(meta)
            if info is not None:
                found.append(Image(str(info.get("name")), meta.parent, info))
        return found

    def is_current(self, image: Image) -> bool:
        return image.name in RELEASES and image.path == self.path(image.name)

    def repo(self, name: str) -> LocalRepo:
        """The release's offline apt repository: what its nodes install from."""
        image = self.find(name)
        if image is None:
            raise LabError(f"image {name} is not built: converge lab image build {name}")
        return LocalRepo(self.directory / "repos" / name, apt_options=_apt_options(image))

    # -- build and remove ------------------------------------------------------

    def ensure(self, name: str, echo: Callable[[str], None] = print) -> Image:
        """The image, built first if it is not (saying so, with mmdebstrap's progress)."""
        found = self.find(name)
        if found is not None:
            return found
        return self.build(name, echo=echo)

    def build(self, name: str, rebuild: bool = False,
              echo: Callable[[str], None] = print) -> Image:
        """Build the image with mmdebstrap (again when ``rebuild``); return it."""
        release = self.check_name(name)
        with self._locked(name):
            found = self.find(name)
            if found is not None and not rebuild:
                return found  # another process built it while this one waited
            if shutil.which(self.mmdebstrap) is None:
                raise LabError(f"{self.mmdebstrap} not found: install it "
                               "(apt-get install mmdebstrap)")
            mirror = self.mirror()
            final = self.path(name)
            if final.exists():  # asked again before spending minutes on a build
                _check_unused(Image(name, final, {}))
            build = final.with_name(f".{final.name}.build-{os.getpid()}")
            shutil.rmtree(build, ignore_errors=True)
            build.mkdir(parents=True, mode=0o700)
            echo(f"building image {name} ({release}, from {mirror}) with mmdebstrap")
            started = time.monotonic()
            try:
                _mmdebstrap(self.mmdebstrap, release, mirror, self.packages,
                            build / "rootfs", echo)
                lists = build / "rootfs" / "var/lib/apt/lists"
                (build / "apt").mkdir()
                os.rename(lists, build / "apt" / "lists")
                (lists / "partial").mkdir(parents=True, mode=0o700)
                sources = f"deb {mirror} {release} main\n"
                (build / "sources.list").write_text(sources)
                info = {"name": name, "release": release, "packages": self.packages,
                        "options": list(MMDEBSTRAP_OPTIONS), "mirror": mirror,
                        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        "seconds": round(time.monotonic() - started, 1),
                        "bytes": _size(build / "rootfs")}
                atomic_write(build / "image.json", json.dumps(info, indent=2) + "\n")
                if final.exists():
                    _check_unused(Image(name, final, {}))
                    old = final.with_name(f".{final.name}.old-{os.getpid()}")
                    os.rename(final, old)
                    shutil.rmtree(old, ignore_errors=True)
                os.rename(build, final)
            finally:
                shutil.rmtree(build, ignore_errors=True)
            shutil.rmtree(self.directory / "repos" / name, ignore_errors=True)
            self._drop_outdated(name)
            echo(f"built image {name} in {info['seconds']:.0f} s "
                 f"({int(str(info['bytes'])) / 2**20:.0f} MiB)")
        return Image(name, final, info)

    def remove(self, name: str) -> List[Path]:
        """Delete every image of that name (current and older); return their paths.

        Refused while a node runs on one: overlayfs is undefined when a lower layer
        changes under a mount."""
        self.check_name(name)
        removed = []
        with self._locked(name):
            for image in self.list():
                if image.name == name:
                    _check_unused(image)
                    shutil.rmtree(image.path)
                    removed.append(image.path)
            shutil.rmtree(self.directory / "repos" / name, ignore_errors=True)
        if not removed:
            raise LabError(f"no image {name} built in {self.directory}")
        return removed

    def _drop_outdated(self, name: str) -> None:
        """Delete the older images of that name (another package list) no node uses."""
        for image in self.list():
            if image.name == name and not self.is_current(image):
                try:
                    _check_unused(image)
                except LabError:
                    continue
                shutil.rmtree(image.path, ignore_errors=True)

    def mirror(self) -> str:
        """The Debian archive this machine's apt uses (or CONVERGE_IMAGE_MIRROR)."""
        if self._mirror:
            return self._mirror
        done = subprocess.run(
            ["apt-get", "indextargets", "--format", "$(ORIGIN)\t$(LABEL)\t$(REPO_URI)"],
            capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"})
        for line in done.stdout.splitlines():
            origin, label, uri = (line.split("\t") + ["", "", ""])[:3]
            if origin == "Debian" and label == "Debian" and uri:
                return uri.rstrip("/")
        raise LabError("cannot tell which Debian archive this machine's apt uses (no "
                       "Debian list after `apt-get update`): set CONVERGE_IMAGE_MIRROR to "
                       "the archive's URL")

    @contextmanager
    def _locked(self, name: str) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.directory / f".{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def _check_unused(image: Image) -> None:
    """Raise if a running node's root lies on the image (any mount namespace)."""
    needle = f"lowerdir={image.rootfs},"
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/mountinfo") as info:
                if any(needle in line for line in info):
                    raise LabError(f"image {image.name} ({image.path}) is in use by a running "
                                   f"lab node (process {entry}): take its nodes down first")
        except OSError:
            continue


def _mmdebstrap(program: str, release: str, mirror: str, packages: list[str], target: Path,
                echo: Callable[[str], None]) -> None:
    """Run mmdebstrap, passing its progress lines on; a LabError with its last words."""
    argv = [program, *MMDEBSTRAP_OPTIONS, f"--include={','.join(packages)}",
            *(f"--aptopt={option}" for option in _host_apt_settings()),
            release, str(target), f"deb {mirror} {release} main"]
    tail: list[str] = []
    with subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, errors="replace",
                          env={**os.environ, "LC_ALL": "C"}) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            tail = (tail + [line])[-5:]
            if line.startswith("I: "):
                echo(f"  {line[3:]}")
    if proc.returncode != 0:
        raise LabError(f"mmdebstrap {release} failed (exit {proc.returncode}): "
                       + " | ".join(tail))


def _host_apt_settings() -> list[str]:
    """This machine's apt settings that say how it reaches the archive, as apt options."""
    found = []
    for key in APT_PASSED:
        done = subprocess.run(["apt-config", "shell", "V", key], capture_output=True,
                              text=True)
        value = done.stdout.strip()
        if done.returncode == 0 and value.startswith("V="):
            found.append(f'{key} "{value[2:].strip(chr(39))}"')
    return found


def _apt_options(image: Image) -> list[str]:
    """apt-get options that make this machine's apt answer for the image's release:
    its lists, its sources, its installed packages."""
    state = image.path / "apt"
    return ["-o", f"Dir::Etc::SourceList={image.path / 'sources.list'}",
            "-o", "Dir::Etc::SourceParts=/dev/null",
            "-o", f"Dir::State::Lists={state / 'lists'}",
            "-o", f"Dir::State::Status={image.rootfs / 'var/lib/dpkg/status'}",
            "-o", "Dir::Cache::pkgcache=", "-o", "Dir::Cache::srcpkgcache=",  # none kept
            "-o", "APT::Get::AllowUnauthenticated=false"]


def _size(path: Path) -> int:
    total = 0
    for dirpath, _, filenames in os.walk(path):
        for filename in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, filename)).st_size
            except OSError:
                continue
    return total
