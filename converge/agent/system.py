"""All access a resource has to the machine it converges.

Resources never open system paths or start processes themselves: they go through a
``System``. A System rooted at a directory maps every absolute path under it, which
is how unit tests converge a fake ``/etc`` in a temporary directory.
"""

from __future__ import annotations

import errno
import os
import stat as stat_mod
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Sequence, Set, Tuple

from .interrupt import as_interrupted, held

#: Seconds a command stopped by SIGINT/SIGTERM gets to finish before SIGKILL.
STOP_GRACE = 5.0
# Temp files of write_atomic: ".NAME.converge-PID-RANDOM.tmp", NAME cut to fit NAME_MAX.
TEMP_MARK = ".converge-"
TEMP_NAME_KEEP = 180


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
    """The machine, optionally seen through a root directory."""

    def __init__(self, root: str = "/", cwd: Optional[str] = None) -> None:
        self.root = os.path.abspath(root)
        self.cwd = cwd or os.getcwd()
        self._tables: Dict[str, Dict[str, int]] = {}
        self._unsynced: Set[str] = set()  # directories renamed into since the last sync()
        self._swept: Set[str] = set()  # directories cleared of dead writers' temp files

    # -- paths ---------------------------------------------------------------

    def real(self, path: str) -> str:
        """The host path for a target path (relative paths are from ``cwd``)."""
        path = os.path.normpath(os.path.join(self.cwd, path))
        if self.root == "/":
            return path
        return os.path.join(self.root, path.lstrip("/"))

    def stat(self, path: str) -> Optional[os.stat_result]:
        """lstat of the path, or None when it does not exist."""
        try:
            return os.lstat(self.real(path))
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            return None

    def exists(self, path: str) -> bool:
        return self.stat(path) is not None

    def is_dir(self, path: str) -> bool:
        st = self.stat(path)
        return st is not None and stat_mod.S_ISDIR(st.st_mode)

    def read_bytes(self, path: str) -> Optional[bytes]:
        """The file's content, or None when it does not exist."""
        try:
            with open(self.real(path), "rb") as fh:
                return fh.read()
        except FileNotFoundError:
            return None

    def read_text(self, path: str) -> Optional[str]:
        data = self.read_bytes(path)
        return None if data is None else data.decode("utf-8", "surrogateescape")

    def listdir(self, path: str) -> List[str]:
        try:
            return sorted(os.listdir(self.real(path)))
        except (FileNotFoundError, NotADirectoryError):
            return []

    # -- changes ---------------------------------------------------------------

    def write_atomic(
        self,
        path: str,
        data: bytes,
        mode: Optional[int] = None,
        uid: int = -1,
        gid: int = -1,
        durable: bool = True,
    ) -> None:
        """Replace ``path`` whole: temp file beside it, fsync, rename; the directory
        is fsynced by :meth:`sync` at the end of the run. ``durable=False`` skips
        both fsyncs: still whole, old or new, after a crash, but a power cut may
        keep the old (for a record nothing depends on).

        A crash at any point leaves either the old file or the new one. Mode and
        ownership are set on the temp file before the rename, so the new content
        is never visible with the wrong permissions. The temp file is named
        ``.NAME.converge-PID-RANDOM.tmp``: when the writer is killed (kill -9,
        power cut) it stays behind, and the next write into that directory by
        another process removes it (see :meth:`sweep_temps`). An OSError (a full
        disk: ENOSPC) names ``path``.
        """
        real = self.real(path)
        directory = os.path.dirname(real) or "."
        self._sweep(directory)
        prefix = ".%s%s%d-" % (os.path.basename(real)[:TEMP_NAME_KEEP], TEMP_MARK, os.getpid())
        fd = -1
        while fd == -1:  # tempfile.mkstemp, without importing tempfile (random, shutil...)
            tmp = os.path.join(directory, "%s%s.tmp" % (prefix, os.urandom(6).hex()))
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
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
                st = self.stat(path)
                mode = stat_mod.S_IMODE(st.st_mode) if st else 0o644
            os.fchmod(fd, mode)
            if uid != -1 or gid != -1:
                os.fchown(fd, uid, gid)
            if durable:
                os.fsync(fd)
            os.close(fd)
            fd = -1
            os.rename(tmp, real)
        except BaseException as exc:
            if fd != -1:
                os.close(fd)
            try:
                os.unlink(tmp)
            except OSError:
                pass
            if isinstance(exc, OSError):
                exc.filename, exc.filename2 = path, None
            raise
        if durable:
            self._unsynced.add(directory)

    def sync(self) -> None:
        """Make the renames of :meth:`write_atomic` durable: one fsync per directory
        written into, at the end of a run, rather than one per file. Each file's
        content is on disk before its rename either way, so a power cut before this
        leaves every file whole, old or new; this is what makes "new" stick."""
        for directory in sorted(self._unsynced):
            self._fsync_dir(directory)
        self._unsynced.clear()

    def sweep_temps(self, path: str) -> None:
        """Remove the temp files of writers that died in the directory ``path``:
        write_atomic does it before its first write into a directory; call it for
        a directory no later write may visit (a run's own backup folder)."""
        self._sweep(self.real(path))

    def _sweep(self, directory: str) -> None:
        """Remove the temp files of dead writers from a host directory, once per
        directory for this System: a ``.NAME.converge-PID-RANDOM.tmp`` whose PID
        is not a live process. A live writer's temp file is never touched."""
        if directory in self._swept:
            return
        self._swept.add(directory)
        try:
            names = os.listdir(directory)
        except OSError:
            return
        for name in names:
            pid = temp_writer(name)
            if pid is not None and not _alive(pid):
                try:
                    os.unlink(os.path.join(directory, name))
                except OSError:
                    pass

    @staticmethod
    def _fsync_dir(directory: str) -> None:
        try:
            dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return
        try:
            os.fsync(dfd)
        except OSError:
            pass
        finally:
            os.close(dfd)

    def write_in_place(self, path: str, data: bytes) -> None:
        """Write into an existing file without a temp file or rename: for /proc/sys
        and /proc/PID files, where the kernel checks the write. The kernel's refusal
        is an OSError with its errno (EINVAL, EACCES, EPERM)."""
        fd = os.open(self.real(path), os.O_WRONLY | os.O_TRUNC)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    def mkdir(self, path: str, mode: int = 0o755) -> None:
        os.mkdir(self.real(path), mode)
        os.chmod(self.real(path), mode)  # mkdir's mode is filtered by the umask

    def chmod(self, path: str, mode: int) -> None:
        os.chmod(self.real(path), mode)

    def chown(self, path: str, uid: int = -1, gid: int = -1) -> None:
        os.lchown(self.real(path), uid, gid)

    def remove(self, path: str) -> None:
        os.unlink(self.real(path))

    def rmdir(self, path: str) -> None:
        os.rmdir(self.real(path))

    def rename(self, src: str, dst: str) -> None:
        os.rename(self.real(src), self.real(dst))

    def symlink(self, target: str, path: str) -> None:
        """Create the link ``path`` pointing at ``target`` (kept as given: a target
        path, as the machine will resolve it)."""
        os.symlink(target, self.real(path))

    def readlink(self, path: str) -> Optional[str]:
        """Where a symbolic link points, or None when ``path`` is not a link."""
        try:
            return os.readlink(self.real(path))
        except (FileNotFoundError, NotADirectoryError, OSError):
            return None

    def rmtree(self, path: str) -> None:
        import shutil

        shutil.rmtree(self.real(path))

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
        return self._table(table).get(name)

    def _to_name(self, number: int, table: str) -> str:
        if self.root == "/":
            try:
                return _host_db(table)[1](number)
            except KeyError:
                return str(number)
        for name, value in self._table(table).items():
            if value == number:
                return name
        return str(number)

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

        full_env = dict(os.environ)
        full_env["LC_ALL"] = "C"
        if env:
            full_env.update(env)
        preexec = None
        if user is not None:
            uid = self.uid(user)
            gid = self._primary_gid(user) if group is None else self.gid(group)
            if uid is None or gid is None:
                return RunResult(1, "", "no such %s %s" % (
                    ("user", user) if uid is None else ("group", group)))
            preexec = _switch_user(uid, gid)
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
    ) -> RunResult:
        """Run a user's command (execute): like :meth:`run`, but in its own process
        group, so a timeout kills the command with everything it started, and with
        ``live`` each line of output is also written to standard error as it comes
        (the terminal on a local run). Standard input is /dev/null."""
        import signal
        import subprocess
        import sys
        import threading

        full_env = dict(os.environ)
        full_env["LC_ALL"] = "C"
        full_env.update(env or {})
        preexec = None
        if user is not None:
            uid = self.uid(user)
            if uid is None:
                return RunResult(1, "", "no such user %s" % user)
            preexec = _switch_user(uid, self._primary_gid(user))
        out: Dict[str, List[str]] = {"stdout": [], "stderr": []}

        def pump(name: str, stream: Any) -> None:
            for line in iter(stream.readline, ""):
                out[name].append(line)
                if live:
                    sys.stderr.write(line)
                    sys.stderr.flush()
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
        for reader in readers:
            reader.join(timeout=5)
        return RunResult(code, "".join(out["stdout"]), "".join(out["stderr"]))

    def _primary_gid(self, user: str) -> int:
        for line in (self.read_text("/etc/passwd") or "").splitlines():
            fields = line.split(":")
            if len(fields) >= 4 and fields[0] == user and fields[3].isdigit():
                return int(fields[3])
        return -1

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


def _switch_user(uid: int, gid: int) -> Callable[[], None]:
    """A preexec function that drops to uid/gid (subprocess's user= needs 3.9)."""

    def switch() -> None:
        if gid != -1:
            os.setgroups([gid])
            os.setgid(gid)
        os.setuid(uid)

    return switch


def describe_oserror(exc: OSError) -> str:
    """'Permission denied (EACCES)' style text for an OSError."""
    name = errno.errorcode.get(exc.errno or 0, "")
    text = exc.strerror or str(exc)
    return "%s (%s)" % (text, name) if name else text
