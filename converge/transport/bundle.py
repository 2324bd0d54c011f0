"""The agent bundle and the loader that brings it to life on a target.

The bundle is a zip of the standard-library-only half of converge (agent/,
resources/, plan.py, errors.py, context.py, _version.py, and a small
``__init__``), built deterministically so its SHA-256 names it. The loader is a
short function run with ``python3 -I -S -c``; the trip over one SSH channel::

    controller                                   target (python3 -c LOADER)
    exec "python3 -I -S -c LOADER"  ───────────▶
    request line (plan, mode)       ───────────▶  (sent at once, not awaited)
                                    ◀───────────  CONVERGE/1 <sha256> ready|need py=3.11.2
    if need: "<size>\\n" + zip bytes ─────────▶  verify hash, unpack into the cache
                                    ◀───────────  {"event": ...} one line per resource
                                    ◀───────────  {"done": true, ...}

The agent is cached unpacked (so Python can keep its bytecode) under
``/var/lib/converge/agent/agent-<sha256>`` for root, ``~/.cache/converge/`` for
others; a run that finds it costs that one command and no extra round trip. The
loader trusts the cache only in folders no other user can write, and only when
its files hash to :func:`tree_digest`, which the controller puts in the command
(once verified, their stat is recorded and compared instead: see :func:`loader`).
The controller keeps what it builds (zip, tree digest, loader text) in a cache of
its own, one entry per state of the sources (:func:`_cached`; docs/ssh.md).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import sys
from functools import lru_cache
from typing import IO, Dict, List, Optional, Tuple  # noqa: F401 - IO: the loader's type comment

PROTOCOL = 1
HANDSHAKE = "CONVERGE/%d" % PROTOCOL
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULES = ("_version.py", "errors.py", "context.py", "plan.py")
PACKAGES = ("agent", "resources")
INIT = ('"""converge agent bundle: the target half of converge (standard library '
        'only)."""\n\nfrom ._version import __version__ as __version__\n')
ENTRY = "converge.agent.remote"
EPOCH = (1980, 1, 1, 0, 0, 0)


