"""Warm connections: a broker per user keeps SSH connections open between runs.

Like OpenSSH's ControlPersist. The first run to a host asks this user's broker
(converge/transport/broker.py, started on demand) for a channel; the broker
connects (host key checked against known_hosts, as a direct run does),
authenticates, and relays the channel's bytes over a Unix socket. The next run
within ``persist`` seconds gets its channel on the same connection: no key
exchange, no authentication, and no paramiko in the run's own process. ::

    converge apply ──unix socket──▶ broker ──SSH connection (kept)──▶ sshd ──▶ agent
                     one per channel     one per host, user, key...

This module is the run's side: where the broker lives, starting it, asking it
for a channel (:func:`open_channel`), and :func:`disconnect`. Standard library
only, and no paramiko: a warm run never imports it.

Security. The broker's folder is private (0700, the user's own, checked before
every use, never a symlink): ``$CONVERGE_SSH_DIR``, else
``$XDG_RUNTIME_DIR/converge-ssh`` when that folder is the user's own, else
``~/.cache/converge/ssh`` (the home of the account, not ``$HOME``). Both ends
check the other's credentials (``SO_PEERCRED``): the broker serves only its own
user's processes, and a run talks only to a broker of its own user, so a
socket planted by someone else is refused. The broker only relays channels:
what a run sends (the plan, a sudo password) passes through it and is never
kept, logged or shown to another client; its own environment is a short
allow-list (no vault password variable reaches it).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from .. import launch
from ..errors import ConvergeError

PROTOCOL = 1  # the broker's; a broker of another (an older converge's) is not used
ENV_PERSIST = launch.ENV_PERSIST  # the default of --persist: "60s", "5m", "no"
ENV_DIR = launch.ENV_DIR  # the broker's folder (tests give each their own)
DEFAULT_PERSIST = launch.DEFAULT_PERSIST
SOCKET = "broker.sock"
PIDFILE = "broker.pid"
SPAWN_LOCK = "spawn.lock"
LOG = "broker.log"
START_TIMEOUT = 15.0  # seconds a new broker may take to listen
#: what the broker's environment keeps of the run's (nothing secret)
ENV_KEEP = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "PYTHONPATH",
            "SSH_AUTH_SOCK", "XDG_RUNTIME_DIR", "COVERAGE_PROCESS_START",
            "COVERAGE_PROCESS_CONFIG", "TMPDIR")

# relay frames: a type byte, a 4-byte length, the payload
FRAME = struct.Struct("!cI")
STDOUT, STDERR, EXIT, STDIN, STDIN_EOF = b"o", b"e", b"x", b"i", b"E"


class PersistError(ConvergeError):
    """The broker cannot be used (its folder is unsafe, it did not start): the run
    connects directly instead."""


def parse_duration(text: str) -> float:
    """``60s``, ``5m``, ``1h``, ``0.5s``, ``90`` → seconds; ``no``, ``off``, ``0`` → 0."""
    seconds = launch.duration(text)
    if seconds is None:
        raise ConvergeError("--persist %s: expected a duration such as 60s, 5m or 1h, or "
                            "'no'" % text)
    return seconds


def default_persist() -> float:
    """--persist's default: ``$CONVERGE_SSH_PERSIST`` (the test suite sets ``no``), else
    60 seconds."""
    text = os.environ.get(ENV_PERSIST)
    return DEFAULT_PERSIST if text is None or not text.strip() else parse_duration(text)


# -- the folder ---------------------------------------------------------------------------


#: where this user's broker lives (launch.directory: the ready controller's folder too)
directory = launch.directory


def private_dir(path: str, create: bool = True) -> str:
    """``path``, made if missing (0700), once it is a real folder of this user's that no
    one else can enter; else a PersistError saying what is wrong."""
    me = os.geteuid()
    if create and not os.path.lexists(path):
        parent = os.path.dirname(path)
        try:
            os.makedirs(parent, mode=0o700, exist_ok=True)
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise PersistError("cannot make %s: %s" % (path, exc.strerror)) from exc
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise PersistError("cannot use %s: %s" % (path, exc.strerror)) from exc
    if not stat.S_ISDIR(st.st_mode):
        raise PersistError("%s is not a folder (a symlink?): warm connections not used" % path)
    if st.st_uid != me or st.st_mode & 0o077:
        raise PersistError("%s is not private (owner %d, mode %04o; want %d and 0700): warm "
                           "connections not used" % (path, st.st_uid, st.st_mode & 0o7777, me))
    return path


def peer(sock: socket.socket) -> Tuple[int, int, int]:
    """The (pid, uid, gid) of the process at the other end of a Unix socket."""
    data = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", data)
    return pid, uid, gid


# -- reaching the broker ------------------------------------------------------------------


def _dial(folder: str) -> Optional[socket.socket]:
    """A connection to the broker in ``folder``, or None when none listens there.
    A socket that another user's process holds is refused (PersistError)."""
    path = os.path.join(folder, SOCKET)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as exc:
        sock.close()
        if exc.errno in (errno.ENOENT, errno.ECONNREFUSED):
            return None
        raise PersistError("cannot reach the broker at %s: %s" % (path, exc.strerror)) from exc
    _, uid, _ = peer(sock)
    if uid != os.geteuid():
        sock.close()
        raise PersistError("the broker at %s runs as uid %d, not as this user (%d): refused"
                           % (path, uid, os.geteuid()))
    return sock


