"""Push a plan to a host over SSH (paramiko), the agent bundle riding along.

One connection per host, ``TCP_NODELAY`` on its socket, keepalives and a TCP
user timeout so that a silently dead link fails the host (see ``_keepalive``).
Each request (facts, or a run) is one exec channel running the loader with the
target's ``python3``; the plan goes over stdin, events come back as JSON lines as
they happen (see converge/transport/bundle.py for the trip, docs/ssh.md for the
round trips).

Host keys are checked against known_hosts (the inventory's, the OpenSSH
config's UserKnownHostsFile, or ~/.ssh/known_hosts); an unknown host is refused
unless ``accept_new`` (which records it), a changed key always. OpenSSH client
config is honoured through paramiko's SSHConfig: HostName, User, Port,
IdentityFile, ProxyCommand, ProxyJump, UserKnownHostsFile.

Every paramiko and socket exception becomes a converge error in one place,
:func:`translate` (through :func:`_translated`), chained, as httpx maps its
backends' exceptions: a changed host key is a HostKeyError, refused credentials
an AuthError, anything else while connecting a ConnectError, and after that a
TransportError; an error the agent reports keeps its own kind (from_wire).
"""

from __future__ import annotations

import getpass
import importlib
import json
import os
import re
import secrets
import select
import shlex
import socket
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    Iterator,
    List,
    Optional,
    Tuple,
    Type,
    Union,
)

from ..agent.engine import Event
from ..errors import (
    AuthError,
    ConnectError,
    ConvergeError,
    HostKeyError,
    InventoryError,
    TransportError,
    from_wire,
    printable,
)
from ..inventory import Host, address_problem, parse_target, user_problem
from ..plan import Plan
from . import bundle

if TYPE_CHECKING:
    import paramiko


_import_lock = threading.Lock()


def _lib() -> Any:
    """converge/transport/_paramiko.py, imported on first use (see its docstring): by
    a thread warming a connection while the recipe compiles, often."""
    if __package__ + "._paramiko" not in sys.modules:
        with _import_lock:  # (see wait_for_imports)
            from . import _paramiko  # noqa: F401
    from . import _paramiko

    return _paramiko


def wait_for_imports() -> None:
    """The run is ending early (a compile error while hosts still connect): wait for
    a thread that is importing paramiko to finish. Python stopping a thread in the
    middle of importing cryptography's Rust extension, as the process exits, aborts
    the whole process ("FATAL: exception not rethrown", status -6, instead of the
    run's status 1)."""
    with _import_lock:
        pass



DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
DEFAULT_SSH_CONFIG = "~/.ssh/config"
MIN_PYTHON = (3, 8)
DEAD_AFTER = 3  # unacknowledged for this many timeouts: the link is dead (see _keepalive)


@dataclass
class Settings:
    """Where and how to connect, after the OpenSSH config is applied."""

    hostname: str
    port: int = 22
    user: str = ""
    keys: List[str] = field(default_factory=list)
    known_hosts: str = ""
    proxy_command: Optional[str] = None
    proxy_jump: List[str] = field(default_factory=list)