def loader(digest, stdin, stdout, base=None, tree=""):  # type: (str, IO[bytes], IO[bytes], Optional[str], str) -> int
    """Find (or receive) the agent ``digest`` in the cache, then run its entry point.

    The cache is used only when every folder from / down to it is root's or ours
    and writable by no one else (else: an error, nothing runs), and when its files
    hash to ``tree`` (see :func:`tree_digest`; else it is unpacked again). Once
    they did, and were all last changed over 2 s before (so that a later write
    moves a ctime: timestamps are coarse), ``.verified-<digest>`` beside the cache
    (ours, 0600) records every file's and folder's (device, inode, size, mtime,
    ctime, mode); a run that finds the same stats hashes nothing. No one can set a
    ctime back (a write, chmod, rename or utime moves it; only a clock set back
    could), so a changed file is still caught, as the bytecode in ``__pycache__``
    is by its source's stat. A cached
    agent is imported right after the handshake, while the request is still on its
    way (the controller compiling the recipe meanwhile: see SSHTransport.warm). Runs on
    the target, from its source text: Python 3.8, standard library only,
    everything imported inside.
    """
    import os
    import stat
    import sys
    import time

    if base is None:
        home = os.path.expanduser("~")
        base = "/var/lib/converge/agent" if os.geteuid() == 0 else \
            os.path.join(home, ".cache", "converge")
    target = os.path.join(base, "agent-" + digest)
    stamp = os.path.join(base, ".verified-" + digest)
    me = os.geteuid()

    def unsafe(path):  # type: (str) -> str
        path = os.path.realpath(path)
        while True:
            if os.path.lexists(path):
                st = os.stat(path)
                sticky = st.st_mode & stat.S_ISVTX and path != os.path.realpath(base)
                if st.st_uid not in (0, me) or st.st_mode & 0o022 and not sticky:
                    return "%s (owner %d, mode %04o)" % (path, st.st_uid, st.st_mode & 0o7777)
            if path == os.path.dirname(path):
                return ""
            path = os.path.dirname(path)

    def intact():  # type: () -> bool
        found = []
        listing = []
        for folder, dirs, files in os.walk(target):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            for name in dirs + files:
                st = os.lstat(os.path.join(folder, name))
                if st.st_uid != me or st.st_mode & 0o022 or stat.S_ISLNK(st.st_mode):
                    return False
                listing.append((os.path.relpath(os.path.join(folder, name), target), st))
        seen = tree + "\n" + "".join(sorted("%s\0%d %d %d %d %d %o\n" % (
            path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode)
            for path, st in listing))
        try:
            fd = os.open(stamp, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as fh:
                st = os.fstat(fd)
                if st.st_uid == me and not st.st_mode & 0o022 and fh.read() == seen.encode():
                    return True
        except OSError:
            pass
        import hashlib

        for path, st in listing:
            if stat.S_ISREG(st.st_mode):
                with open(os.path.join(target, path), "rb") as fh:
                    found.append("%s\0%s\n" % (path, hashlib.sha256(fh.read()).hexdigest()))
        if hashlib.sha256("".join(sorted(found)).encode()).hexdigest() != tree:
            return False
        if max([st.st_ctime for _, st in listing] or [0]) < time.time() - 2:
            try:
                temp = "%s.%d" % (stamp, os.getpid())
                with os.fdopen(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC |
                                       os.O_NOFOLLOW, 0o600), "wb") as fh:
                    fh.write(seen.encode())
                os.rename(temp, stamp)
            except OSError:
                pass
        return True

    problem = unsafe(base)
    ready = bool(problem) or os.path.isdir(target) and intact()
    major, minor, micro = sys.version_info[:3]
    stdout.write(("CONVERGE/1 %s %s py=%d.%d.%d\n" % (digest, "ready" if ready else "need",
                                                     major, minor, micro)).encode())
    stdout.flush()
    if ready and not problem:  # import the agent while the request is on its way
        sys.path.insert(0, target)
        from converge.agent.remote import main
    request = stdin.readline()
    if not request:  # no request came: the controller (or the connection) is gone
        return 0
    if problem:
        import json

        stdout.write(json.dumps({"error": "the agent cache is writable by another user: %s; "
                                 "converge runs no code from it (make every folder of that "
                                 "path root's and not group- or world-writable)" % problem
                                 }).encode() + b"\n")
        return 3
    if not ready:
        import hashlib
        import io
        import shutil
        import tempfile
        import zipfile

        size = int(stdin.readline())
        data = stdin.read(size)
        if hashlib.sha256(data).hexdigest() != digest:
            stdout.write(b'{"error": "agent bundle damaged in transit (hash mismatch)"}\n')
            return 3
        os.makedirs(base, mode=0o700, exist_ok=True)
        mask = os.umask(0o077)
        unpack = tempfile.mkdtemp(prefix=".unpack-", dir=base)
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            archive.extractall(unpack)
        os.umask(mask)
        if os.path.lexists(target) and not intact():  # damaged: set it aside, replace it
            stale = tempfile.mkdtemp(prefix=".stale-", dir=base)
            os.rename(target, os.path.join(stale, "old"))
            if os.path.lexists(stamp):
                os.unlink(stamp)
            shutil.rmtree(stale, ignore_errors=True)
            stdout.write(b'{"notice": "the cached agent did not match its hash: replaced"}\n')
        try:
            os.rename(unpack, target)
        except OSError:  # another run unpacked it first
            shutil.rmtree(unpack, ignore_errors=True)
        sys.path.insert(0, target)
        from converge.agent.remote import main
    return main(request, stdout)


def loader_source(digest: str, base: Optional[str] = None) -> str:
    """The text handed to ``python3 -c``: the loader and a call to it (``base``: a
    cache folder other than the default, for tests), then an exit that skips
    Python's shutdown (``os._exit``, see _EXIT). Under test coverage only, the
    loader that measures itself and the agent (:func:`_measured_loader`), which
    exits normally."""
    measured = _measured_loader()
    call = "loader(%r, sys.stdin.buffer, sys.stdout.buffer, %r, %r)" % (digest, base, tree_digest())
    if measured:  # coverage saves its data at exit
        return "%s\nimport sys\nsys.exit(%s)\n" % (measured, call)
    return "%s\nimport os, sys\ncode = %s\n%s" % (_loader_text(), call, _EXIT)


# The agent's last act: its answers are flushed as they are written, every file it
# wrote is closed, every command it ran waited for. Python's own shutdown (freeing
# its ~90 modules, one by one) cost every run about 5 ms of CPU, for nothing. (A
# controller gone: the flush fails, the exit status stays the agent's.)
_EXIT = "try:\n    sys.stdout.flush()\n    sys.stderr.flush()\nfinally:\n    os._exit(code)\n"