def connect(folder: Optional[str] = None, start: bool = True) -> Optional[socket.socket]:
    """A connection to this user's broker, starting one when none runs (``start``);
    None when none runs and ``start`` is false."""
    folder = private_dir(folder or directory(), create=start)
    sock = _dial(folder)
    if sock is not None or not start:
        return sock
    lock = os.open(os.path.join(folder, SPAWN_LOCK), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW,
                   0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        sock = _dial(folder)  # another run started it meanwhile
        if sock is None:
            _start(folder)
            sock = _dial(folder)
    finally:
        os.close(lock)
    if sock is None:
        raise PersistError("the broker in %s did not start" % folder)
    return sock


def prestart(folder: Optional[str] = None) -> None:
    """Start this user's broker on a thread, if none runs, so that its own start-up
    (an interpreter, paramiko) overlaps the rest of the run's; the first channel
    asked for waits for it (the spawn lock). Errors are left to that request."""

    def start() -> None:
        try:
            sock = connect(folder)
        except (ConvergeError, OSError):
            return
        if sock is not None:
            sock.close()

    try:
        chosen = private_dir(folder or directory())
    except PersistError:
        return
    if os.path.exists(os.path.join(chosen, SOCKET)) and os.path.exists(
            os.path.join(chosen, PIDFILE)):
        return  # a broker runs (or died: the first request starts another)
    threading.Thread(target=start, name="ssh-broker-start", daemon=True).start()


def _start(folder: str) -> None:
    """Start the broker (it forks away and says ``ready`` once it listens)."""
    path = os.path.join(folder, SOCKET)
    if os.path.lexists(path):  # a broker that died without removing it
        os.unlink(path)
    env = {k: v for k, v in os.environ.items() if k in ENV_KEEP}
    log = os.open(os.path.join(folder, LOG), os.O_WRONLY | os.O_CREAT | os.O_APPEND
                  | os.O_NOFOLLOW, 0o600)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "converge.transport.broker", folder],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
                                env=env, cwd="/", start_new_session=True, close_fds=True)
    finally:
        os.close(log)
    assert proc.stdout is not None
    ready = threading.Event()
    said: List[bytes] = []

    def read() -> None:
        said.append(proc.stdout.readline() if proc.stdout else b"")
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    ready.wait(START_TIMEOUT)
    proc.wait()  # the first process exits once its child (the broker) listens
    proc.stdout.close()
    if not said or not said[0].startswith(b"ready"):
        raise PersistError("the broker did not start (see %s)" % os.path.join(folder, LOG))


def _call(sock: socket.socket, request: Dict[str, Any]) -> Dict[str, Any]:
    sock.sendall(json.dumps(request, separators=(",", ":")).encode() + b"\n")
    line = _readline(sock)
    if not line:
        raise ConnectionResetError("the broker closed the connection")
    reply: Dict[str, Any] = json.loads(line)
    return reply


