"""The ``converge`` command's entry point: hand the run to a ready controller.

A run's own start-up (the interpreter, then typer, PyYAML, Jinja2 and converge's
modules) costs more CPU than a whole no-op run over a warm connection. So the
first run that keeps connections (``--persist``, on by default) also starts this
user's *ready controller* (converge/resident.py): a process that has imported all
of that once and waits, beside the broker of warm connections, in the same
private folder. The next ``apply``, ``plan`` or ``check`` hands it the command
line, the environment, the working folder, the umask and its standard input,
output and error (as file descriptors); the ready controller forks, and the fork
runs the command exactly as this process would have, then exits with its status,
which this process exits with. ::

    converge apply ... ──unix socket──▶ ready controller ──fork──▶ the run
      (fds 0 1 2, cwd)                  (imports done)              (exit status ◀──)

The run is done here instead (and nothing is asked of it) when: the command is
not apply, plan or check; connections are not kept (``--no-persist``,
``--persist no``, ``$CONVERGE_SSH_PERSIST=no``); it asks for a password
(``--ask-vault-pass``, ``-K``); no ready controller runs; or the one that runs
was started from another converge or Python (its *stamp* differs: the
interpreter, its flags and search path, the ``PYTHON*`` and locale variables,
groups and resource limits, the files of converge's package and of the
folders on ``sys.path``, by size and time: an upgrade or an edit is noticed and
the stale one exits).

Signals this process gets (Ctrl-C, SIGTERM, SIGHUP) are passed on to the run;
if this process dies, the run gets SIGHUP. Security is the broker's: the folder
is private (0700, this user's, not a symlink) and each end checks the other's
uid (``SO_PEERCRED``); the ready controller never sees the environment (the
fork reads it): nothing secret is kept in it.

Only the standard library, and as little of it as possible: this module is what
every ``converge`` command imports first.
"""

import os
import sys

COMMANDS = ("apply", "plan", "check")
#: options that prompt for a secret on the terminal: such a run is done here
PROMPTS = ("--ask-vault-pass", "--ask-become-pass", "-K")
#: options that name hosts: a run with them keeps connections, and starts the ready
#: controller (a local run starts none)
TARGETS = ("-i", "--inventory", "-H", "--host")
SOCKET = "resident.sock"
ENV_PERSIST = "CONVERGE_SSH_PERSIST"
ENV_DIR = "CONVERGE_SSH_DIR"
DEFAULT_PERSIST = 60.0
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}
#: the environment that changes what the interpreter does at start-up
_STAMP_ENV = ("LANG", "LC_ALL", "LC_CTYPE")


def main() -> None:
    """``converge ...``: through the ready controller when it can, else here."""
    argv = sys.argv[1:]
    seconds = keep_seconds(argv)
    if seconds and argv and argv[0] in COMMANDS and not any(a in PROMPTS for a in argv):
        code = handed(argv, seconds)
        if code is not None:
            sys.exit(code)
        if any(a in TARGETS or a.startswith(("--host=", "--inventory=")) for a in argv):
            from .resident import prestart  # now: it imports while this run does

            prestart(seconds)
    from .cli import main as run_here

    run_here()


# -- durations and the folder (shared with converge/transport/persist.py) -----------------


def duration(text: str) -> "float | None":
    """``60s``, ``5m``, ``1h``, ``0.5s``, ``90`` → seconds; ``no``, ``off``, ``0`` → 0;
    None when it is not a duration."""
    value = text.strip().lower()
    if value in ("no", "off", "false", "none", "0"):
        return 0.0
    number, unit = value, ""
    if value and value[-1] in "smh":
        number, unit = value[:-1], value[-1]
    try:
        seconds = float(number) * _UNITS[unit]
    except ValueError:
        return None
    if seconds < 0 or seconds != seconds or seconds == float("inf"):
        return None
    return seconds


def keep_seconds(argv: "list[str]") -> float:
    """How long this command keeps connections, as far as its arguments say (0 when
    it keeps none, or when that cannot be told without parsing them fully)."""
    if "--no-persist" in argv:
        return 0.0
    given = os.environ.get(ENV_PERSIST)
    seconds = duration(given) if given and given.strip() else DEFAULT_PERSIST
    for index, arg in enumerate(argv):
        if arg == "--persist":
            seconds = duration(argv[index + 1]) if index + 1 < len(argv) else None
        elif arg.startswith("--persist="):
            seconds = duration(arg[len("--persist="):])
    return seconds or 0.0


