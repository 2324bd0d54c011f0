"""Wheels for nodes with no package index: converge and what it needs, built on the
controller and installed on a node by this module alone (standard library, no pip).

On the controller::

    python3 -m converge.wheels build WHEELS [--extra postgresql]

writes into the folder WHEELS a wheel of this converge (made from its own package
folder: no build backend, no network) and a wheel of each installed distribution
it depends on, repacked from the controller's site-packages with the tags they
were installed with. A dependency with compiled modules (PyYAML, cryptography...)
fits nodes with the controller's Python version and machine; the installer says so
when it does not.

On a node, with nothing installed but Debian's python3::

    PYTHONPATH=WHEELS/converge_ops-VERSION-py3-none-any.whl \
        python3 -m converge.wheels install WHEELS

installs every wheel of the folder for that python3, where pip would put a local
install (sysconfig's purelib: /usr/local/lib/python3.X/dist-packages on Debian),
with converge's console script. A wheel whose exact file is installed already is
left alone, so a second install changes nothing. ``converge pull --install
--wheels WHEELS`` does the same before it installs the timer. See docs/pull.md.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import re
import shutil
import sys
import sysconfig
import tempfile
import zipfile
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

DIST = "converge-ops"
MARKER = "CONVERGE_WHEEL"  # in an installed dist-info: the sha256 of the wheel installed
SKIPPED_INFO = ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json", MARKER)
# a fixed date for every member: the same source makes the same wheel, byte for byte
ZIP_DATE = (2020, 1, 1, 0, 0, 0)


class WheelError(Exception):
    """A wheel that cannot be built or installed here, said for people."""


def normalize(name: str) -> str:
    """A project name as wheel file names and dist-info folders spell it."""
    return re.sub(r"[-_.]+", "_", name).lower()


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode()


# -- building (the controller) ----------------------------------------------------------


def _write_wheel(path: Path, members: List[Tuple[str, bytes]], info_dir: str) -> None:
    """A wheel at ``path`` holding ``members`` and their RECORD."""
    rows = [(name, _record_hash(data), str(len(data))) for name, data in members]
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    writer.writerows(rows + [(info_dir + "/RECORD", "", "")])
    members = members + [(info_dir + "/RECORD", record.getvalue().encode())]
    temp = path.with_name("." + path.name + ".tmp")
    with zipfile.ZipFile(temp, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            entry = zipfile.ZipInfo(name, ZIP_DATE)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            archive.writestr(entry, data)
    os.replace(temp, path)


def _own_requirements() -> List[str]:
    """converge's Requires-Dist: its installed metadata, else pyproject.toml beside it."""
    import importlib.metadata

    try:
        return list(importlib.metadata.requires(DIST) or [])
    except importlib.metadata.PackageNotFoundError:
        pass
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    try:
        import tomllib  # type: ignore[import-not-found,unused-ignore]  # novermin
    except ImportError:  # Python 3.10
        raise WheelError("%s is not installed and this Python has no tomllib to read "
                         "pyproject.toml" % DIST) from None
    project = tomllib.loads(pyproject.read_text())["project"]
    found = list(project.get("dependencies", []))
    for extra, requirements in project.get("optional-dependencies", {}).items():
        found += ['%s; extra == "%s"' % (r, extra) for r in requirements]
    return found


def converge_wheel(dest: Path) -> Path:
    """A wheel of this converge's package folder (what ``import converge`` runs)."""
    from . import _version

    package = Path(__file__).resolve().parent
    version = _version.__version__
    info = "%s-%s.dist-info" % (normalize(DIST), version)
    members: List[Tuple[str, bytes]] = []
    for path in sorted(package.rglob("*")):
        relative = path.relative_to(package.parent).as_posix()
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            members.append((relative, path.read_bytes()))
    metadata = "Metadata-Version: 2.1\nName: %s\nVersion: %s\nRequires-Python: >=3.10\n" % (
        DIST, version) + "".join("Requires-Dist: %s\n" % r for r in _own_requirements())
    members += [
        (info + "/METADATA", metadata.encode()),
        (info + "/WHEEL", b"Wheel-Version: 1.0\nGenerator: converge.wheels\n"
         b"Root-Is-Purelib: true\nTag: py3-none-any\n"),
        (info + "/entry_points.txt", b"[console_scripts]\nconverge = converge.launch:main\n"),
    ]
    path = dest / ("%s-%s-py3-none-any.whl" % (normalize(DIST), version))
    _write_wheel(path, members, info)
    return path