def _readline(sock: socket.socket) -> bytes:
    """One line, read a byte at a time (what follows it is the relay's)."""
    data = bytearray()
    while True:
        byte = sock.recv(1)
        if not byte:
            return bytes(data)
        data += byte
        if byte == b"\n":
            return bytes(data)


def _raise(reply: Dict[str, Any], host: str) -> None:
    if "error" in reply:
        from ..errors import from_wire

        error = from_wire(reply, host)
        if "unreachable" in reply:
            error.unreachable = reply["unreachable"]  # type: ignore[attr-defined]
        raise error


class Opened:
    """A channel the broker opened: the relay, and what the broker said of it."""

    def __init__(self, channel: "RelayChannel", settings: Dict[str, Any],
                 reply: Dict[str, Any]) -> None:
        self.channel = channel
        self.settings = settings
        self.reply = reply


def open_channel(spec: Dict[str, Any], host: str, command: Any,
                 folder: Optional[str] = None, spare: bool = False) -> Opened:
    """Ask the broker for a channel running ``command(settings)`` (a callable given the
    connection's settings: hostname, port, user…) on the host ``spec`` describes.
    ``spare``: the command may be started ahead, so take the session the last run
    left ready if there is one, and leave one ready for the next run (a command that
    reads nothing but its request: not one that sudo will ask a password for).

    A broker that goes away before it answered (it was stopping at its idle timeout)
    is started again, once."""
    for attempt in (1, 2):
        sock = connect(folder)
        assert sock is not None
        try:
            reply = _call(sock, dict(spec, op="open", protocol=PROTOCOL))
            if reply.get("protocol") != PROTOCOL:
                raise PersistError("the broker speaks protocol %s, not %d (converge "
                                   "disconnect stops it)" % (reply.get("protocol"), PROTOCOL))
            _raise(reply, host)
            settings = reply["settings"]
            started = _call(sock, {"op": "exec", "command": command(settings),
                                   "spare": spare})
            _raise(started, host)
            reply.update(started)
        except (ConnectionError, ValueError, OSError) as exc:
            sock.close()
            if attempt == 2:
                raise PersistError("the broker stopped answering: %s" % exc) from exc
            continue
        except BaseException:
            sock.close()
            raise
        return Opened(RelayChannel(sock), settings, reply)
    raise AssertionError("unreachable")  # pragma: no cover


def request(op: Dict[str, Any], folder: Optional[str] = None) -> Optional[Dict[str, Any]]:
    """One request to a running broker (None when none runs)."""
    try:
        sock = connect(folder, start=False)
    except PersistError:
        return None
    if sock is None:
        return None
    try:
        return _call(sock, op)
    except (OSError, ValueError):
        return None
    finally:
        sock.close()


def disconnect(hosts: Optional[List[Tuple[str, int]]] = None, folder: Optional[str] = None,
               wait: float = 10.0) -> int:
    """Close this user's warm connections (those to ``hosts``, (address, port) pairs, or
    all), and wait for the broker to exit when none is left; how many were closed."""
    reply = request({"op": "close", "hosts": hosts}, folder)
    if not reply:
        return 0
    pid = int(reply.get("pid") or 0)
    if reply.get("exiting") and pid:
        wait_for_exit(pid, wait)
    return int(reply.get("closed") or 0)


def wait_for_exit(pid: int, seconds: float) -> bool:
    """Wait (on its pidfd, no polling) until process ``pid`` has ended; False if it is
    still running after ``seconds``."""
    import select

    try:
        fd = os.pidfd_open(pid)
    except (ProcessLookupError, AttributeError, OSError):
        return True
    try:
        return bool(select.select([fd], [], [], seconds)[0])
    finally:
        os.close(fd)


# -- a channel relayed through the broker -------------------------------------------------


