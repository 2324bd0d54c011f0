"""All access a resource has to the machine it converges.

Resources never open system paths or start processes themselves: they go through a
``System``. A System rooted at a directory maps every absolute path under it, which
is how unit tests converge a fake ``/etc`` in a temporary directory.
"""

from __future__ import annotations

import errno
import os
import stat as stat_mod
from contextlib import contextmanager
from typing import (
    Any,
    Callable,
    Dict,
    Iterator,
    List,
    Mapping,
    NamedTuple,
    Optional,
    Sequence,
    Set,
    Tuple,
)

from .interrupt import as_interrupted, held
from .paths import Place, UnsafePath, Walker

#: Seconds a command stopped by SIGINT/SIGTERM gets to finish before SIGKILL.
STOP_GRACE = 5.0
# Temp files of write_atomic: ".NAME.converge-PID-RANDOM.tmp", NAME cut to fit NAME_MAX.
TEMP_MARK = ".converge-"
TEMP_NAME_KEEP = 180
STATE_DIR = "/var/lib/converge"


def host_state_dir() -> str:
    """The state directory of this machine, the one choice for the agent's runs on
    / (journals, backups, run lock) and the controller's run store:
    ``CONVERGE_STATE_DIR`` when set; /var/lib/converge for root; else
    $XDG_STATE_HOME/converge, ~/.local/state/converge when that is unset."""
    override = os.environ.get("CONVERGE_STATE_DIR")
    if override:
        return os.path.abspath(override)
    if os.geteuid() == 0:
        return STATE_DIR
    xdg = os.environ.get("XDG_STATE_HOME", "")
    return os.path.join(xdg if os.path.isabs(xdg) else os.path.expanduser("~/.local/state"),
                        "converge")


def temp_writer(name: str) -> Optional[int]:
    """The pid of the process that wrote a write_atomic temp file of this name, or
    None when the name is not one."""
    if not (name.startswith(".") and name.endswith(".tmp")) or TEMP_MARK not in name:
        return None
    pid, _, rest = name[name.rindex(TEMP_MARK) + len(TEMP_MARK):-len(".tmp")].partition("-")
    return int(pid) if pid.isdigit() and rest else None


def _alive(pid: int) -> bool:
    """Whether a process with this pid exists (ours counts, as does one we may not
    signal)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


class RunResult(NamedTuple):
    """The outcome of one command."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def output(self) -> str:
        """Both streams, trimmed, for error messages."""
        return "\n".join(s.strip() for s in (self.stdout, self.stderr) if s.strip())