def resolve(host: Host, *, user: Optional[str] = None, key: Optional[str] = None,
            config_path: Optional[str] = None) -> Settings:
    """Combine the inventory (wins), the command line and the OpenSSH config. The
    address and user that come out are checked whatever gave them (inventory,
    ``-H``, ``--user``, the config's HostName, User and ProxyJump): see
    :func:`converge.inventory.address_problem`."""
    path = os.path.expanduser(host.ssh_config or config_path or DEFAULT_SSH_CONFIG)
    try:
        config = _ssh_config(path)
        found: Dict[str, Any] = config.lookup(host.hostname) if config else {}
    except (OSError, UnicodeError, _lib().paramiko.SSHException) as exc:
        raise InventoryError("ssh config %s: %s" % (path, printable(_reason(exc))),
                             host=host.name) from exc
    config_where = "ssh config %s, Host %s" % (path, printable(host.hostname))
    hostname = found.get("hostname", host.hostname)
    chosen_user = host.user or user or found.get("user")
    for where, problem in (
        (config_where + ", HostName" if hostname != host.hostname else "address",
         address_problem(hostname)),
        ("user" if host.user else "--user" if user else config_where + ", User",
         user_problem(chosen_user) if chosen_user else None),
    ):
        if problem:
            raise InventoryError("%s: %s" % (where, problem), host=host.name)
    try:
        port = int(host.port or found.get("port") or 22)
    except ValueError:
        raise InventoryError("%s, Port: port '%s' is not a number" % (
            config_where, printable(str(found.get("port")))), host=host.name) from None
    keys = [host.key] if host.key else [key] if key else []
    if not keys:
        keys = [os.path.expanduser(k) for k in found.get("identityfile", [])
                if os.path.exists(os.path.expanduser(k))]
    known = host.known_hosts or (found.get("userknownhostsfile") or "").split(" ")[0] \
        or DEFAULT_KNOWN_HOSTS
    command = found.get("proxycommand")
    jump = found.get("proxyjump")
    hops = [] if not jump or jump.lower() == "none" else jump.split(",")
    for hop in hops:
        parse_target(hop, source="ssh config %s, ProxyJump" % path)
    return Settings(
        hostname=hostname,
        port=port,
        user=chosen_user or getpass.getuser(),
        keys=keys, known_hosts=os.path.expanduser(known),
        proxy_command=None if not command or command.lower() == "none" else command,
        proxy_jump=hops,
    )


MATCH_EXEC = re.compile(r"^\s*match\b.*\bexec\b", re.IGNORECASE | re.MULTILINE)


@lru_cache(maxsize=8)
def _ssh_config(path: str) -> Optional[paramiko.SSHConfig]:
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8", errors="replace") as fh:
        text = fh.read()
    library = _lib().paramiko
    config_module = vars(library.config)  # types-paramiko does not declare invoke
    if MATCH_EXEC.search(text) and config_module.get("invoke") is None:
        try:  # see the top of _paramiko.py
            config_module["invoke"] = importlib.import_module("invoke")
        except ImportError:
            pass  # paramiko says "Match exec" needs invoke when the line is used
    config: paramiko.SSHConfig = library.SSHConfig.from_text(text)
    return config


@lru_cache(maxsize=32)
def _load_key(path: str) -> paramiko.PKey:
    key: paramiko.PKey = _lib().paramiko.PKey.from_path(path)
    return key


_known_hosts_files: Dict[str, Tuple[Tuple[int, int], paramiko.HostKeys]] = {}
_known_hosts_lock = threading.Lock()


def _known_keys(path: str, name: str) -> List[Tuple[str, paramiko.PKey]]:
    """(key type, key) that known_hosts file ``path`` records for ``name`` (an
    address, or ``[address]:port``), as paramiko's own lookup finds them. The file
    is parsed once, and again only when it changes (a key accepted): not once per
    host, since it holds a line per host (200 hosts parsed 200 lines each, 12 ms a
    host, under a lock paramiko's parser takes for every line)."""
    info = os.stat(path)
    stamp = (info.st_mtime_ns, info.st_size)
    with _known_hosts_lock:
        cached = _known_hosts_files.get(path)
        if cached is None or cached[0] != stamp:
            keys = _lib().paramiko.HostKeys()
            keys.load(path)
            cached = _known_hosts_files[path] = (stamp, keys)
    found = cached[1].lookup(name)
    return [] if found is None else [(kind, found[kind]) for kind in dict.fromkeys(found)]


def library_errors() -> Tuple[Type[BaseException], ...]:
    """What paramiko and the socket layer raise (see _paramiko.LIBRARY_ERRORS)."""
    errors: Tuple[Type[BaseException], ...] = _lib().LIBRARY_ERRORS
    return errors