class _Stream:
    """Bytes from one side of a relayed channel (stdout or stderr), buffered as they
    come; read as a file (readline, read) or as paramiko's recv."""

    def __init__(self, lock: threading.Condition) -> None:
        self.data = bytearray()
        self.eof = False
        self.cond = lock

    def feed(self, data: bytes) -> None:
        with self.cond:
            self.data += data
            self.cond.notify_all()

    def end(self) -> None:
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def ready(self) -> bool:
        with self.cond:
            return bool(self.data)

    def recv(self, size: int) -> bytes:
        with self.cond:
            self.cond.wait_for(lambda: self.data or self.eof)
            chunk = bytes(self.data[:size])
            del self.data[:size]
            return chunk

    def readline(self) -> bytes:
        with self.cond:
            self.cond.wait_for(lambda: b"\n" in self.data or self.eof)
            end = self.data.find(b"\n")
            end = len(self.data) if end < 0 else end + 1
            line = bytes(self.data[:end])
            del self.data[:end]
            return line

    def read(self, size: int = -1) -> bytes:
        with self.cond:
            if size < 0:
                self.cond.wait_for(lambda: self.eof)
                size = len(self.data)
            else:
                self.cond.wait_for(lambda: len(self.data) >= size or self.eof)
            chunk = bytes(self.data[:size])
            del self.data[:size]
            return chunk


class RelayChannel:
    """The part of a paramiko Channel converge uses (sendall, makefile, recv_stderr,
    exit status, close), over the broker's relay: frames of stdout, stderr and the
    exit status in, stdin out."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.cond = threading.Condition()
        self.stdout = _Stream(self.cond)
        self.stderr = _Stream(self.cond)
        self.status: Optional[int] = None
        self.done = False  # the relay ended (exit status in, or the broker gone)
        self.closed = False
        self._send_lock = threading.Lock()
        threading.Thread(target=self._read, name="ssh-relay", daemon=True).start()

    def _read(self) -> None:
        buffer = b""
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                buffer += data
                while len(buffer) >= FRAME.size:
                    kind, size = FRAME.unpack_from(buffer)
                    if len(buffer) < FRAME.size + size:
                        break
                    payload = buffer[FRAME.size:FRAME.size + size]
                    buffer = buffer[FRAME.size + size:]
                    if kind == STDOUT:
                        self.stdout.feed(payload)
                    elif kind == STDERR:
                        self.stderr.feed(payload)
                    elif kind == EXIT:
                        with self.cond:
                            self.status = struct.unpack("!i", payload)[0]
        except OSError:
            pass
        finally:
            self.stdout.end()
            self.stderr.end()
            with self.cond:
                self.done = True
                self.cond.notify_all()

    def _send(self, kind: bytes, data: bytes = b"") -> None:
        with self._send_lock:
            self.sock.sendall(FRAME.pack(kind, len(data)) + data)

    # -- what converge/transport/ssh.py uses of a paramiko Channel --

    def sendall(self, data: bytes) -> None:
        for start in range(0, len(data), 1 << 20):
            self._send(STDIN, data[start:start + (1 << 20)])

    def shutdown_write(self) -> None:
        self._send(STDIN_EOF)

    def makefile(self, mode: str = "rb", bufsize: int = -1) -> _Stream:
        return self.stdout

    def makefile_stderr(self, mode: str = "rb", bufsize: int = -1) -> _Stream:
        return self.stderr

    def recv_ready(self) -> bool:
        return self.stdout.ready()

    def recv_stderr_ready(self) -> bool:
        return self.stderr.ready()

    def recv_stderr(self, size: int) -> bytes:
        return self.stderr.recv(size)

    def exit_status_ready(self) -> bool:
        with self.cond:
            return self.status is not None

    def recv_exit_status(self) -> int:
        with self.cond:
            self.cond.wait_for(lambda: self.status is not None or self.done)
            return -1 if self.status is None else self.status

    def wait_readable(self, seconds: float) -> None:
        """Wait until stdout or stderr has bytes, the channel ended, or ``seconds``."""
        deadline = time.monotonic() + seconds
        with self.cond:
            self.cond.wait_for(lambda: self.stdout.data or self.stderr.data or self.done
                               or self.status is not None,
                               timeout=max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


_warned = threading.Lock()


def warn_once() -> bool:
    """True the first time in this process: a reason not to use warm connections is
    said once, not once per host."""
    return _warned.acquire(blocking=False)
