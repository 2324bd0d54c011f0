"""The broker of warm SSH connections: one process per user, on a Unix socket.

    python -m converge.transport.broker FOLDER      (started by persist.connect)

It keeps one SSH connection per (host, port, user, keys, known_hosts, jump
hosts), made and checked exactly as a direct run makes it (SSHTransport.connect:
known_hosts, --accept-new, the OpenSSH config), and relays channels on them. A
client's Unix connection carries one channel::

    client                                            broker
    {"op": "open", "host": {...}, "persist": 60, ...} ──▶  resolve; reuse or connect
                         ◀── {"settings": {...}, "reused": true, "connect": .., "auth": ..}
    {"op": "exec", "command": "python3 -I -S -c ..."}  ──▶  open a session, exec
                         ◀── {"ok": true}
    frames both ways (persist.FRAME): stdin ──▶ ; ◀── stdout, stderr, exit status

and also ``{"op": "close", "hosts": [[address, port]] | null}`` (converge
disconnect, lab down) and ``{"op": "status"}``.

A reused connection is checked first: still active, its host key still the one
known_hosts records for it (a key removed or changed there ends the connection),
and a session opens on it within a few seconds; otherwise it is closed and a new
connection made, and the client never sees the difference. A connection closes
``persist`` seconds after its last channel ended (the latest run's --persist);
the broker exits when it holds no connection and serves no client. It relays
bytes and keeps none: no request, plan or password is logged or stored.
"""

from __future__ import annotations

import json
import os
import select
import socket
import sys
import threading
import time
from typing import Any, Dict, List, Optional

from ..errors import ConvergeError, TransportError, to_wire
from . import persist

FIRST_CLIENT = 10.0  # seconds a new broker waits for its first client
REUSE_TIMEOUT = 5.0  # seconds a reused connection may take to open a session
MAX_SPARES = 2  # commands a connection keeps a ready agent for


class Conn:
    """One kept connection (an SSHTransport that made it) and its idle clock."""

    def __init__(self, transport: Any, persist_for: float) -> None:
        self.transport = transport
        self.persist = persist_for
        self.channels = 0
        self.last_used = time.monotonic()
        self.lock = threading.Lock()  # held while connecting or checking
        #: command -> a session already running it, its output not yet read: the
        #: ready agent the next run with that command takes (see Broker._spare)
        self.spares: Dict[str, Any] = {}

    @property
    def settings(self) -> Any:
        return self.transport.settings

    def alive(self) -> bool:
        client = self.transport._client
        active = client is not None and client.get_transport() is not None \
            and client.get_transport().is_active()
        return bool(active) and self.known_key()

    def known_key(self) -> bool:
        """Is the server's key still what known_hosts records for it?"""
        from .ssh import _known_keys

        s = self.settings
        name = s.hostname if s.port == 22 else "[%s]:%d" % (s.hostname, s.port)
        server = self.transport._client.get_transport().get_remote_server_key()
        try:
            recorded = _known_keys(s.known_hosts, name)
        except Exception:  # noqa: BLE001 - unreadable or gone: not known any more
            return False
        return any(kind == server.get_name() and key == server for kind, key in recorded)

    def close(self) -> None:
        spares, self.spares = list(self.spares.values()), {}
        for chan in spares:
            chan.close()
        try:
            self.transport._close_now()
        except Exception:  # noqa: BLE001 - closing a dead connection
            pass


