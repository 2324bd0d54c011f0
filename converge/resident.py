"""The ready controller: a process with converge imported, forking one run per request.

    python -m converge.resident FOLDER SECONDS      (started by :func:`prestart`)

See converge/launch.py for the run's side and why. This process imports the CLI
and what a run needs (typer's command built once), then listens on
``FOLDER/resident.sock`` and, for each request of its own user whose stamp is
its own (:func:`converge.launch.stamp`), forks. The fork takes the run's
standard input, output and error and working folder (passed as file
descriptors), reads the command line, environment and umask, tells the run its
process id, runs the command as ``converge`` would, and sends its exit status.
This process never reads the environment of a run (a vault password variable,
say): the fork does, and exits.

It never starts a thread or compiles a recipe, so each fork starts from the
same clean state. A request with another stamp (converge upgraded or edited,
another Python) is answered ``S`` and this process exits: the run is done by
the caller, which starts a fresh one. It exits too after SECONDS without a
request (the longest ``--persist`` of the runs it served), on ``converge
disconnect``, or when its socket was removed.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import sys
import time
from typing import Any, List, Optional

from . import launch

SPAWN_LOCK = "resident.lock"
RECEIVE_TIMEOUT = 5.0  # seconds a caller may take to send its request


def prestart(seconds: float, folder: Optional[str] = None) -> None:
    """Start this user's ready controller in the background unless one runs (or the
    folder is not private: then warm connections say why, not this)."""
    import threading

    from .transport.persist import PersistError, private_dir

    try:
        chosen = private_dir(folder or launch.directory())  # made if missing
    except PersistError:
        return
    if _alive(chosen):
        return
    threading.Thread(target=start, args=(chosen, seconds), name="converge-resident",
                     daemon=True).start()


def start(folder: str, seconds: float) -> None:
    """Start the ready controller in ``folder`` (private), unless one listens there;
    return once it listens (or failed to start: then runs are done by themselves)."""
    import fcntl
    import subprocess

    try:
        lock = os.open(os.path.join(folder, SPAWN_LOCK),
                       os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError:
        return
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _alive(folder):  # another run started it meanwhile
            return
        # its own environment: what the stamp reads, and nothing else of the run's
        keep = ("PATH", "HOME", "TMPDIR", "COVERAGE_PROCESS_START", "COVERAGE_PROCESS_CONFIG")
        env = {k: v for k, v in os.environ.items()
               if k in keep or k.startswith("PYTHON") or k in launch._STAMP_ENV}
        proc = subprocess.Popen([sys.executable, "-m", "converge.resident", folder,
                                 repr(seconds)], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
                                cwd="/", start_new_session=True, close_fds=True)
        assert proc.stdout is not None
        proc.stdout.readline()  # "ready": the first process exits once it listens
        proc.stdout.close()
        proc.wait()
    except OSError:
        pass
    finally:
        os.close(lock)


def _alive(folder: str) -> bool:
    """Does a ready controller listen in ``folder``? (A socket left by one that died
    refuses connections: it is replaced.)"""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(os.path.join(folder, launch.SOCKET))
        return True
    except OSError:
        return False
    finally:
        sock.close()


def stop(folder: Optional[str] = None, wait: float = 10.0) -> bool:
    """Stop the ready controller (``converge disconnect``) and wait until it has
    exited; False if none runs. Runs it already started finish on their own."""
    from .transport.persist import wait_for_exit

    chosen = folder or launch.directory()
    path = os.path.join(chosen, launch.SOCKET)
    if not launch.private(chosen) or not os.path.exists(path):
        return False
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
        if launch.peer_uid(sock) != os.geteuid():
            return False
        sock.sendall(launch._frame({"op": "stop"}))
        pid = int.from_bytes(launch._read(sock, 4) or b"\0", "big")
    except OSError:
        return False
    finally:
        sock.close()
    return bool(pid) and wait_for_exit(pid, wait)


# -- the ready controller -------------------------------------------------------------


def _preload() -> Any:
    """Import what a run needs; the CLI's click command, built once. Also what a run
    would load only when it needs it (converge alone loads it lazily): every resource
    type, its DSL function and its properties' types, the agent bundle (read from its
    cache, or built)."""
    import getpass  # noqa: F401 - the run store names the user

    import typer

    from . import cli, dsl, inventory, recipe, report, runner, store  # noqa: F401
    from .resources._base import load_all
    from .transport import bundle, persist, ssh  # noqa: F401

    for optional in ("yaml", "jinja2"):
        try:
            __import__(optional)
        except ImportError:
            pass
    dsl.all_functions()
    for cls in load_all().values():
        for field in cls.fields():
            field.kind  # noqa: B018 - its annotation evaluated (typing.get_type_hints), once
    try:
        bundle.tree_digest()
        bundle.build()
    except OSError:  # a run says what is wrong
        pass
    return typer.main.get_command(cli.app)


def main(argv: List[str]) -> None:
    folder, seconds = argv[0], float(argv[1])
    if os.fork():  # the first process returns at once; this one lives on alone
        os._exit(0)
    if not launch.private(folder):
        sys.exit(1)
    mine = launch.stamp()  # before importing: a file changed meanwhile makes it stale
    command = _preload()
    os.umask(0o077)
    path = os.path.join(folder, launch.SOCKET)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        os.unlink(path)  # one that died without removing it (the spawn lock is held)
    except FileNotFoundError:
        pass
    server.bind(path)
    server.listen(64)
    try:
        sys.stdout.write("ready %d\n" % os.getpid())
        sys.stdout.flush()
    except OSError:  # the run that started it has ended: no one to tell
        pass
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(null, fd)
    os.close(null)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the runs reap themselves
    try:
        _serve(server, path, command, mine, seconds)
    finally:
        server.close()
        if not _forked:  # (a run forked from here leaves through this too)
            _remove(path)


def _remove(path: str) -> None:
    """Remove this process's socket, unless another ready controller's replaced it."""
    try:
        if os.stat(path).st_ino == _inode:
            os.unlink(path)
    except OSError:
        pass


_inode = 0  # the socket this process listens on (one that replaced it is not its)
_forked = False  # this process is a run forked from the ready controller


def _serve(server: socket.socket, path: str, command: Any, mine: str, seconds: float) -> None:
    global _inode, _forked
    _inode = os.stat(path).st_ino
    last = time.monotonic()
    while True:
        left = last + seconds - time.monotonic()
        if left <= 0:
            return
        if not select.select([server], [], [], min(left, 5.0))[0]:
            try:  # removed (or replaced): no one can reach this one any more
                if os.stat(path).st_ino != _inode:
                    return
            except OSError:
                return
            continue
        try:
            sock, _ = server.accept()
        except OSError:
            continue
        last = time.monotonic()
        fds: List[int] = []
        try:
            if launch.peer_uid(sock) != os.geteuid():  # another user: not even an answer
                continue
            sock.settimeout(RECEIVE_TIMEOUT)  # a caller stopped half-way holds no one up
            request, fds[:] = _receive(sock)
            sock.settimeout(None)
            if request.get("op") == "stop":
                sock.sendall(os.getpid().to_bytes(4, "big"))
                return
            if request.get("op") != "run":
                continue
            if request.get("stamp") != mine:
                sock.sendall(b"S")
                return
            seconds = float(request.get("persist") or seconds)  # the latest run's counts
            if len(fds) == 4:
                pid = os.fork()
                if pid == 0:
                    _forked = True
                    server.close()
                    _run(sock, fds, command)  # never returns: raises SystemExit
        except (OSError, ValueError, EOFError):
            pass
        finally:
            sock.close()
            for fd in fds:
                try:
                    os.close(fd)
                except OSError:
                    pass


def _receive(sock: socket.socket) -> Any:
    """The first message of a request and the file descriptors that came with it."""
    import array
    import marshal

    fds = array.array("i")
    data, ancillary, _, _ = sock.recvmsg(4, socket.CMSG_LEN(4 * fds.itemsize))
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[:len(payload) - len(payload) % fds.itemsize])
    received = list(fds)
    size = int.from_bytes(data, "big") if len(data) == 4 else 0
    body = launch._read(sock, size)
    if len(data) != 4 or len(body) != size or size > 1 << 20:
        raise ValueError("short request")
    return marshal.loads(body), received


def _run(sock: socket.socket, fds: List[int], command: Any) -> None:
    """In the fork: become the run, run the command, send its exit status, exit."""
    import marshal

    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for target, fd in zip((0, 1, 2), fds[:3], strict=True):
        os.dup2(fd, target)
    os.fchdir(fds[3])
    for fd in fds:
        os.close(fd)
    code = 1
    done: List[bool] = []
    try:
        sock.sendall(b"P" + os.getpid().to_bytes(4, "big"))
        size = int.from_bytes(launch._read(sock, 4), "big")
        request = marshal.loads(launch._read(sock, size))
        os.umask(int(request["umask"]))
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = list(request["argv"])
        sys.path[0] = str(request["path0"])
        _stdio()
        _watch(sock, done)
        code = _command(command, sys.argv[1:])
    except BaseException:  # noqa: BLE001 - a broken request: say so, status 1
        import traceback

        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        done.append(True)
        null = os.open(os.devnull, os.O_RDWR)  # the caller's streams end with the run,
        for fd in (0, 1, 2):  # not with this process's shutdown (a pipe's reader
            os.dup2(null, fd)  # waits for every writer)
        os.close(null)
        try:
            sock.sendall(b"X" + code.to_bytes(4, "big", signed=True))
        except OSError:
            pass
    if "coverage" not in sys.modules:  # (a measured run saves its data at exit)
        os._exit(code)  # the run is over: Python's shutdown of a whole CLI is not needed
    raise SystemExit(code)


def _command(command: Any, args: List[str]) -> int:
    """Run the CLI as converge.cli.main does; its exit status."""
    from . import cli

    try:
        cli.main(args, command=command)
    except SystemExit as exc:
        if exc.code is None:
            return 0
        if isinstance(exc.code, int):
            return exc.code
        sys.stderr.write("%s\n" % exc.code)
        return 1
    return 0


def _stdio() -> None:
    """Standard streams on the run's descriptors, made as the interpreter makes them
    at start-up (a terminal's standard output is line-buffered)."""
    import io

    unbuffered = bool(os.environ.get("PYTHONUNBUFFERED"))
    made = sys.__stdout__  # as the interpreter made it for this process (same locale)
    encoding = getattr(made, "encoding", None) or "utf-8"
    errors = getattr(made, "errors", None) or "strict"
    streams = []
    for fd, mode in ((0, "rb"), (1, "wb"), (2, "wb")):
        raw = io.FileIO(fd, mode, closefd=False)
        tty = raw.isatty()
        buffered: Any = io.BufferedReader(raw) if fd == 0 else io.BufferedWriter(raw)
        streams.append(io.TextIOWrapper(
            buffered, encoding=encoding, errors="backslashreplace" if fd == 2 else errors,
            line_buffering=fd == 2 or (tty and fd == 1), write_through=unbuffered or fd == 2))
    sys.stdin, sys.stdout, sys.stderr = streams


def _watch(sock: socket.socket, done: List[bool]) -> None:
    """If the caller goes away (killed) before the run is ``done``, the run gets
    SIGHUP, as from a closed terminal."""
    import threading

    def wait() -> None:
        try:
            data = sock.recv(1)
        except OSError:
            data = b""
        if not data and not done:
            os.kill(os.getpid(), signal.SIGHUP)

    threading.Thread(target=wait, name="converge-caller", daemon=True).start()


if __name__ == "__main__":
    main(sys.argv[1:])