class System:
    """The machine, optionally seen through a root directory.

    Every path is reached through :class:`~converge.agent.paths.Walker`: a
    component at a time, links followed only when nobody but root could have
    placed them, and resolved inside the root (see paths.py). Methods that
    change a path act on the last component through its directory's file
    descriptor. ``real()`` gives a host path for the few uses that need a
    string (a program's argument); it follows nothing and checks nothing.
    """

    def __init__(self, root: str = "/", cwd: Optional[str] = None,
                 mounts: Optional[Mapping[str, str]] = None) -> None:
        """``mounts`` maps a target directory to a host directory seen there, as a
        bind mount would show it (a test gives a rooted System the host's /proc);
        paths under it are walked inside that host directory."""
        self.root = os.path.abspath(root)
        self.cwd = cwd or os.getcwd()
        self._tables: Dict[str, Dict[str, int]] = {}
        self._unsynced: Set[str] = set()  # directories renamed into since the last sync()
        self._swept: Set[Tuple[int, int]] = set()  # directories cleared of dead writers' temps
        self.walker = Walker(self.root, self.user_name)
        self._mounts = sorted(((t.rstrip("/"), Walker(os.path.abspath(h), self.user_name))
                               for t, h in (mounts or {}).items()), reverse=True)
        self._groups: Set[int] = set()  # process groups of the commands run_long runs
        self._stopped = False  # stop_commands was called: start no more
        self._scans: Dict[str, Any] = {}  # see scans()

    # -- paths ---------------------------------------------------------------

    def absolute(self, path: str) -> str:
        """A target path made absolute (relative paths are from ``cwd``)."""
        return os.path.normpath(os.path.join(self.cwd, path))

    def real(self, path: str) -> str:
        """The host path for a target path (relative paths are from ``cwd``), as a
        string: no link is resolved or checked. Not for changing anything."""
        path = self.absolute(path)
        if self.root == "/":
            return path
        return os.path.join(self.root, path.lstrip("/"))

    @contextmanager
    def at(self, path: str, follow: bool = False) -> Iterator[Place]:
        """The walked :class:`Place` of a target path, its directory open for
        the ``with`` block (see Walker.walk for ``follow``)."""
        target, walker, seen_at = self.absolute(path), self.walker, ""
        for prefix, mounted in self._mounts:
            if target == prefix or target.startswith(prefix + "/"):
                target, walker, seen_at = target[len(prefix):] or "/", mounted, prefix
                break
        place = walker.walk(target, follow)
        if seen_at:
            place = place._replace(directory=(seen_at + place.directory).rstrip("/"))
        try:
            yield place
        finally:
            os.close(place.dirfd)

    def state_dir(self) -> str:
        """Where journals, backups and the run lock live, as a target path:
        /var/lib/converge under the root, for a rooted System; on /,
        :func:`host_state_dir`."""
        return host_state_dir() if self.root == "/" else STATE_DIR

    def stat(self, path: str, follow: bool = False) -> Optional[os.stat_result]:
        """lstat of the path (stat through a trusted link with ``follow``), or
        None when it does not exist."""
        try:
            with self.at(path, follow) as place:
                return os.stat(place.name, dir_fd=place.dirfd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None

    def exists(self, path: str) -> bool:
        return self.stat(path) is not None

    def is_dir(self, path: str) -> bool:
        """Whether the path is a directory (through a trusted link too)."""
        st = self.stat(path, follow=True)
        return st is not None and stat_mod.S_ISDIR(st.st_mode)

    def open(self, path: str, flags: int, mode: int = 0o600, follow: bool = True) -> int:
        """A file descriptor on the path, opened with ``O_NOFOLLOW`` in its walked
        directory (a trusted link before it followed when ``follow``)."""
        try:
            with self.at(path, follow) as place:
                try:
                    return os.open(place.name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode,
                                   dir_fd=place.dirfd)
                except OSError as exc:
                    if exc.errno != errno.ELOOP:
                        raise
                    target = os.readlink(place.name, dir_fd=place.dirfd)
                raise UnsafePath("refusing to open %s: it is a symbolic link (to %s)"
                                 % (self.absolute(path), target),
                                 hint="remove the link; converge makes the file itself")
        except OSError as exc:
            if not isinstance(exc, UnsafePath):
                exc.filename, exc.filename2 = path, None
            raise

    def read_bytes(self, path: str) -> Optional[bytes]:
        """The file's content (through a trusted link), or None when it does not
        exist."""
        try:
            fd = self.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            chunks: List[bytes] = []
            while True:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    return b"".join(chunks)
                chunks.append(chunk)
        finally:
            os.close(fd)

    def read_text(self, path: str) -> Optional[str]:
        data = self.read_bytes(path)
        return None if data is None else data.decode("utf-8", "surrogateescape")

    def read_in_each(self, path: str, names: Sequence[str], leaf: str
                     ) -> Dict[str, Optional[bytes]]:
        """``path/NAME/leaf`` for each of ``names`` (``/proc``, pids, ``cmdline``):
        ``path`` walked once, then each NAME and its leaf opened with ``O_NOFOLLOW``
        from its descriptor. A name that cannot be read (gone, a link, not ours)
        maps to None."""
        out: Dict[str, Optional[bytes]] = {name: None for name in names}
        try:
            top = self.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except (FileNotFoundError, NotADirectoryError):
            return out
        try:
            for name in names:
                if "/" in name or name in ("", ".", ".."):
                    continue
                try:
                    folder = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
                                     | os.O_CLOEXEC, dir_fd=top)
                except OSError:
                    continue
                try:
                    fd = os.open(leaf, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                                 dir_fd=folder)
                    try:
                        out[name] = os.read(fd, 1 << 20)
                    finally:
                        os.close(fd)
                except OSError:
                    pass
                finally:
                    os.close(folder)
        finally:
            os.close(top)
        return out

    def listdir(self, path: str) -> List[str]:
        try:
            fd = self.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except (FileNotFoundError, NotADirectoryError):
            return []
        try:
            return sorted(os.listdir(fd))
        finally:
            os.close(fd)

    # -- changes ---------------------------------------------------------------

    def write_atomic(
        self,
        path: str,
        data: bytes,
        mode: Optional[int] = None,
        uid: int = -1,
        gid: int = -1,
        durable: bool = True,
        follow: bool = False,
    ) -> None:
        """Replace ``path`` whole: temp file beside it, fsync, rename; the directory
        is fsynced by :meth:`sync` at the end of the run. ``durable=False`` skips
        both fsyncs: still whole, old or new, after a crash, but a power cut may
        keep the old (for a record nothing depends on).

        A crash at any point leaves either the old file or the new one. Owner,
        then mode (so setuid and setgid bits survive), are set on the temp file
        before the rename, so the new content is never visible with the wrong
        permissions; with no ``mode``, the mode of the file replaced (0644 for a
        new one, or for a link, never the link's own 0777). A link at ``path`` is
        replaced by the file; with ``follow``, a trusted link is written through
        instead (what it points to is replaced, the link stays) and an untrusted
        or dangling one is refused (UnsafePath). The temp file is named
        ``.NAME.converge-PID-RANDOM.tmp``: when the writer is killed (kill -9, power
        cut) it stays behind, and the next write into that directory by another
        process removes it (see :meth:`sweep_temps`). An OSError (a full disk:
        ENOSPC) names ``path``.
        """
        with self.at(path, follow) as place:
            self._write_at(place, path, data, mode, uid, gid, durable)
        if durable:
            self._unsynced.add(place.directory)

    def _write_at(self, place: Place, path: str, data: bytes, mode: Optional[int], uid: int,
                  gid: int, durable: bool) -> None:
        dirfd, name = place.dirfd, place.name
        self._sweep(dirfd)
        prefix = ".%s%s%d-" % (name[:TEMP_NAME_KEEP], TEMP_MARK, os.getpid())
        fd = -1
        while fd == -1:  # tempfile.mkstemp, without importing tempfile (random, shutil...)
            tmp = "%s%s.tmp" % (prefix, os.urandom(6).hex())
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                             | os.O_CLOEXEC, 0o600, dir_fd=dirfd)
            except FileExistsError:
                continue
            except OSError as exc:
                exc.filename, exc.filename2 = path, None
                raise
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if mode is None:
                try:
                    old = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
                except FileNotFoundError:
                    old = None
                mode = (stat_mod.S_IMODE(old.st_mode)
                        if old is not None and stat_mod.S_ISREG(old.st_mode) else 0o644)
            if uid != -1 or gid != -1:
                os.fchown(fd, uid, gid)
            os.fchmod(fd, mode)
            if durable:
                os.fsync(fd)
            os.close(fd)
            fd = -1
            os.rename(tmp, name, src_dir_fd=dirfd, dst_dir_fd=dirfd)
        except BaseException as exc:
            if fd != -1:
                os.close(fd)
            try:
                os.unlink(tmp, dir_fd=dirfd)
            except OSError:
                pass
            if isinstance(exc, OSError):
                exc.filename, exc.filename2 = path, None
            raise

    def sync(self) -> None:
        """Make the renames of :meth:`write_atomic` durable: one fsync per directory
        written into, at the end of a run, rather than one per file. Each file's
        content is on disk before its rename either way, so a power cut before this
        leaves every file whole, old or new; this is what makes "new" stick."""
        for directory in sorted(self._unsynced):
            try:
                fd = self.open(directory, os.O_RDONLY | os.O_DIRECTORY)
            except OSError:
                continue
            try:
                os.fsync(fd)
            except OSError:
                pass
            finally:
                os.close(fd)
        self._unsynced.clear()

    def sweep_temps(self, path: str) -> None:
        """Remove the temp files of writers that died in the directory ``path``:
        write_atomic does it before its first write into a directory; call it for
        a directory no later write may visit (a run's own backup folder)."""
        try:
            fd = self.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return
        try:
            self._sweep(fd)
        finally:
            os.close(fd)

    def _sweep(self, dirfd: int) -> None:
        """Remove the temp files of dead writers from an open directory, once per
        directory for this System: a ``.NAME.converge-PID-RANDOM.tmp`` whose PID
        is not a live process. A live writer's temp file is never touched."""
        st = os.fstat(dirfd)
        if (st.st_dev, st.st_ino) in self._swept:
            return
        self._swept.add((st.st_dev, st.st_ino))
        try:
            fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dirfd)
        except OSError:
            return
        try:
            names = os.listdir(fd)
        finally:
            os.close(fd)
        for name in names:
            pid = temp_writer(name)
            if pid is not None and not _alive(pid):
                try:
                    os.unlink(name, dir_fd=dirfd)
                except OSError:
                    pass

    def write_in_place(self, path: str, data: bytes) -> None:
        """Write into an existing file without a temp file or rename: for /proc/sys
        and /proc/PID files, where the kernel checks the write. The kernel's refusal
        is an OSError with its errno (EINVAL, EACCES, EPERM)."""
        fd = self.open(path, os.O_WRONLY | os.O_TRUNC)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    def mkdir(self, path: str, mode: int = 0o755, uid: int = -1, gid: int = -1) -> None:
        """Create a directory; its owner, then its mode (mkdir's own is filtered by
        the umask, and a chown may clear setgid), set on the new directory."""
        with self.at(path) as place:
            try:
                os.mkdir(place.name, 0o700, dir_fd=place.dirfd)
            except OSError as exc:
                exc.filename, exc.filename2 = path, None
                raise
            fd = os.open(place.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
                         | os.O_CLOEXEC, dir_fd=place.dirfd)
        try:
            if uid != -1 or gid != -1:
                os.fchown(fd, uid, gid)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)

    def set_attributes(self, path: str, mode: Optional[int] = None, uid: int = -1,
                       gid: int = -1) -> None:
        """Owner and group, then mode (the order that keeps setuid and setgid),
        of a file or directory, through a trusted link; a link is never changed
        itself (UnsafePath for an untrusted one)."""
        fd = self.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
        try:
            if uid != -1 or gid != -1:
                os.fchown(fd, uid, gid)
            if mode is not None:
                os.fchmod(fd, mode)
        finally:
            os.close(fd)

    def chmod(self, path: str, mode: int) -> None:
        """The mode of the path itself: a link at ``path`` is not followed (Linux
        has no mode for a link: UnsafePath names it)."""
        fd = self.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY, follow=False)
        try:
            os.fchmod(fd, mode)
        finally:
            os.close(fd)

    def chown(self, path: str, uid: int = -1, gid: int = -1) -> None:
        """The owner of the path itself: a link at ``path`` gets a new owner, what
        it points to does not (lchown)."""
        with self.at(path) as place:
            try:
                os.chown(place.name, uid, gid, dir_fd=place.dirfd, follow_symlinks=False)
            except OSError as exc:
                exc.filename, exc.filename2 = path, None
                raise

    def remove(self, path: str) -> None:
        """Remove a file, or a link itself (never what it points to)."""
        with self.at(path) as place:
            try:
                os.unlink(place.name, dir_fd=place.dirfd)
            except OSError as exc:
                exc.filename, exc.filename2 = path, None
                raise

    def rmdir(self, path: str) -> None:
        with self.at(path) as place:
            try:
                os.rmdir(place.name, dir_fd=place.dirfd)
            except OSError as exc:
                exc.filename, exc.filename2 = path, None
                raise

    def rename(self, src: str, dst: str) -> None:
        with self.at(src) as old, self.at(dst) as new:
            os.rename(old.name, new.name, src_dir_fd=old.dirfd, dst_dir_fd=new.dirfd)

    def symlink(self, target: str, path: str) -> None:
        """Create the link ``path`` pointing at ``target`` (kept as given: a target
        path, as the machine will resolve it)."""
        with self.at(path) as place:
            os.symlink(target, place.name, dir_fd=place.dirfd)

    def link_atomic(self, target: str, path: str) -> None:
        """Make ``path`` a symbolic link to ``target``: the link is made beside it
        and renamed over what was there (a file or an older link), so the path is
        never missing. A directory at ``path`` is an error (EISDIR)."""
        with self.at(path) as place:
            tmp = _make_beside(place, lambda tmp: os.symlink(target, tmp, dir_fd=place.dirfd))
            _rename_over(place, tmp, path)
        self._unsynced.add(place.directory)

    def hard_link_atomic(self, target: str, path: str) -> None:
        """Make ``path`` a hard link to the file ``target`` (both reached through
        the walker, a link on the way to either never followed; a link at
        ``target`` itself is linked, not what it points to): made beside ``path``
        and renamed over what was there, so the path is never missing."""
        with self.at(target) as source, self.at(path) as place:
            try:
                tmp = _make_beside(place, lambda tmp: os.link(
                    source.name, tmp, src_dir_fd=source.dirfd, dst_dir_fd=place.dirfd,
                    follow_symlinks=False))
            except OSError as exc:
                exc.filename, exc.filename2 = target, None
                raise
            _rename_over(place, tmp, path)
            try:  # renaming onto a link to the same inode leaves both names
                os.unlink(tmp, dir_fd=place.dirfd)
            except FileNotFoundError:
                pass
        self._unsynced.add(place.directory)

    def readlink(self, path: str) -> Optional[str]:
        """Where a symbolic link points, or None when ``path`` is not a link."""
        try:
            with self.at(path) as place:
                return os.readlink(place.name, dir_fd=place.dirfd)
        except OSError:
            return None

    def rmtree(self, path: str) -> None:
        """Delete a directory with its contents, never following a link inside it
        (a link is removed, not what it points to); a link at ``path`` itself is
        refused, as shutil.rmtree does."""
        with self.at(path) as place:
            st = os.stat(place.name, dir_fd=place.dirfd, follow_symlinks=False)
            if not stat_mod.S_ISDIR(st.st_mode):
                raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
            _rmtree_at(place.dirfd, place.name)

    # -- users and groups ----------------------------------------------------------

    def _table(self, name: str) -> Dict[str, int]:
        """name → id from the rooted /etc/passwd or /etc/group, read once."""
        if name not in self._tables:
            table: Dict[str, int] = {}
            for line in (self.read_text("/etc/" + name) or "").splitlines():
                fields = line.split(":")
                if len(fields) >= 3 and fields[2].isdigit():
                    table.setdefault(fields[0], int(fields[2]))
            self._tables[name] = table
        return self._tables[name]

    def _to_id(self, name: str, table: str) -> Optional[int]:
        if name.isdigit():
            return int(name)
        if self.root == "/":
            try:
                return _host_db(table)[0](name)
            except KeyError:
                return None
        found = self._table(table).get(name)
        if found is None and name == "root":
            return 0  # root is 0 on every Linux tree, even one with no /etc/passwd yet
        return found

    def _to_name(self, number: int, table: str) -> str:
        if self.root == "/":
            try:
                return _host_db(table)[1](number)
            except KeyError:
                return str(number)
        for name, value in self._table(table).items():
            if value == number:
                return name
        return "root" if number == 0 else str(number)

    def accounts_where(self, table: str) -> str:
        """Where user (``passwd``) or group (``group``) names are looked up, for
        messages: this machine's database, or the tree's own file under a root."""
        if self.root == "/":
            return "on this machine"
        return "in %s" % self.real("/etc/" + table)

    def uid(self, user: str) -> Optional[int]:
        """The uid of a user name (or a numeric string), None when unknown."""
        return self._to_id(user, "passwd")

    def gid(self, group: str) -> Optional[int]:
        """The gid of a group name (or a numeric string), None when unknown."""
        return self._to_id(group, "group")

    def user_name(self, uid: int) -> str:
        """The name of a uid, or the number itself when it has none."""
        return self._to_name(uid, "passwd")

    def group_name(self, gid: int) -> str:
        """The name of a gid, or the number itself when it has none."""
        return self._to_name(gid, "group")

    # -- processes ------------------------------------------------------------------

    def scans(self) -> Dict[str, Any]:
        """Where resources keep what they read of the running processes (/proc's
        list of processes and their command lines, for oom_protect), so that one
        scan serves every resource of a run. Emptied whenever this System starts a
        command (:meth:`run`, :meth:`run_long`): a service or package started since
        may have started processes, and the next resource scans again."""
        return self._scans

    def run(
        self,
        argv: Sequence[str],
        input: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        cwd: Optional[str] = None,
        timeout: Optional[float] = None,
        user: Optional[str] = None,
        group: Optional[str] = None,
    ) -> RunResult:
        """Run an argument list (never a shell string) with ``LC_ALL=C``, as
        ``user`` (with ``group``, else the user's primary group) when given.

        A missing program is a result with returncode 127, as a shell reports it.
        """
        import subprocess  # here: a no-op run of file resources never starts a process

        self._scans.clear()
        full_env = dict(os.environ)
        full_env["LC_ALL"] = "C"
        if env:
            full_env.update(env)
        preexec = None
        if user is not None:
            try:
                preexec = self._become(user, group)
            except LookupError as exc:
                return RunResult(1, "", str(exc))
        try:
            proc = subprocess.run(  # noqa: S603 - argv list, no shell
                list(argv),
                input=input,
                stdin=None if input is not None else subprocess.DEVNULL,
                env=full_env,
                cwd=self.real(cwd) if cwd else None,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                universal_newlines=True,
                timeout=timeout,
                preexec_fn=preexec,
            )
        except FileNotFoundError:
            return RunResult(127, "", "%s: command not found" % argv[0])
        except subprocess.TimeoutExpired:
            return RunResult(124, "", "%s: timed out after %ss" % (argv[0], timeout))
        return RunResult(proc.returncode, proc.stdout, proc.stderr)

    def run_long(
        self,
        argv: Sequence[str],
        env: Optional[Mapping[str, str]] = None,
        cwd: Optional[str] = None,
        timeout: Optional[float] = None,
        user: Optional[str] = None,
        live: bool = False,
        group: Optional[str] = None,
    ) -> RunResult:
        """Run a user's command (execute): like :meth:`run`, but in its own process
        group, so a timeout kills the command with everything it started, and with
        ``live`` each line of output is also written to standard error as it comes
        (the terminal on a local run). Standard input is /dev/null."""
        import signal
        import subprocess
        import sys
        import threading

        if self._stopped:
            return RunResult(137, "", "%s: not run, the controller is gone" % argv[0])
        self._scans.clear()
        full_env = dict(os.environ)
        full_env["LC_ALL"] = "C"
        full_env.update(env or {})
        preexec = None
        if user is not None:
            try:
                preexec = self._become(user, group)
            except LookupError as exc:
                return RunResult(1, "", str(exc))
        out: Dict[str, List[str]] = {"stdout": [], "stderr": []}
        shown = [live]

        def pump(name: str, stream: Any) -> None:
            for line in iter(stream.readline, ""):
                out[name].append(line)
                if shown[0]:
                    try:
                        sys.stderr.write(line)
                        sys.stderr.flush()
                    except (OSError, ValueError):  # no one reads it any more: keep draining
                        shown[0] = False
            stream.close()

        proc: Any = None
        try:
            with held():  # a signal now would lose the child: it waits for the wait
                proc = subprocess.Popen(  # noqa: S603 - argv list, no shell
                    list(argv), env=full_env, cwd=self.real(cwd) if cwd else None,
                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    universal_newlines=True, errors="replace", preexec_fn=preexec,
                    start_new_session=True,
                )
                self._groups.add(proc.pid)
                if self._stopped:  # stop_commands ran while it started
                    self.stop_commands()
                readers = [threading.Thread(target=pump, args=(n, getattr(proc, n)),
                                            daemon=True) for n in ("stdout", "stderr")]
                for reader in readers:
                    reader.start()
            code = proc.wait(timeout=timeout)
        except FileNotFoundError:
            return RunResult(127, "", "%s: command not found" % argv[0])
        except KeyboardInterrupt as exc:  # SIGINT or SIGTERM (agent.interrupt)
            interrupted = as_interrupted(exc)
            if proc is not None:
                _stop_group(proc, interrupted.signum)
                interrupted.stopped = "%s, process group %d" % (argv[0], proc.pid)
            raise interrupted from None
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
            code = 124
            out["stderr"].append("%s: timed out after %ss, killed\n" % (argv[0], timeout))
        finally:
            if proc is not None:
                self._groups.discard(proc.pid)
        for reader in readers:
            reader.join(timeout=5)
        if self._stopped:
            out["stderr"].append("%s: killed, the controller is gone\n" % argv[0])
        return RunResult(code, "".join(out["stdout"]), "".join(out["stderr"]))

    def stop_commands(self) -> None:
        """Kill the commands :meth:`run_long` is running, with everything they
        started (their process groups), and start no more: the agent's controller
        is gone (see agent/remote.py), so no one waits for them, and they must not
        keep the run, and its lock, going."""
        import signal

        self._stopped = True
        for group in list(self._groups):
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def account(self, user: str) -> Optional[Tuple[str, int, int, str]]:
        """(name, uid, primary gid, home) of a user name or numeric uid, from the
        user database (the rooted /etc/passwd under a root), or None when it has
        no entry."""
        if self.root == "/":
            import pwd

            try:
                entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
            except (KeyError, OverflowError):
                return None
            return entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir
        for line in (self.read_text("/etc/passwd") or "").splitlines():
            fields = line.split(":")
            if len(fields) >= 6 and fields[2].isdigit() and fields[3].isdigit() and \
                    user in (fields[0], fields[2]):
                return fields[0], int(fields[2]), int(fields[3]), fields[5]
        return None

    def groups(self, name: str, gid: int) -> List[int]:
        """The groups of user ``name`` as login(1) sets them (initgroups): ``gid``
        and every group that lists the user as a member."""
        if self.root == "/":
            return sorted(set(os.getgrouplist(name, gid)))
        found = {gid}
        for line in (self.read_text("/etc/group") or "").splitlines():
            fields = line.split(":")
            if len(fields) >= 4 and fields[2].isdigit() and name in fields[3].split(","):
                found.add(int(fields[2]))
        return sorted(found)

    def _become(self, user: str, group: Optional[str] = None) -> Callable[[], None]:
        """The preexec function that runs a command as ``user`` (a name or a uid):
        its uid, its primary group (``group`` instead, when given) and its
        supplementary groups; never root's groups. A uid with no passwd entry is
        refused unless ``group`` says which group to run with (and then it gets
        that group only). LookupError says why."""
        entry = self.account(user)
        gid = None
        if group is not None:
            gid = self.gid(group)
            if gid is None:
                raise LookupError("group '%s' does not exist on this machine" % group)
        if entry is None:
            if not user.isdigit():
                raise LookupError("user '%s' does not exist on this machine" % user)
            if gid is None:
                raise LookupError(
                    "uid %s has no entry in /etc/passwd on this machine, so it has no "
                    "group to run with: add the user, or give group= (the command then "
                    "runs with that group only)" % user)
            return _switch_user(int(user), gid, [gid])
        name, uid, primary, _ = entry
        gid = primary if gid is None else gid
        return _switch_user(uid, gid, self.groups(name, gid))

    def which(self, program: str) -> Optional[str]:
        """The target path of a program on the standard PATH, or None."""
        for directory in ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin",
                          "/sbin", "/bin"):
            candidate = directory + "/" + program
            if os.access(self.real(candidate), os.X_OK):
                return candidate
        return None