def directory() -> str:
    """This user's folder of warm connections (the broker's and the ready
    controller's): ``$CONVERGE_SSH_DIR``, else ``$XDG_RUNTIME_DIR/converge-ssh`` when
    that folder is the user's own and private, else ``~/.cache/converge/ssh`` (the
    home of the account, not ``$HOME``)."""
    import stat

    chosen = os.environ.get(ENV_DIR)
    if chosen:
        return os.path.abspath(chosen)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime):
        try:
            st = os.lstat(runtime)
        except OSError:
            st = None
        if st is not None and stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() \
                and not st.st_mode & 0o077:
            return os.path.join(runtime, "converge-ssh")
    import pwd

    home = pwd.getpwuid(os.geteuid()).pw_dir
    return os.path.join(home, ".cache", "converge", "ssh")


def private(folder: str) -> bool:
    """Is ``folder`` a real folder (not a symlink) of this user's, mode 0700?"""
    import stat

    try:
        st = os.lstat(folder)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o077


def stamp() -> str:
    """What must be the same in a run and in the ready controller that runs it: the
    interpreter and how it was started, the environment it read at start-up, the
    groups and limits a fork inherits, every file of converge's package by size and
    time, and every other folder on sys.path by time (``pip install`` changes the
    folder it installs into)."""
    import resource

    package = os.path.dirname(os.path.abspath(__file__))
    files = []
    folders = [package]
    while folders:
        folder = folders.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if entry.name == "__pycache__":
                continue
            if entry.is_dir(follow_symlinks=False):
                folders.append(entry.path)
            elif entry.name.endswith(".py"):
                st = entry.stat(follow_symlinks=False)
                files.append((entry.path, st.st_size, st.st_mtime_ns, st.st_ino))
    paths = []
    home = os.path.dirname(package)  # its converge files are stamped one by one above
    for folder in sys.path[1:]:  # [0]: the script's folder or the working folder (-m)
        if os.path.abspath(folder or ".") == home:
            continue
        try:
            st = os.stat(folder or ".")
        except OSError:
            continue
        paths.append((folder, st.st_mtime_ns, st.st_ino))
    limits = [resource.getrlimit(getattr(resource, name)) for name in sorted(dir(resource))
              if name.startswith("RLIMIT_")]
    return repr((sys.version, sys.executable, sys.prefix, sys.flags, sys._xoptions,
                 sys.path[1:], sorted((k, v) for k, v in os.environ.items()
                                  if k.startswith("PYTHON") or k in _STAMP_ENV),
                 os.getgid(), sorted(os.getgroups()), limits, paths, files))


# -- handing the run over -----------------------------------------------------------------


def handed(argv: "list[str]", seconds: float) -> "int | None":
    """Run ``argv`` in the ready controller; its exit status, or None when it could
    not be handed over (run it here)."""
    import _socket

    folder = directory()
    path = os.path.join(folder, SOCKET)
    if not private(folder) or not os.path.exists(path):
        return None
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(path)
        if peer_uid(sock) != os.geteuid():
            return None
        cwd = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
        try:
            request = _frame({"op": "run", "stamp": stamp(), "persist": seconds})
            fds = b"".join(fd.to_bytes(4, sys.byteorder, signed=True) for fd in (0, 1, 2, cwd))
            sock.sendmsg([request], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])
        finally:
            os.close(cwd)
        reply = _read(sock, 5)
    except OSError:
        sock.close()
        return None
    if len(reply) != 5 or reply[:1] != b"P":  # stale ("S"), or gone
        sock.close()
        return None
    pid = int.from_bytes(reply[1:], "big")
    try:  # the run reads this; until it has, it can still be given back (not here)
        sock.sendall(_frame({"argv": [sys.argv[0]] + argv, "path0": sys.path[0],
                             "env": dict(os.environ), "umask": _umask()}))
    except OSError:
        sock.close()
        return None
    return _wait(sock, pid)


def _wait(sock: "object", pid: int) -> int:
    """Pass signals on to the run (process ``pid``) until it says its exit status."""
    import signal

    try:
        target = os.pidfd_open(pid)
    except OSError:
        target = -1

    def forward(signum: int, frame: object) -> None:
        try:
            if target >= 0:
                signal.pidfd_send_signal(target, signum)
        except OSError:
            pass

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, forward)
    reply = _read(sock, 5)
    if len(reply) == 5 and reply[:1] == b"X":
        return int.from_bytes(reply[1:], "big", signed=True)
    sys.stderr.write("error: the run (process %d) ended without an exit status\n" % pid)
    return 1


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _frame(message: "dict[str, object]") -> bytes:
    import marshal

    data = marshal.dumps(message)
    return len(data).to_bytes(4, "big") + data


def _read(sock: "object", size: int) -> bytes:
    data = b""
    while len(data) < size:
        try:
            chunk = sock.recv(size - len(data))  # type: ignore[attr-defined]
        except InterruptedError:
            continue
        if not chunk:
            break
        data += chunk
    return data


def peer_uid(sock: "object") -> int:
    """The uid of the process at the other end of a Unix socket."""
    import _socket

    data = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)  # type: ignore
    return int.from_bytes(data[4:8], sys.byteorder)
