"""The lab's offline apt repository: a flat directory of .deb files and its index.

Nodes see it read-only at `NODE_PATH` and their apt sources point only at it
(`deb [trusted=yes] file:/run/converge-lab/repo ./`), so `apt-get install`
inside a node works with no network.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote

from converge.lab.errors import LabError

NODE_PATH = "/run/converge-lab/repo"
SOURCES_LINE = f"deb [trusted=yes] file:{NODE_PATH} ./\n"
# Where apt keeps that source's index once read (apt's URI-to-file-name rule): a node's
# list is this name, a link to the repository's own index, so it is current at all times.
LISTS_DIR = "/var/lib/apt/lists"
LIST_FILE = LISTS_DIR + "/" + f"{NODE_PATH}/./Packages".replace("/", "_")
_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
_VERSION = re.compile(r"^[0-9][A-Za-z0-9.+~:-]*$")
SCRIPTS = ("preinst", "postinst", "prerm", "postrm")


class LocalRepo:
    """A flat apt repository in `directory`, indexed with dpkg-scanpackages."""

    def __init__(self, directory: Path, apt_options: Iterable[str] = ()) -> None:
        """``apt_options``: apt-get options that point this machine's apt at another
        release's lists (a lab image's repository: see converge/lab/images.py)."""
        self.directory = Path(directory)
        self.apt_options = list(apt_options)
        self._depth = 0

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise writers: labs (a private one of `converge test`, say) share a repository."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._depth = 1
            yield
        finally:
            self._depth = 0
            os.close(fd)

    def ensure(self) -> None:
        """Create the directory and an index, even an empty one."""
        with self._locked():
            if not (self.directory / "Packages").exists():
                self.index()

    def names(self) -> set[str]:
        """Package names the index holds."""
        try:
            text = (self.directory / "Packages").read_text()
        except FileNotFoundError:
            return set()
        return {line.split(":", 1)[1].strip() for line in text.splitlines()
                if line.startswith("Package:")}

    def debs(self) -> list[Path]:
        return sorted(self.directory.glob("*.deb"))

    def add_deb(self, path: str | os.PathLike[str]) -> Path:
        """Copy a .deb into the repository and re-index it."""
        source = Path(path)
        if source.suffix != ".deb" or not source.is_file():
            raise LabError(f"{source} is not a .deb file")
        with self._locked():
            target = self.directory / source.name
            if source.resolve() != target.resolve():
                shutil.copyfile(source, target)
            self.index()
        return target

    def build_deb(
        self,
        name: str,
        version: str,
        files: Mapping[str, bytes] | None = None,
        depends: Iterable[str] = (),
        scripts: Mapping[str, str] | None = None,
    ) -> Path:
        """Build a small architecture-all package with dpkg-deb and add it."""
        if not _NAME.match(name):
            raise LabError(f"package name {name!r} is not a Debian package name")
        if not _VERSION.match(version):
            raise LabError(f"version {version!r} is not a Debian version such as 1.0-1")
        with tempfile.TemporaryDirectory(prefix="converge-deb-") as tmp:
            tree = Path(tmp) / "tree"
            _write_tree(tree, files or {})
            _write_control(tree, name, version, list(depends), scripts or {})
            deb = Path(tmp) / f"{name}_{version.replace(':', '%3a')}_all.deb"
            _checked(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(tree), str(deb)],
                     "dpkg-deb")
            return self.add_deb(deb)

    def mirror(self, names: Iterable[str]) -> list[Path]:
        """Download packages and whatever they need beyond the host's own, then index."""
        wanted = sorted(set(names))
        for name in wanted:
            if not _NAME.match(name):
                raise LabError(f"package name {name!r} is not a Debian package name")
        if not wanted:
            return []
        needed = missing_packages(wanted, self.apt_options)
        with self._locked():
            fetch = [f"{pkg}={ver}" for pkg, ver, filename in needed
                     if not (self.directory / filename).exists()]
            if fetch:
                _checked(["apt-get", *self.apt_options, "download", "-qq", *fetch],
                         "apt-get download", cwd=self.directory)
            self.index()
        return [self.directory / filename for _, _, filename in needed]

    def index(self) -> None:
        """(Re)write Packages for the flat repository."""
        with self._locked():
            done = _checked(["dpkg-scanpackages", "-m", "."], "dpkg-scanpackages",
                            cwd=self.directory)
            tmp = self.directory / "Packages.tmp"
            tmp.write_text(done.stdout)
            os.replace(tmp, self.directory / "Packages")


def missing_packages(names: list[str], apt_options: Iterable[str] = ()
                     ) -> list[tuple[str, str, str]]:
    """(name, version, file name) of every package installing `names` on this host needs
    (on an image, with its ``apt_options``)."""
    # An empty archive cache: apt leaves out what this machine's cache holds already.
    with tempfile.TemporaryDirectory(prefix="converge-apt-cache-") as cache:
        os.mkdir(os.path.join(cache, "partial"))
        done = subprocess.run(
            ["apt-get", *apt_options, "install", "--print-uris", "-qq", "--no-install-recommends",
             "-o", f"Dir::Cache::Archives={cache}", *names],
            capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"},
        )
    if done.returncode != 0:
        raise LabError(
            f"cannot mirror {' '.join(names)}: {done.stderr.strip() or done.stdout.strip()} "
            "(is the package name right, and has `apt-get update` run on this machine?)"
        )
    found = []
    for line in done.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].endswith(".deb"):
            filename = parts[1]
            pkg, version, _ = filename[: -len(".deb")].split("_")
            found.append((pkg, unquote(version), filename))
    return found


def _write_tree(tree: Path, files: Mapping[str, bytes]) -> None:
    for path, data in files.items():
        if not path.startswith("/") or ".." in Path(path).parts:
            raise LabError(f"package file {path!r} must be an absolute path")
        target = tree / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        target.chmod(0o755 if data.startswith(b"#!") else 0o644)


def _write_control(tree: Path, name: str, version: str, depends: list[str],
                   scripts: Mapping[str, str]) -> None:
    debian = tree / "DEBIAN"
    debian.mkdir(parents=True, exist_ok=True)
    control = [f"Package: {name}", f"Version: {version}", "Architecture: all",
               "Maintainer: converge lab <lab@localhost>", f"Description: {name} (converge lab)"]
    if depends:
        control.append("Depends: " + ", ".join(depends))
    (debian / "control").write_text("\n".join(control) + "\n")
    for script, body in scripts.items():
        if script not in SCRIPTS:
            raise LabError(f"unknown maintainer script {script!r}; expected one of {SCRIPTS}")
        path = debian / script
        path.write_text(body)
        path.chmod(0o755)


def _checked(argv: list[str], what: str, cwd: Path | None = None
             ) -> subprocess.CompletedProcess[str]:
    if shutil.which(argv[0]) is None:
        raise LabError(f"{argv[0]} not found: install dpkg-dev and apt (apt-get install dpkg-dev)")
    done = subprocess.run(argv, capture_output=True, text=True, cwd=cwd)
    if done.returncode != 0:
        raise LabError(f"{what} failed: {done.stderr.strip()}")
    return done