def translate(exc: BaseException, *, host: str, doing: str, where: str = "",
              kind: Type[TransportError] = TransportError, settings: Optional[Settings] = None,
              hint: Optional[str] = None, after: str = "") -> TransportError:
    """The converge error a paramiko or socket exception is, raised while ``doing``
    (``"cannot connect to root@web1:22"``: the message is ``doing``, the reason,
    then ``after``) with ``where`` (``root@web1:22``): a key the host sent that
    differs from known_hosts is a HostKeyError, credentials it refused an
    AuthError, no key to offer an AuthError, anything else ``kind``."""
    paramiko = _lib().paramiko
    if isinstance(exc, paramiko.BadHostKeyException) and settings is not None:
        return HostKeyError(
            "HOST KEY CHANGED for %s: %s sent %s %s, but %s records %s. Someone may be "
            "intercepting the connection; refusing to connect"
            % (where, settings.hostname, exc.key.get_name(), exc.key.fingerprint,
               settings.known_hosts, exc.expected_key.fingerprint), host=host,
            hint="if the host was really reinstalled, remove its old key with "
                 "`ssh-keygen -R %s -f %s` and run again with --accept-new"
                 % (settings.hostname, settings.known_hosts))
    if isinstance(exc, paramiko.AuthenticationException):
        return AuthError("%s refused our credentials: %s" % (where, exc), host=host,
                         hint="check the user and key (inventory user/key, --user, "
                              "IdentityFile) or load the key into ssh-agent")
    if str(exc) == "No authentication methods available":  # paramiko had no key
        return AuthError("no key to offer %s: none given for the host, none in ~/.ssh and "
                         "no ssh-agent" % where, host=host,
                         hint="give the host a key (inventory key, --key, IdentityFile) or "
                              "load one into ssh-agent")
    return kind("%s: %s%s" % (doing, _reason(exc), after), host=host, hint=hint)


@contextmanager
def _translated(host: str, doing: Union[str, Callable[[], str]], *, where: str = "",
                kind: Type[TransportError] = TransportError,
                settings: Optional[Settings] = None, hint: Optional[str] = None,
                after: str = "", cleanup: Optional[Callable[[], None]] = None
                ) -> Iterator[None]:
    """Run a block whose library exceptions become :func:`translate`'s error (and
    whose converge errors pass), calling ``cleanup`` (close a socket) on either."""
    try:
        yield
    except ConvergeError:
        if cleanup is not None:
            cleanup()
        raise
    except Exception as exc:
        if not isinstance(exc, library_errors()):
            raise
        if cleanup is not None:
            cleanup()
        text = doing() if callable(doing) else doing
        raise translate(exc, host=host, doing=text, where=where, kind=kind,
                        settings=settings, hint=hint, after=after) from exc


