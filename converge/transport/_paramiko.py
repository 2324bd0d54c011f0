"""paramiko, and the two classes converge derives from it: imported only when a
connection is really made here (a direct run, or the broker of warm connections),
so that a run through a warm connection (converge/transport/persist.py) never pays
for paramiko and cryptography at start-up."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import Any

# paramiko's config module imports invoke, when installed, only to run "Match exec"
# lines: 70 ms (unittest.mock, a vendored yaml...) on every push. It is left out
# here and brought in by ssh._ssh_config for a config that has such a line.
_blocked = "invoke" not in sys.modules
if _blocked:
    sys.modules["invoke"] = None  # type: ignore[assignment]
try:
    import paramiko
finally:
    if _blocked:
        del sys.modules["invoke"]

# paramiko logs a failed connection from its transport thread with a traceback
# ("Exception (client): Error reading SSH protocol banner"), which Python's
# last-resort handler prints; the same failure is raised as one line instead.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

#: what paramiko and the socket layer raise (ValueError: a ProxyCommand with a
#: stray quote, a malformed key; EOFError: a server that hangs up mid-handshake)
LIBRARY_ERRORS = (OSError, EOFError, ValueError, paramiko.SSHException)
_known_hosts_lock = threading.Lock()


class HostKeyPolicy(paramiko.MissingHostKeyPolicy):
    """Unknown host: refuse, saying how to accept; or record it (accept-new)."""

    def __init__(self, name: str, known_hosts: str, accept_new: bool) -> None:
        self.name = name
        self.known_hosts = known_hosts
        self.accept_new = accept_new

    def missing_host_key(self, client: Any, hostname: str, key: paramiko.PKey) -> None:
        from ..errors import HostKeyError

        if not self.accept_new:
            raise HostKeyError(
                "unknown host key (%s %s) for %s, not in %s"
                % (key.get_name(), key.fingerprint, hostname, self.known_hosts),
                host=self.name,
                hint="if this is the host you expect, run again with --accept-new to "
                     "record its key (as ssh's StrictHostKeyChecking=accept-new)")
        line = "%s %s %s\n" % (hostname, key.get_name(), key.get_base64())
        with _known_hosts_lock:
            folder = os.path.dirname(self.known_hosts)
            if folder:
                os.makedirs(folder, mode=0o700, exist_ok=True)
            with open(self.known_hosts, "a") as fh:
                fh.write(line)
        client.get_host_keys().add(hostname, key.get_name(), key)


class TimedClient(paramiko.SSHClient):
    """An SSHClient that times its authentication (for --profile): the rest of
    ``connect`` is the TCP connection, key exchange and host key check."""

    auth_seconds = 0.0

    def _auth(self, *args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        try:
            return super()._auth(*args, **kwargs)  # type: ignore[misc]
        finally:
            self.auth_seconds = time.monotonic() - started