def _stop_group(proc: Any, signum: int) -> None:
    """Stop a command started in its own process group: the signal the agent got
    first (as a terminal sends Ctrl-C to its foreground group), up to STOP_GRACE
    seconds for the command to finish, then SIGKILL for whatever is left in the
    group (a shell's background children ignore SIGINT)."""
    import signal
    import subprocess

    for sig, grace in ((signum, STOP_GRACE), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=grace)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            continue  # a second Ctrl-C: on to SIGKILL


def _host_db(table: str) -> Tuple[Callable[[str], int], Callable[[int], str]]:
    """Name → id and id → name through this machine's own user or group database."""
    if table == "passwd":
        import pwd

        return (lambda n: pwd.getpwnam(n).pw_uid), (lambda i: pwd.getpwuid(i).pw_name)
    import grp

    return (lambda n: grp.getgrnam(n).gr_gid), (lambda i: grp.getgrgid(i).gr_name)


def _switch_user(uid: int, gid: int, groups: List[int]) -> Callable[[], None]:
    """A preexec function that drops to uid, gid and the supplementary ``groups``
    (subprocess's user= needs 3.9). The groups are looked up before the fork:
    after it, in a process with threads, only plain system calls are safe."""

    def switch() -> None:
        os.setgroups(groups)
        os.setgid(gid)
        os.setuid(uid)

    return switch