class SSHTransport:
    """A host reached over SSH: ``facts()`` and ``run(plan)`` as the local transport."""

    def __init__(self, host: Host, *, user: Optional[str] = None, key: Optional[str] = None,
                 become: Optional[bool] = None, become_password: Optional[str] = None,
                 accept_new: bool = False, ssh_config: Optional[str] = None,
                 timeout: float = 10.0, debug: bool = False, keep_runs: int = 50,
                 lock_timeout: float = 60.0,
                 on_notice: Optional[Callable[[str], None]] = None,
                 on_output: Optional[Callable[[str], None]] = None,
                 persist: float = 0.0, persist_dir: Optional[str] = None) -> None:
        self.target = host
        self.host = host.name
        # persist > 0: channels come from this user's broker of warm connections
        # (converge/transport/persist.py), which resolves the OpenSSH config and
        # connects; the settings here are the broker's once it answered
        self.persist = persist
        self.persist_dir = persist_dir
        self.reused = False  # the last channel came on a connection kept from before
        self._connected_for = 0.0  # seconds connecting since _connecting() last asked
        self._options = {"user": user, "key": key, "ssh_config": ssh_config}
        if persist > 0:
            self.settings = Settings(hostname=host.hostname, port=int(host.port or 22),
                                     user=host.user or user or "")
        else:
            self.settings = resolve(host, user=user, key=key, config_path=ssh_config)
        self.become = host.become if become is None else (become or host.become)
        self.become_password = become_password
        self.accept_new = accept_new
        self.timeout = timeout
        self.debug = debug
        self.keep_runs = keep_runs  # the run journal's retention on the target
        self.lock_timeout = lock_timeout  # how long to wait for the target's run lock
        self.on_notice = on_notice  # hears the agent's notices (waiting for the lock)
        self.on_output = on_output  # hears each line the agent writes to stderr (live=True)
        self.python = ""  # the target's Python version, after the first request
        self.maxrss_kb = 0  # the agent's peak memory in the last run
        self.commands = 0  # exec channels opened (round trips are in docs/ssh.md)
        # seconds spent connecting (TCP, key exchange, host key; jump hosts too),
        # authenticating and starting the agent of the last request (exec to its
        # handshake, and the bundle when sent); when that request's run began
        # (time.monotonic()); the agent's CPU seconds: what --profile shows (runner.py)
        self.profile: Dict[str, Any] = {"connect": 0.0, "auth": 0.0, "agent_start": 0.0,
                                        "bundle_sent": False, "run_started": None,
                                        "agent_cpu": None}
        self._client: Optional[paramiko.SSHClient] = None
        self._hops: List[paramiko.SSHClient] = []
        self._facts: Optional[Dict[str, Any]] = None
        self._warm_lock = threading.Lock()
        self._warming: Optional[threading.Event] = None  # set once warm() has ended
        self._warm_chan: Optional[Any] = None  # a paramiko Channel or a RelayChannel
        self._warm_hello: Optional[Tuple[Any, str, float]] = None  # see _take_warm
        self._warm_error: Optional[BaseException] = None
        self._abandoned = False  # closed while warm() was still connecting

    # -- the transport interface ------------------------------------------------

    def facts(self) -> Dict[str, Any]:
        """The target's facts: one command, gathered once per run."""
        if self._facts is None:
            reply = self._request({"op": "facts"})
            self._facts = dict(reply["facts"])
        return self._facts

    def run(self, plan: Plan, *, mode: str = "apply", fail_fast: bool = False,
            emit: Optional[Callable[[Event], None]] = None) -> List[Event]:
        events, reply = self._events({"op": "run", "mode": mode, "fail_fast": fail_fast,
                                      "plan": plan.to_dict()}, emit, len(plan.steps))
        self.maxrss_kb = int(reply.get("maxrss_kb") or 0)
        self.profile["agent_cpu"] = reply.get("cpu")
        return events

    def _events(self, request: Dict[str, Any], emit: Optional[Callable[[Event], None]],
                expected: int = 0) -> Tuple[List[Event], Dict[str, Any]]:
        """A request that converges (a run, a rollback): the events, each also given
        to ``emit`` as it arrives, and the agent's closing reply."""
        events: List[Event] = []

        def collect(event: Event) -> None:
            events.append(event)
            if emit:
                emit(event)

        request.update(debug=self.debug, keep_runs=self.keep_runs,
                       lock_timeout=self.lock_timeout)
        return events, self._request(request, collect, expected=expected)

    def history(self) -> List[Dict[str, Any]]:
        """The target's run journal (see converge/agent/journal.py)."""
        return list(self._request({"op": "history"})["history"])

    def preview_rollback(self, run_id: Optional[str] = None) -> Dict[str, Any]:
        return dict(self._request({"op": "rollback", "run": run_id, "preview": True})["preview"])

    def rollback(self, run_id: Optional[str] = None, *, force: bool = False, yes: bool = False,
                 emit: Optional[Callable[[Event], None]] = None) -> List[Event]:
        """Roll back a run on the target, as the agent there does it."""
        return self._events({"op": "rollback", "run": run_id, "force": force, "yes": yes},
                            emit)[0]

    def warm(self) -> None:
        """Connect and start the agent's loader before the first request needs it.

        The runner calls this on a thread while it compiles the recipe, so the
        connection and the target's Python start-up overlap the compile. The loader
        says hello (its handshake, read here) and waits for its request line; the
        first request uses that channel. An error here is raised by the first
        request, as if it had happened there.
        """
        with self._warm_lock:
            if self._warming is not None:
                return
            self._warming = threading.Event()
        try:
            if self.become_password is None:  # sudo -S: its prompt comes first
                started = time.monotonic()
                chan, _ = self._channel(bundle.build()[1])
                started += self._connecting(started)
                self._warm_chan = chan
                out = chan.makefile("rb", -1)
                self._warm_hello = (out, self._hello(chan, out, b""),
                                    time.monotonic() - started)
            elif not self.persist:
                self.connect()
        except BaseException as exc:  # noqa: BLE001 - raised by the first request
            self._warm_error = exc
            if self._warm_chan is not None:  # its loader failed to start
                self._warm_chan.close()
                self._warm_chan = None
        finally:
            with self._warm_lock:
                self._warming.set()
                if self._abandoned:
                    self._close_now()

    def _take_warm(self) -> Optional[Tuple[Any, Any, str, float]]:
        """The channel warm() started, with its output, its handshake line and the
        seconds the agent took to say it (None if warm() did not run), once warm()
        ended."""
        if self._warming is None:
            return None
        self._warming.wait()
        error, self._warm_error = self._warm_error, None
        chan, self._warm_chan = self._warm_chan, None
        hello, self._warm_hello = self._warm_hello, None
        if error is not None:
            raise error
        if chan is None or hello is None:
            return None
        return (chan,) + hello

    def close(self) -> None:
        """Close the connection. While warm() is still connecting (the run stopped
        at a compile error), do not wait for it: it closes what it opened itself."""
        with self._warm_lock:
            if self._warming is not None and not self._warming.is_set():
                self._abandoned = True
                return
        self._close_now()

    def _close_now(self) -> None:
        if self._warm_chan is not None:
            self._warm_chan.close()
            self._warm_chan = None
        for client in [self._client] + self._hops[::-1]:
            if client is not None:
                client.close()
        self._client, self._hops = None, []

    # -- connecting -----------------------------------------------------------------

    def connect(self) -> paramiko.SSHClient:
        if self._client is None:
            via = None
            for hop in self.settings.proxy_jump:
                target = parse_target(hop, source="ProxyJump")  # checked by resolve()
                target.name, target.ssh_config = hop, self.target.ssh_config
                hop_settings = resolve(target)
                hop_settings.proxy_jump, hop_settings.proxy_command = [], None
                via = self._open(hop_settings, via, "jump host " + hop)
                self._hops.append(via)
            self._client = self._open(self.settings, via, "")
        return self._client

    def _open(self, s: Settings, via: Optional[paramiko.SSHClient], what: str
              ) -> paramiko.SSHClient:
        where = "%s@%s:%d%s" % (s.user, s.hostname, s.port, " (%s)" % what if what else "")
        started = time.monotonic()
        sock: Any
        proxy = " (ProxyCommand %s)" % s.proxy_command if s.proxy_command else ""
        with _translated(self.host, "cannot connect to %s" % where, kind=ConnectError,
                         after=proxy):
            if s.proxy_command:  # shlex-split: a stray quote is a ValueError
                sock = _lib().paramiko.ProxyCommand(s.proxy_command)
            elif via is not None:
                transport = via.get_transport()
                assert transport is not None
                sock = transport.open_channel("direct-tcpip", (s.hostname, s.port),
                                              ("127.0.0.1", 0), timeout=self.timeout)
            else:
                sock = socket.create_connection((s.hostname, s.port), timeout=self.timeout)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if hasattr(socket, "TCP_USER_TIMEOUT"):  # Linux: see _keepalive
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT,
                                    int(self.timeout * DEAD_AFTER * 1000))
        client: Any = _lib().TimedClient()  # a paramiko.SSHClient
        known = s.known_hosts
        with _translated(self.host, "cannot read known hosts %s" % known, kind=HostKeyError,
                         cleanup=sock.close):
            if os.path.exists(known):
                name = s.hostname if s.port == 22 else "[%s]:%d" % (s.hostname, s.port)
                for keytype, key in _known_keys(known, name):
                    client.get_host_keys().add(name, keytype, key)
        client.set_missing_host_key_policy(_lib().HostKeyPolicy(self.host, known,
                                                                self.accept_new))
        with _translated(self.host, "cannot load key %s" % (s.keys[0] if s.keys else ""),
                         kind=AuthError, cleanup=sock.close,
                         hint="keys with a passphrase are used through ssh-agent"):
            pkeys = [_load_key(k) for k in s.keys]
        with _translated(self.host, "cannot connect to %s" % where, where=where,
                         kind=ConnectError, settings=s, cleanup=client.close):
            client.connect(s.hostname, port=s.port, username=s.user,
                           pkey=pkeys[0] if pkeys else None, sock=sock,
                           timeout=self.timeout, banner_timeout=self.timeout,
                           auth_timeout=self.timeout, allow_agent=True,
                           look_for_keys=not pkeys)
        transport = client.get_transport()
        if transport is not None:
            transport.set_keepalive(self._keepalive())
        self.profile["auth"] += client.auth_seconds
        self.profile["connect"] += time.monotonic() - started - client.auth_seconds
        self._connected_for += time.monotonic() - started
        made: paramiko.SSHClient = client
        return made

    def _keepalive(self) -> int:
        """Seconds between keepalives: ``timeout``, at most 15. With TCP_USER_TIMEOUT
        at DEAD_AFTER timeouts, a link that dies without a FIN or RST (cable, route,
        firewall) fails the host within about (1 + DEAD_AFTER) timeouts instead of
        hanging the run for TCP's quarter of an hour; a live but silent agent (a
        long apt-get) keeps its connection, since the peer's kernel acks them."""
        return max(1, int(min(15.0, self.timeout)))

    # -- one request ----------------------------------------------------------------

    def _channel(self, digest: str) -> Tuple[Any, Optional[str]]:
        """A channel running the loader of agent ``digest``, and sudo's prompt marker
        when it will ask for the become password: on a warm connection through the
        broker (``persist``), else on this transport's own connection."""
        if self.persist > 0:
            from .persist import PersistError

            try:
                return self._relayed(digest)
            except PersistError as exc:  # the broker cannot be used: connect directly
                self._persist_failed(exc)
        client = self.connect()
        command, prompt = self._command(digest)
        transport = client.get_transport()
        if transport is None or not transport.is_active():
            raise TransportError("the connection to %s has closed" % self.host, host=self.host)
        chan = transport.open_session(timeout=self.timeout)
        self.commands += 1
        chan.exec_command(command)
        return chan, prompt

    def _connecting(self, since: float) -> float:
        """Of the time since ``since``, what the last channel spent connecting and
        authenticating (counted as such in the profile, not as starting the agent)."""
        spent = self._connected_for
        self._connected_for = 0.0
        return min(spent, time.monotonic() - since)

    def _relayed(self, digest: str) -> Tuple[Any, Optional[str]]:
        """A channel from the broker (see converge/transport/persist.py): it resolves the
        host, reuses or makes the connection, and runs the command built here from the
        settings it found. Only how to reach the host goes to it: no vars, no secret."""
        from . import persist

        prompts: List[Optional[str]] = []

        def command(found: Dict[str, Any]) -> str:
            self.settings = Settings(hostname=found["hostname"], port=int(found["port"]),
                                     user=found["user"])
            text, prompt = self._command(digest)
            prompts.append(prompt)
            return text

        target = self.target
        spec = {"host": {"name": target.name, "address": target.address, "port": target.port,
                         "user": target.user, "key": target.key,
                         "known_hosts": target.known_hosts, "ssh_config": target.ssh_config},
                **self._options, "accept_new": self.accept_new, "timeout": self.timeout,
                "persist": self.persist, "auth_sock": os.environ.get("SSH_AUTH_SOCK")}
        opened = persist.open_channel(spec, self.host, command, self.persist_dir,
                                      spare=self.become_password is None)
        self.commands += 1
        self.reused = bool(opened.reply.get("reused"))
        connect = float(opened.reply.get("connect") or 0.0)
        auth = float(opened.reply.get("auth") or 0.0)
        self.profile["connect"] += connect
        self.profile["auth"] += auth
        self._connected_for += connect + auth
        return opened.channel, prompts[-1]

    def _persist_failed(self, exc: BaseException) -> None:
        """Warm connections cannot be used here (an unsafe folder, a broker that does
        not start): say so once, and connect directly from now on."""
        from . import persist

        self.persist = 0.0
        self.settings = resolve(self.target, **{
            "user": self._options["user"], "key": self._options["key"],
            "config_path": self._options["ssh_config"]})
        if persist.warn_once() and self.on_notice is not None:
            self.on_notice("warm connections not used: %s" % exc)

    def _command(self, digest: str) -> Tuple[str, Optional[str]]:
        python = self.target.python or "python3"
        argv = [python, "-I", "-S", "-c", bundle.loader_source(digest)]
        prompt = None
        as_user = self.target.become_user or "root"
        if self.become and self.settings.user != as_user:
            who = ["-u", as_user] if as_user != "root" else []
            if self.become_password is not None:
                prompt = "[converge-become-%s]" % secrets.token_hex(4)
                argv = ["sudo", "-S", "-p", prompt, *who, "--"] + argv
            else:
                argv = ["sudo", "-n", *who, "--"] + argv
        return " ".join(shlex.quote(a) for a in argv), prompt

    def _request(self, request: Dict[str, Any], on_event: Optional[Callable[[Event], None]]
                 = None, expected: int = 0) -> Dict[str, Any]:
        seen = 0
        with _translated(self.host, "cannot start the agent"):
            warm = self._take_warm()
        data, digest = bundle.build()
        line = json.dumps(request, separators=(",", ":")).encode() + b"\n"
        prompt: Optional[str] = None
        with _translated(self.host, lambda: "connection lost mid-run, after %d of %s resources"
                         % (seen, expected or "?")):
            if warm is not None:
                chan, out, text, agent_start = warm  # its loader has said hello already
                chan.sendall(line)
            else:
                started = time.monotonic()
                chan, prompt = self._channel(digest)
                started += self._connecting(started)
                stderr = b""
                if prompt is None:
                    try:
                        chan.sendall(line)  # pipelined: the loader reads it after its handshake
                    except OSError:  # it ended already (no python3...): the handshake says why
                        pass
                else:
                    stderr = self._sudo_password(chan, prompt.encode())
                out = chan.makefile("rb", -1)
                text = self._hello(chan, out, stderr)
                agent_start = time.monotonic() - started
            try:
                _, need, python = bundle.parse_handshake(text)
            except ValueError as exc:
                raise TransportError(str(exc), host=self.host) from exc
            self.python = python
            if tuple(int(p) for p in python.split(".")[:2]) < MIN_PYTHON:
                chan.close()
                raise TransportError(
                    "python3 on the target is %s; converge needs %d.%d or newer"
                    % ((python,) + MIN_PYTHON), host=self.host)
            if prompt is not None:
                chan.sendall(line)
            # stderr (execute's live output) is read as it comes, beside stdout: unread,
            # it would fill the channel's window and block the agent (and its command)
            errors = _Stderr(chan, self.on_output)
            if need:
                started = time.monotonic()
                chan.sendall(b"%d\n" % len(data) + data)
                agent_start += time.monotonic() - started
            self.profile.update(agent_start=agent_start, bundle_sent=need,
                                run_started=time.monotonic())
            for raw in iter(out.readline, b""):
                message = json.loads(raw)
                if "event" in message:
                    seen += 1
                    if on_event:
                        on_event(message["event"])
                elif "notice" in message:
                    if self.on_notice:
                        self.on_notice(message["notice"])
                elif "error" in message:  # the agent's error, as its own kind
                    raise from_wire(message, self.host)
                else:
                    if errors.count:  # sshd may send the last of stderr after stdout's end
                        errors.drain()
                    chan.close()
                    return dict(message)
            status = chan.recv_exit_status() if chan.exit_status_ready() else -1
            err = errors.tail()
            raise TransportError(
                "connection lost mid-run, after %d of %s resources%s"
                % (seen, expected or "?", (" (agent exit %d: %s)" % (status, err[-300:]))
                   if status > 0 else ""),
                host=self.host, hint="run again: converge is idempotent; resources not "
                                     "reported may or may not have been applied")

    def _hello(self, chan: Any, out: Any, stderr: bytes) -> str:
        """The loader's handshake line (what came before it is noise, kept for the
        error when there is no handshake: no python3, sudo refusing...)."""
        noise: List[str] = []
        while True:
            raw = out.readline()
            if not raw:
                raise self._did_not_start(chan, stderr, noise)
            text: str = raw.decode("utf-8", "replace").strip()
            if text.startswith(bundle.HANDSHAKE + " "):
                return text
            noise.append(text)

    def _sudo_password(self, chan: Any, prompt: bytes) -> bytes:
        """Answer sudo's prompt (only when it asks); return what it wrote to stderr."""
        assert self.become_password is not None
        fd = chan.fileno() if not hasattr(chan, "wait_readable") else -1
        err = b""
        answered = False
        deadline = time.monotonic() + self.timeout
        while True:
            if chan.recv_ready():
                return err
            if chan.recv_stderr_ready():
                err += chan.recv_stderr(4096)
                if prompt in err:
                    if answered:
                        chan.close()
                        error = AuthError("sudo refused the become password for %s"
                                          % self.settings.user, host=self.host)
                        error.unreachable = False  # type: ignore[attr-defined]
                        raise error
                    chan.sendall(self.become_password.encode() + b"\n")
                    answered = True
                    err = err.split(prompt)[-1]
                continue
            if chan.exit_status_ready():
                return err
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TransportError("sudo did not answer within %.0fs" % self.timeout,
                                     host=self.host)
            if hasattr(chan, "wait_readable"):  # relayed by the broker
                chan.wait_readable(remaining)
            else:
                select.select([fd], [], [], remaining)

    def _did_not_start(self, chan: Any, stderr: bytes, noise: List[str]
                       ) -> Exception:
        """Why the loader never said hello: no python3, sudo wanting a password…"""
        status = chan.recv_exit_status()
        err = (stderr + chan.makefile_stderr("rb").read()).decode("utf-8", "replace").strip()
        detail = "; ".join(x for x in (err, " ".join(noise)) if x)[-400:]
        error: Exception
        if "password is required" in err or "a terminal is required" in err:
            error = AuthError("sudo needs a password for %s to become root"
                              % self.settings.user, host=self.host,
                              hint="run with --ask-become-pass, or allow passwordless sudo")
            error.unreachable = False  # type: ignore[attr-defined]
        elif "sudo" in err and ("not in the sudoers" in err or "not allowed" in err):
            error = AuthError("%s may not use sudo here: %s" % (self.settings.user, err),
                              host=self.host)
            error.unreachable = False  # type: ignore[attr-defined]
        elif status == 127 and "sudo" in err and "python3" not in err:
            error = TransportError("sudo is not installed on the target (needed by become)",
                                   host=self.host)
        elif status == 127 or "python3" in err:
            error = TransportError(
                "python3 not found on the target (exit %d: %s)" % (status, detail),
                host=self.host,
                hint="converge runs its agent with the target's own python3 (3.8 or newer, "
                     "standard library only): install it, e.g. apt-get install python3, or "
                     "put it on the PATH of %s" % self.settings.user)
        else:
            error = TransportError("the agent did not start (exit %d): %s"
                                   % (status, detail or "no output"), host=self.host)
        return error