def _split(requirement: str) -> Tuple[str, List[str], str]:
    """'psycopg[binary]>=3.1; extra == "pg"' as ('psycopg', ['binary'], the marker)."""
    head, _, marker = requirement.partition(";")
    match = re.match(r"\s*([A-Za-z0-9._-]+)\s*(?:\[([^\]]*)\])?", head)
    if not match:
        raise WheelError("cannot read the requirement %r" % requirement)
    extras = [e.strip() for e in (match.group(2) or "").split(",") if e.strip()]
    return match.group(1), extras, marker.strip()


def _wanted(marker: str, extras: Iterable[str]) -> bool:
    """Whether a requirement with this environment marker applies here."""
    if not marker:
        return True
    if "extra" in marker:
        named = re.findall(r"extra\s*==\s*['\"]([^'\"]+)['\"]", marker)
        return any(normalize(e) in {normalize(x) for x in extras} for e in named)
    try:
        from packaging.markers import Marker
    except ImportError:  # without packaging: what is installed here is what applies
        return True
    return bool(Marker(marker).evaluate())


def _repack(dist: object, dest: Path) -> Path:
    """A wheel of an installed distribution, from the files its RECORD lists."""
    import importlib.metadata

    assert isinstance(dist, importlib.metadata.Distribution)
    name, version = dist.metadata["Name"], dist.version
    files = [f for f in (dist.files or []) if not str(f).startswith("..")
             and "__pycache__" not in f.parts and f.suffix != ".pyc"]
    info_dirs = {f.parts[0] for f in files if f.parts[0].endswith(".dist-info")}
    if len(info_dirs) != 1:
        raise WheelError("%s %s: its installed files list no single dist-info folder "
                         "(installed by something other than a wheel?)" % (name, version))
    info = info_dirs.pop()
    members = []
    for entry in files:
        if entry.parts[0] == info and entry.name in SKIPPED_INFO:
            continue
        located = Path(str(dist.locate_file(entry)))
        if located.is_file():
            members.append((entry.as_posix(), located.read_bytes()))
    tags = [line.split(":", 1)[1].strip() for line in (dist.read_text("WHEEL") or "").splitlines()
            if line.startswith("Tag:")]
    parts = [tag.split("-") for tag in tags] or [["py3", "none", "any"]]
    tag = "-".join(".".join(dict.fromkeys(p[i] for p in parts)) for i in range(3))
    path = dest / ("%s-%s-%s.whl" % (normalize(name), version, tag))
    _write_wheel(path, members, info)
    return path


def build(dest: Path, extras: Iterable[str] = ()) -> List[Path]:
    """Wheels of this converge and of its installed dependencies, written into dest."""
    import importlib.metadata

    dest.mkdir(parents=True, exist_ok=True)
    made = [converge_wheel(dest)]
    seen = {normalize(DIST)}
    todo = [(r, list(extras)) for r in _own_requirements()]
    while todo:
        requirement, active = todo.pop(0)
        name, wanted_extras, marker = _split(requirement)
        if not _wanted(marker, active) or normalize(name) in seen:
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            if marker:
                continue
            raise WheelError("%s needs %s, which is not installed here: install it on "
                             "the controller first" % (DIST, name)) from None
        seen.add(normalize(name))
        made.append(_repack(dist, dest))
        todo += [(r, wanted_extras) for r in (dist.requires or [])]
    return made


# -- installing (the node) ---------------------------------------------------------------