def _measured_loader() -> str:
    """'' unless this process is measured by a test run (coverage's ``patch =
    ["subprocess"]`` sets COVERAGE_PROCESS_CONFIG, never set in normal use). Then:
    a loader that first starts coverage with that config, from the controller's
    coverage package (a lab node built from this machine's root sees it; elsewhere
    the import fails and nothing is measured), its data written to
    COVERAGE_NODE_DATA where a lab node has it (the lab collects it there:
    converge/lab/_coverage.py), else beside the controller's; the loader itself is
    compiled from this file's own lines. The data file gets the name the lab
    collects only once coverage saved it whole (a test may kill an agent while it
    saves). argv stays ``python3 -I -S -c TEXT``, and the bundle and its cache key
    are the same (the loader's text is in neither)."""
    text = os.environ.get("COVERAGE_PROCESS_CONFIG", "")
    module = getattr(sys.modules.get("coverage"), "__file__", None)
    if not text or not module:
        return ""
    config = json.loads(base64.b64decode(text[len(":data:"):] if text.startswith(":data:")
                                         else text))
    # the agent's converge: the package wherever its cache is; no subprocess patching
    config.update(source_pkgs=["converge"], patch=[])
    import inspect

    lines, first = inspect.getsourcelines(loader)
    folder = os.path.dirname(os.path.dirname(os.path.abspath(module)))
    return _MEASURED % (folder, config, COVERAGE_NODE_DATA, COVERAGE_NODE_DATA,
                        folder, "\n" * (first - 1) + "".join(lines), os.path.abspath(__file__))


COVERAGE_NODE_DATA = "/tmp/converge-coverage"
_MEASURED = """import sys
sys.path.append(%r)
try:
    import atexit, base64, json, os
    import coverage
    config = %r
    folder, name = os.path.split(config["data_file"])
    if os.path.isdir(%r):
        folder = %r
    config["data_file"] = os.path.join(folder, "part" + name)

    def saved():
        for found in os.listdir(folder):
            if found.startswith("part" + name + ".") and ".pid%%d." %% os.getpid() in found:
                os.rename(os.path.join(folder, found), os.path.join(folder, found[4:]))

    atexit.register(saved)
    os.environ["COVERAGE_PROCESS_CONFIG"] = base64.b64encode(json.dumps(config).encode()).decode()
    coverage.process_startup()
except ImportError:
    pass
finally:
    os.environ.pop("COVERAGE_PROCESS_CONFIG", None)
    sys.path.remove(%r)
exec(compile(%r, %r, "exec"))"""


@lru_cache(maxsize=1)
def _loader_text() -> str:
    """The loader's source without its docstring and comments (it travels in argv)."""
    return str(_cached()["loader"])


def _make_loader_text() -> str:
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(loader))
    function = tree.body[0]
    assert isinstance(function, ast.FunctionDef)
    if isinstance(function.body[0], ast.Expr) and isinstance(function.body[0].value, ast.Constant):
        function.body = function.body[1:]
    return ast.unparse(tree)


@lru_cache(maxsize=1)
def tree_digest() -> str:
    """What the loader checks a cached agent against: the SHA-256 of the sorted
    lines ``<path>\\0<sha256 of its bytes>\\n``, one per file of the unpacked bundle
    (``__pycache__`` aside). A file changed, missing or added, a symlink, or a
    file or folder writable by another user makes the cache be unpacked again."""
    return str(_cached()["tree"])


def _tree_digest(files: List[Tuple[str, bytes]]) -> str:
    lines = sorted("%s\0%s\n" % (name, hashlib.sha256(data).hexdigest()) for name, data in files)
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def _sources(package_dir: str = PACKAGE_DIR) -> List[Tuple[str, str]]:
    """(archive name, path) of every source file in the bundle, sorted."""
    sources = [("converge/" + name, os.path.join(package_dir, name)) for name in MODULES]
    for package in PACKAGES:
        folder = os.path.join(package_dir, package)
        sources += [("converge/%s/%s" % (package, name), os.path.join(folder, name))
                    for name in os.listdir(folder) if name.endswith(".py")]
    return sorted(sources)


def _files() -> List[Tuple[str, bytes]]:
    """(archive name, bytes) of every file in the bundle, sorted."""
    files = [("converge/__init__.py", INIT.encode())]
    for name, path in _sources():
        with open(path, "rb") as fh:
            files.append((name, fh.read()))
    return sorted(files)


@lru_cache(maxsize=1)
def build() -> Tuple[bytes, str]:
    """The bundle's zip bytes and their SHA-256 (the same for the same sources)."""
    data = _cached()["zip"]
    assert isinstance(data, bytes)
    return data, hashlib.sha256(data).hexdigest()