class _Stderr:
    """Reads a channel's stderr on a thread as it comes: each line goes to
    ``on_line`` (what is not a whole line yet waits for its end), the last few
    kilobytes are kept for an error message."""

    KEEP = 4096

    def __init__(self, chan: Any, on_line: Optional[Callable[[str], None]]
                 ) -> None:
        self.chan = chan
        self.on_line = on_line
        self.kept = b""
        self.count = 0  # bytes read
        self.thread = threading.Thread(target=self._read, name="ssh-stderr", daemon=True)
        self.thread.start()

    def _read(self) -> None:
        pending = b""
        while True:
            try:
                data = self.chan.recv_stderr(65536)
            except Exception:  # noqa: BLE001 - the channel's end, however it comes
                data = b""
            if not data:
                break
            self.count += len(data)
            self.kept = (self.kept + data)[-self.KEEP:]
            *lines, pending = (pending + data).split(b"\n")
            for line in lines:
                self._emit(line)
        if pending:
            self._emit(pending)

    def _emit(self, line: bytes) -> None:
        if self.on_line is not None:
            self.on_line(line.decode("utf-8", "replace"))

    def drain(self, idle: float = 2.0) -> None:
        """Wait until stderr ends (the agent exits after its last message), as long
        as it keeps coming: at most ``idle`` seconds without a byte."""
        while self.thread.is_alive():
            seen = self.count
            self.thread.join(timeout=idle)
            if self.count == seen:
                return

    def tail(self) -> str:
        """The end of what was read (after waiting a moment for the rest)."""
        self.thread.join(timeout=2)
        return self.kept.decode("utf-8", "replace").strip()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