def _tag_fits(tag: str) -> bool:
    """Whether a wheel tag (py3-none-any, cp311-abi3-manylinux_2_34_x86_64) runs here."""
    pythons, abis, platforms = tag.split("-")
    current = sys.version_info[:2]
    machine = os.uname().machine

    def python_fits(python: str) -> bool:
        match = re.match(r"^(py|cp)(\d)(\d*)$", python)
        if not match or int(match.group(2)) != current[0]:
            return False
        minor = int(match.group(3)) if match.group(3) else None
        if match.group(1) == "py":
            return minor is None or minor <= current[1]
        if minor is None:
            return False
        return minor <= current[1] if "abi3" in abis.split(".") else minor == current[1]

    platform_fits = any(p == "any" or (sys.platform.startswith("linux") and p.startswith(
        ("linux_", "manylinux")) and p.endswith("_" + machine)) for p in platforms.split("."))
    return platform_fits and any(python_fits(p) for p in pythons.split("."))


def parse_name(path: Path) -> Tuple[str, str, str]:
    """(project, version, tags) of a wheel file's name."""
    parts = path.name[:-len(".whl")].split("-")
    if not path.name.endswith(".whl") or len(parts) not in (5, 6):
        raise WheelError("%s is not a wheel's file name" % path.name)
    return parts[0], parts[1], "-".join(parts[-3:])


def _installed(site: Path, project: str) -> List[Path]:
    return [p for p in site.glob("*.dist-info")
            if normalize(p.name[:-len(".dist-info")].rsplit("-", 1)[0]) == normalize(project)
            ] if site.is_dir() else []


def _remove(site: Path, info: Path) -> None:
    """Remove an installed distribution: the files its RECORD lists under site."""
    try:
        with open(info / "RECORD", newline="") as fh:
            listed = [row[0] for row in csv.reader(fh) if row]
    except OSError:
        listed = []
    folders = set()
    for name in listed:
        target = (site / name).resolve()
        if site.resolve() in target.parents and target.is_file():
            target.unlink()
            folders.add(target.parent)
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        while folder != site.resolve() and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
            folder = folder.parent
    shutil.rmtree(info, ignore_errors=True)


def _script(module: str, function: str, python: str) -> str:
    return ("#!%s\nimport sys\nfrom %s import %s\nif __name__ == '__main__':\n"
            "    sys.exit(%s())\n" % (python, module, function.split(".")[0], function))