def _zip(files: List[Tuple[str, bytes]]) -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files:
            info = zipfile.ZipInfo(name, EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return buffer.getvalue()


# -- the controller's cache of the built bundle --------------------------------------------
#
# Deflating the bundle (~20 ms of CPU), hashing its files and parsing the loader's
# source (~10 ms) cost every run, for the same bytes each time. What they give is kept
# in one file per state of the sources, named after the (path, size, mtime, ctime,
# inode) of each source file and of this module, the Python and zlib versions: a
# changed, added or removed file, or another Python, names another entry. The entry is
# read only from a folder of this user's (its home's, not $HOME's, so sudo does not
# read the invoking user's) that no one else can write, as the loader trusts the
# target's cache; a damaged one (the zip's SHA-256 is in it) is built again. Any
# failure of the cache: built in memory.

CACHE_KEEP = 8  # entries kept (several checkouts or environments may take turns)


@lru_cache(maxsize=1)
def _cached() -> Dict[str, object]:
    """{"zip": bytes, "tree": tree digest, "loader": loader text}: from the cache when
    the sources are those it was built from, else built (and cached)."""
    folder = key = None
    try:
        folder, key = _cache_dir(), _cache_key()
        found = _cache_read(os.path.join(folder, key + ".bundle")) if folder else None
        if found is not None:
            return found
    except OSError:
        pass
    files = _files()
    built: Dict[str, object] = {"zip": _zip(files), "tree": _tree_digest(files),
                                "loader": _make_loader_text()}
    if folder and key:
        try:
            if _cache_key() == key:  # (no source changed while it was read)
                _cache_write(folder, key, built)
        except OSError:
            pass
    return built


def _cache_key(package_dir: str = PACKAGE_DIR) -> str:
    import zlib

    parts = [sys.version, zlib.ZLIB_RUNTIME_VERSION]
    for name, path in [("", os.path.abspath(__file__))] + _sources(package_dir):
        st = os.stat(path)
        parts.append("%s %s %d %d %d %d" % (name, path, st.st_size, st.st_mtime_ns,
                                            st.st_ctime_ns, st.st_ino))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _cache_dir(home: Optional[str] = None) -> Optional[str]:
    """~/.cache/converge/bundle of this user, made if missing (0700); None when it, or a
    folder above it, is another user's or writable by others (sticky /tmp aside)."""
    me = os.geteuid()
    if home is None:
        import pwd

        home = pwd.getpwuid(me).pw_dir
    folder = os.path.join(home, ".cache", "converge", "bundle")
    if not os.path.isdir(folder):
        os.makedirs(os.path.dirname(folder), mode=0o700, exist_ok=True)
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:
            pass
    path = folder
    while True:
        st = os.lstat(path)
        sticky = st.st_mode & stat.S_ISVTX and path != folder
        if st.st_uid not in (0, me) or st.st_mode & 0o022 and not sticky or \
                path == folder and (st.st_uid != me or not stat.S_ISDIR(st.st_mode)):
            return None
        if path == os.path.dirname(path):
            return folder
        path = os.path.dirname(path)


def _cache_read(path: str) -> Optional[Dict[str, object]]:
    """An entry: a JSON line (the zip's SHA-256, the tree digest, the loader's text),
    then the zip; None when missing, not this user's alone, or damaged."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:  # missing, or a symlink
        return None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if st.st_uid != os.geteuid() or st.st_mode & 0o022 or not stat.S_ISREG(st.st_mode):
            return None
        line, data = fh.readline(), fh.read()
    try:
        header = json.loads(line)
        if hashlib.sha256(data).hexdigest() == header["sha256"]:
            return {"zip": data, "tree": str(header["tree"]), "loader": str(header["loader"])}
    except (ValueError, TypeError, KeyError):
        pass
    return None


def _cache_write(folder: str, key: str, built: Dict[str, object]) -> None:
    """Write an entry atomically, then drop all but the CACHE_KEEP newest."""
    import tempfile

    data = built["zip"]
    assert isinstance(data, bytes)
    header = {"sha256": hashlib.sha256(data).hexdigest(), "tree": built["tree"],
              "loader": built["loader"]}
    fd, temp = tempfile.mkstemp(prefix=".%s." % key, dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(json.dumps(header).encode() + b"\n" + data)
        os.replace(temp, os.path.join(folder, key + ".bundle"))
    except BaseException:
        os.unlink(temp)
        raise
    entries = []
    for name in os.listdir(folder):
        if name.endswith(".bundle"):
            try:
                entries.append((os.lstat(os.path.join(folder, name)).st_mtime_ns, name))
            except OSError:
                pass
    for _, name in sorted(entries, reverse=True)[CACHE_KEEP:]:
        try:
            os.unlink(os.path.join(folder, name))
        except OSError:
            pass


def parse_handshake(line: str) -> Tuple[str, bool, str]:
    """``CONVERGE/1 <digest> ready|need py=X.Y.Z`` → (digest, needs bundle, python)."""
    parts = line.split()
    if len(parts) != 4 or parts[0] != HANDSHAKE or parts[2] not in ("ready", "need"):
        raise ValueError("unexpected handshake %r" % line[:120])
    return parts[1], parts[2] == "need", parts[3].partition("=")[2]