class Broker:
    def __init__(self, folder: str, server: socket.socket) -> None:
        self.folder = folder
        self.server = server
        self.lock = threading.Lock()
        self.conns: Dict[str, Conn] = {}
        self.clients = 0
        self.served = 0
        self.started = time.monotonic()
        self.wake_r, self.wake_w = os.pipe()
        self.stopping = False
        #: ready agents to start once no channel is in flight (see _spare)
        self.spares_due: List[Any] = []

    # -- the main loop ----------------------------------------------------------------

    def serve(self) -> None:
        while True:
            timeout = self._expire()
            if self._idle():
                break
            waits: List[Any] = [self.server, self.wake_r]
            ready, _, _ = select.select(waits, [], [], timeout)
            if self.wake_r in ready:
                os.read(self.wake_r, 4096)
            if self.server in ready:
                try:
                    sock, _ = self.server.accept()
                except OSError:
                    continue
                _, uid, _ = persist.peer(sock)
                if uid != os.geteuid():  # another user: not even an answer
                    sock.close()
                    continue
                with self.lock:
                    self.clients += 1
                threading.Thread(target=self._client, args=(sock,), daemon=True).start()
        self._stop()

    def _wake(self) -> None:
        try:
            os.write(self.wake_w, b"x")
        except OSError:
            pass

    def _expire(self) -> Optional[float]:
        """Close connections idle past their time; seconds until the next one is due."""
        now = time.monotonic()
        due: List[float] = []
        with self.lock:
            for key, conn in list(self.conns.items()):
                if conn.channels:
                    continue
                left = conn.last_used + conn.persist - now
                if left <= 0:
                    del self.conns[key]
                    conn.close()
                else:
                    due.append(left)
            if not self.served:
                due.append(max(0.0, self.started + FIRST_CLIENT - now))
        return min(due) if due else None

    def _idle(self) -> bool:
        with self.lock:
            if self.stopping and not self.clients:
                return True
            if self.conns or self.clients:
                return False
            return self.served > 0 or time.monotonic() >= self.started + FIRST_CLIENT

    def _stop(self) -> None:
        """Stop listening (under the spawn lock: no new broker starts meanwhile), close
        every connection, remove the socket and the pid file."""
        import fcntl

        lock = os.open(os.path.join(self.folder, persist.SPAWN_LOCK),
                       os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self.server.close()
            for name in (persist.SOCKET, persist.PIDFILE):
                try:
                    os.unlink(os.path.join(self.folder, name))
                except FileNotFoundError:
                    pass
        finally:
            os.close(lock)
        with self.lock:
            conns, self.conns = list(self.conns.values()), {}
        for conn in conns:
            conn.close()

    # -- one client -----------------------------------------------------------------

    def _client(self, sock: socket.socket) -> None:
        try:
            line = persist._readline(sock)
            if line:
                with self.lock:
                    self.served += 1  # a client that only looked (prestart) is not one
                request = json.loads(line)
                op = request.get("op")
                if op == "open":
                    self._open(sock, request)
                elif op == "close":
                    self._send(sock, self._close(request.get("hosts")))
                elif op == "status":
                    self._send(sock, self._status())
        except (OSError, ValueError):
            pass
        finally:
            sock.close()
            with self.lock:
                self.clients -= 1
            self._wake()

    @staticmethod
    def _send(sock: socket.socket, message: Dict[str, Any]) -> None:
        message.setdefault("protocol", persist.PROTOCOL)
        sock.sendall(json.dumps(message, separators=(",", ":")).encode() + b"\n")

    def _status(self) -> Dict[str, Any]:
        now = time.monotonic()
        with self.lock:
            conns = [{"hostname": c.settings.hostname, "port": c.settings.port,
                      "user": c.settings.user, "channels": c.channels,
                      "spares": len(c.spares),
                      "idle": round(now - c.last_used, 3), "persist": c.persist}
                     for c in self.conns.values()]
            due = len(self.spares_due)
        return {"pid": os.getpid(), "connections": conns, "spares_due": due}

    def _close(self, hosts: Optional[List[List[Any]]]) -> Dict[str, Any]:
        wanted = None if hosts is None else {(str(h), int(p)) for h, p in hosts}
        with self.lock:
            chosen = [k for k, c in self.conns.items()
                      if wanted is None or (c.settings.hostname, c.settings.port) in wanted]
            closing = [self.conns.pop(k) for k in chosen]
            if hosts is None:
                self.stopping = True
            exiting = self.stopping or (not self.conns and self.clients <= 1)
        for conn in closing:
            conn.close()
        self._wake()
        return {"closed": len(closing), "pid": os.getpid(), "exiting": exiting}

    def _open(self, sock: socket.socket, request: Dict[str, Any]) -> None:
        from ..inventory import Host
        from .ssh import SSHTransport

        name = str(request.get("host", {}).get("name", "?"))
        if request.get("protocol") != persist.PROTOCOL:
            self._send(sock, {"protocol": persist.PROTOCOL, "error": "protocol mismatch"})
            return
        try:
            transport = SSHTransport(
                Host(**request["host"]), user=request.get("user"), key=request.get("key"),
                accept_new=bool(request.get("accept_new")),
                ssh_config=request.get("ssh_config"),
                timeout=float(request.get("timeout") or 10.0))
        except ConvergeError as exc:
            self._send(sock, to_wire(exc))
            return
        auth_sock = request.get("auth_sock")
        if auth_sock and auth_sock != os.environ.get("SSH_AUTH_SOCK"):
            os.environ["SSH_AUTH_SOCK"] = auth_sock  # the agent of the latest run
        s = transport.settings
        key = json.dumps([s.hostname, s.port, s.user, s.keys, s.known_hosts, s.proxy_command,
                          s.proxy_jump])
        persist_for = float(request.get("persist") or 0.0)
        spare = relayed = False
        try:
            conn, reused = self._connection(key, transport, persist_for)
        except ConvergeError as exc:
            self._send(sock, self._wire(exc))
            return
        try:
            self._send(sock, {"settings": {"hostname": s.hostname, "port": s.port,
                                           "user": s.user},
                              "reused": reused, **self._timings(conn, reused)})
            line = persist._readline(sock)
            if not line:
                return
            exec_request = json.loads(line)
            command = str(exec_request["command"])
            spare = bool(exec_request.get("spare"))
            try:
                chan, conn, reused, took = self._session(conn, reused, command, name,
                                                         transport, spare)
            except ConvergeError as exc:
                self._send(sock, self._wire(exc))
                return
            self._send(sock, {"ok": True, "reused": reused, "spare": took,
                              **self._timings(conn, reused)})
            _relay(chan, sock)
            relayed = True
        finally:
            with self.lock:
                conn.channels -= 1
                conn.last_used = time.monotonic()
                if spare and relayed:
                    self.spares_due.append((key, conn, command))
                # the next runs' agents start once no channel is in flight: a run to
                # many hosts is not slowed by the agents its first hosts leave ready
                # (on targets that share the controller's CPUs, as lab nodes do)
                due: List[Any] = []
                if not any(c.channels for c in self.conns.values()):
                    due, self.spares_due = self.spares_due, []
            for args in due:
                threading.Thread(target=self._spare, args=args, daemon=True,
                                 name="spare").start()
            self._wake()

    @staticmethod
    def _wire(exc: ConvergeError) -> Dict[str, Any]:
        wire = to_wire(exc)
        if hasattr(exc, "unreachable"):
            wire["unreachable"] = bool(exc.unreachable)
        return wire

    @staticmethod
    def _timings(conn: Conn, reused: bool) -> Dict[str, float]:
        if reused:
            return {"connect": 0.0, "auth": 0.0}
        profile = conn.transport.profile
        return {"connect": float(profile["connect"]), "auth": float(profile["auth"])}

    def _connection(self, key: str, transport: Any, persist_for: float) -> Any:
        """The kept connection for ``key`` (checked), or a new one; claimed (its
        channel count raised) for the caller."""
        with self.lock:
            conn = self.conns.get(key)
            if conn is None:
                conn = self.conns[key] = Conn(transport, persist_for)
                fresh = True
            else:
                fresh = False
            conn.channels += 1
            conn.persist = persist_for
        with conn.lock:
            if not fresh and conn.transport._client is not None and conn.alive():
                return conn, True
            if not fresh:
                conn.close()
                conn.transport = transport
            try:
                transport.connect()
            except BaseException:
                with self.lock:
                    conn.channels -= 1
                    if self.conns.get(key) is conn and not conn.channels:
                        del self.conns[key]
                conn.close()
                raise
            return conn, False

    def _session(self, conn: Conn, reused: bool, command: str, name: str,
                 fresh: Any, spare: bool = False) -> Any:
        """A session running ``command`` on ``conn`` (the ready one the last run left,
        when ``spare`` and there is one: see :meth:`_spare`), and whether it was that;
        a reused connection that cannot open one is stale: replaced by a new
        connection (``fresh``, this request's own transport, not yet connected),
        silently."""
        from .ssh import _translated

        if reused:
            try:
                ready = self._take_spare(conn, command) if spare else None
                if ready is not None:
                    return ready, conn, True, True
                return self._exec(conn, command, REUSE_TIMEOUT), conn, True, False
            except Exception:  # noqa: BLE001 - stale: connect again below
                with conn.lock:
                    conn.close()
                    conn.transport = fresh
                    fresh.connect()
        with _translated(name, "cannot open a session"):
            return self._exec(conn, command, conn.transport.timeout), conn, False, False

    def _take_spare(self, conn: Conn, command: str) -> Any:
        """The session the last run left running ``command`` on ``conn``, if it is still
        alive (its agent waiting for a request: no exit, no end of output, not closed);
        None otherwise (a dead one is closed)."""
        with self.lock:
            chan = conn.spares.pop(command, None)
        if chan is None:
            return None
        if chan.closed or chan.eof_received or chan.exit_status_ready():
            chan.close()
            return None
        try:  # the server still answers: a session opens (and is closed at once)
            self._exec(conn, None, REUSE_TIMEOUT).close()
        except BaseException:
            chan.close()
            raise
        return chan

    def _spare(self, key: str, conn: Conn, command: str) -> None:
        """After a run's channel ended, start the next run's agent: a session running
        the same command on the same kept connection, left waiting (the loader says
        hello, imports the agent and waits for its request line; its output stays in
        the channel's buffer). The next run within the idle time takes it instead of
        starting an interpreter on the target (:meth:`_take_spare`). It ends with the
        connection: closing the connection closes its standard input, and a loader
        given no request exits. At most MAX_SPARES commands per connection."""
        with conn.lock:
            with self.lock:
                if self.conns.get(key) is not conn or self.stopping \
                        or command in conn.spares:
                    return
            try:
                chan = self._exec(conn, command, REUSE_TIMEOUT)
            except Exception:  # noqa: BLE001 - no spare: the next run starts its own
                return
        with self.lock:
            if self.conns.get(key) is conn and command not in conn.spares:
                conn.spares[command] = chan
                chan = None
                while len(conn.spares) > MAX_SPARES:
                    oldest = next(iter(conn.spares))
                    conn.spares.pop(oldest).close()
        if chan is not None:  # the connection was closed or replaced meanwhile
            chan.close()

    @staticmethod
    def _exec(conn: Conn, command: Optional[str], timeout: float) -> Any:
        client = conn.transport._client
        transport = client.get_transport() if client is not None else None
        if transport is None or not transport.is_active():
            raise TransportError("the connection has closed")
        chan = transport.open_session(timeout=timeout)
        if command is not None:  # None: only see that a session opens
            chan.exec_command(command)
        return chan


def _relay(chan: Any, sock: socket.socket) -> None:
    """Relay one channel: stdin frames from the client to it, its stdout, stderr and
    exit status back as frames; ends when the channel does or the client goes."""
    fd = chan.fileno()
    buffer = b""
    client_open = True
    try:
        while True:
            readable, _, _ = select.select([fd, sock] if client_open else [fd], [], [])
            if fd in readable:
                while chan.recv_ready():
                    data = chan.recv(65536)
                    sock.sendall(persist.FRAME.pack(persist.STDOUT, len(data)) + data)
                while chan.recv_stderr_ready():
                    data = chan.recv_stderr(65536)
                    sock.sendall(persist.FRAME.pack(persist.STDERR, len(data)) + data)
                if (chan.eof_received or chan.closed) and not chan.recv_ready() \
                        and not chan.recv_stderr_ready():
                    status = chan.recv_exit_status()
                    sock.sendall(persist.FRAME.pack(persist.EXIT, 4)
                                 + status.to_bytes(4, "big", signed=True))
                    return
            if sock in readable:
                data = sock.recv(65536)
                if not data:  # the client is gone: so is its channel
                    return
                buffer += data
                while len(buffer) >= persist.FRAME.size:
                    kind, size = persist.FRAME.unpack_from(buffer)
                    if len(buffer) < persist.FRAME.size + size:
                        break
                    payload = buffer[persist.FRAME.size:persist.FRAME.size + size]
                    buffer = buffer[persist.FRAME.size + size:]
                    if kind == persist.STDIN:
                        chan.sendall(payload)
                    elif kind == persist.STDIN_EOF:
                        chan.shutdown_write()
    except OSError:
        pass
    finally:
        chan.close()


def main(argv: List[str]) -> int:
    folder = argv[0]
    if os.fork():  # the first process returns at once; the broker lives on alone
        os._exit(0)
    persist.private_dir(folder, create=False)
    os.umask(0o077)
    path = os.path.join(folder, persist.SOCKET)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(128)
    pidfile = os.path.join(folder, persist.PIDFILE)
    with open(pidfile + ".tmp", "w") as fh:
        fh.write("%d\n" % os.getpid())
    os.replace(pidfile + ".tmp", pidfile)
    sys.stdout.write("ready %d\n" % os.getpid())
    sys.stdout.flush()
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 1)
    os.dup2(null, 0)
    os.close(null)
    from . import _paramiko  # noqa: F401 - loaded while the first client's request comes

    Broker(folder, server).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