def _info_name(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as archive:
        names = {n.split("/")[0] for n in archive.namelist() if n.endswith(".dist-info/METADATA")}
    if len(names) != 1:
        raise WheelError("%s holds no single dist-info folder: not a wheel" % wheel.name)
    return names.pop()


def is_installed(wheel: Path, site: Path) -> bool:
    """Whether this exact wheel (by its sha256) is the installed version of its project."""
    info_name = _info_name(wheel)
    present = _installed(site, parse_name(wheel)[0])
    marker = site / info_name / MARKER
    return ([p.name for p in present] == [info_name] and marker.is_file()
            and marker.read_text().strip() == hashlib.sha256(wheel.read_bytes()).hexdigest())


def install_one(wheel: Path, site: Path, scripts: Optional[Path] = None,
                python: str = sys.executable) -> bool:
    """Install one wheel into site; False when this exact wheel is installed already."""
    project, version, _ = parse_name(wheel)
    check_fits(wheel)
    if is_installed(wheel, site):
        return False
    info_name = _info_name(wheel)
    present = _installed(site, project)
    marker = site / info_name / MARKER
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    for info in present:
        _remove(site, info)
    site.mkdir(parents=True, exist_ok=True)
    rows = []
    with zipfile.ZipFile(wheel) as archive:
        data_prefix = "%s-%s.data/" % (project, version)
        for member in archive.infolist():
            name = member.filename
            if member.is_dir() or name.startswith("/") or ".." in name.split("/"):
                continue
            if name.startswith(data_prefix):
                kind, _, rest = name[len(data_prefix):].partition("/")
                if kind not in ("purelib", "platlib") or not rest:
                    continue  # scripts, headers, data: converge's nodes need none
                name = rest
            payload = archive.read(member)
            target = site / name
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=str(target.parent), prefix=".converge-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(payload)
            os.chmod(temp, 0o755 if (member.external_attr >> 16) & 0o111 else 0o644)
            os.replace(temp, target)
            rows.append((name, _record_hash(payload), str(len(payload))))
    info = site / info_name
    entry_points = info / "entry_points.txt"
    if scripts is not None and entry_points.is_file():
        import configparser

        parser = configparser.ConfigParser(interpolation=None)
        parser.read_string(entry_points.read_text())
        if parser.has_section("console_scripts"):
            scripts.mkdir(parents=True, exist_ok=True)
            for command, entry in parser.items("console_scripts"):
                module, _, function = entry.partition(":")
                path = scripts / command
                path.write_text(_script(module.strip(), function.strip(), python))
                path.chmod(0o755)
                rows.append((os.path.relpath(str(path), str(site)), "", ""))
    (info / "INSTALLER").write_text("converge\n")
    with open(info / "RECORD", "w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(
            rows + [(info_name + "/INSTALLER", "", ""), (info_name + "/RECORD", "", ""),
                    (info_name + "/" + MARKER, "", "")])
    marker.write_text(digest + "\n")  # last: an interrupted install is done again
    return True


def check_fits(wheel: Path) -> None:
    """WheelError unless one of the wheel's tags runs on this python3."""
    if not any(_tag_fits(t) for t in _expand(parse_name(wheel)[2])):
        raise WheelError("%s does not run on this python3 (Python %d.%d, %s): build the "
                         "wheels on a controller with the nodes' Python version and machine"
                         % (wheel.name, sys.version_info[0], sys.version_info[1],
                            os.uname().machine))


def _expand(tags: str) -> List[str]:
    pythons, abis, platforms = tags.split("-")
    return ["%s-%s-%s" % (p, a, s) for p in pythons.split(".") for a in abis.split(".")
            for s in platforms.split(".")]


def site_paths() -> Tuple[Path, Path]:
    """Where this python3 installs local packages, and their commands."""
    return Path(sysconfig.get_path("purelib")), Path(sysconfig.get_path("scripts"))


def install(folder: Path, site: Optional[Path] = None,
            scripts: Optional[Path] = None) -> Dict[str, bool]:
    """Install every wheel in folder for this python3: {wheel name: changed}."""
    wheels = sorted(folder.glob("*.whl"))
    projects = [parse_name(w)[0] for w in wheels]
    twice = sorted({p for p in projects if projects.count(p) > 1})
    if twice:
        raise WheelError("%s holds more than one wheel of %s: keep one version of each"
                         % (folder, ", ".join(twice)))
    if normalize(DIST) not in projects:
        raise WheelError("%s holds no wheel of %s: python3 -m converge.wheels build "
                         "makes them on the controller" % (folder, DIST))
    for wheel in wheels:
        check_fits(wheel)  # all of them before any is installed
    default_site, default_scripts = site_paths()
    site = site or default_site
    scripts = scripts or (default_scripts if site == default_site else None)
    return {w.name: install_one(w, site, scripts) for w in wheels}


def main(argv: Optional[List[str]] = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python3 -m converge.wheels",
                                     description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    made = commands.add_parser("build", help="write wheels of converge and what it needs")
    made.add_argument("folder", type=Path)
    made.add_argument("--extra", action="append", default=[],
                      help="also an extra's dependencies (postgresql: the run store)")
    put = commands.add_parser("install", help="install the wheels of a folder here")
    check = commands.add_parser("check", help="exit 0 when every wheel of a folder is "
                                "installed here, 1 when one is not")
    for command in (put, check):
        command.add_argument("folder", type=Path)
        command.add_argument("--target", type=Path,
                             help="into this folder instead of site-packages")
    args = parser.parse_args(argv)
    if args.command == "check":
        site = args.target or site_paths()[0]
        missing = [w.name for w in sorted(args.folder.glob("*.whl"))
                   if not is_installed(w, site)]
        for name in missing:
            print("not installed: %s" % name)
        return 1 if missing or not any(args.folder.glob("*.whl")) else 0
    try:
        if args.command == "build":
            for path in build(args.folder, args.extra):
                print("built %s" % path)
        else:
            for name, changed in install(args.folder, args.target).items():
                print("%s %s" % ("installed" if changed else "up to date:", name))
    except (WheelError, OSError, zipfile.BadZipFile) as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