def _rmtree_at(dirfd: int, name: str) -> None:
    """Remove the directory ``name`` of ``dirfd`` and everything in it, each entry
    through its directory's descriptor, links removed as links."""
    fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                 dir_fd=dirfd)
    try:
        for entry in os.listdir(fd):
            st = os.stat(entry, dir_fd=fd, follow_symlinks=False)
            if stat_mod.S_ISDIR(st.st_mode):
                _rmtree_at(fd, entry)
            else:
                os.unlink(entry, dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=dirfd)


def describe_oserror(exc: OSError) -> str:
    """'Permission denied (EACCES)' style text for an OSError."""
    name = errno.errorcode.get(exc.errno or 0, "")
    text = exc.strerror or str(exc)
    return "%s (%s)" % (text, name) if name else text


def _make_beside(place: Any, make: Callable[[str], None]) -> str:
    """Make a new entry (``make(name)``) under a free temporary name beside
    ``place``, in its directory; that name."""
    while True:
        tmp = ".%s%s%d-%s.tmp" % (place.name[:TEMP_NAME_KEEP], TEMP_MARK, os.getpid(),
                                  os.urandom(6).hex())
        try:
            make(tmp)
            return tmp
        except FileExistsError:
            continue


def _rename_over(place: Any, tmp: str, path: str) -> None:
    """Rename the temporary entry over ``place`` (removed again when that fails,
    the error naming ``path``)."""
    try:
        os.rename(tmp, place.name, src_dir_fd=place.dirfd, dst_dir_fd=place.dirfd)
    except OSError as exc:
        os.unlink(tmp, dir_fd=place.dirfd)
        exc.filename, exc.filename2 = path, None
        raise
