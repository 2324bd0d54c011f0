"""The run lock: one converge run that changes a machine at a time.

``lock`` in the state directory (/var/lib/converge, see journal.py) is locked
with ``flock``. The kernel releases it when the holder's process ends, however
it ends, so a run killed with SIGKILL never leaves a stale lock behind. The
holder writes its pid and start time into the file; a second run prints once
whom it waits for, polls until ``timeout`` seconds have passed, then fails with
a :class:`RunError` naming the holder. Apply and rollback take the lock; plan
and check only read, and do not. Standard library only, Python 3.8.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from typing import Any, Callable, Dict, Optional

from ..errors import RunError
from .journal import ensure_dir, state_dir

DEFAULT_TIMEOUT = 60.0
POLL = 0.1


class RunLock:
    """``with RunLock(system, timeout):`` holds the machine's run lock."""

    def __init__(self, system: Any, timeout: float = DEFAULT_TIMEOUT,
                 notice: Optional[Callable[[str], None]] = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.system = system
        self.timeout = max(0.0, float(timeout))
        self.notice = notice or (lambda text: None)
        self.clock = clock
        self.sleep = sleep
        self.path = state_dir(system) + "/lock"
        self._fd = -1

    def holder(self) -> Dict[str, Any]:
        """What the holder wrote: pid and start time (empty while it is writing)."""
        try:
            data = json.loads(self.system.read_text(self.path) or "{}")
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    def acquire(self) -> None:
        ensure_dir(self.system, os.path.dirname(self.path), 0o755)
        fd = self.system.open(self.path, os.O_RDWR | os.O_CREAT, 0o600, follow=False)
        deadline = self.clock() + self.timeout
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = self.holder()
                if self.clock() >= deadline:
                    os.close(fd)
                    raise RunError(
                        "another converge run is changing this machine: pid %s, started "
                        "%s; gave up after waiting %gs" % (holder.get("pid", "?"),
                                                          holder.get("started", "?"),
                                                          self.timeout),
                        hint="let it finish, or wait longer with --lock-timeout SECONDS") \
                        from None
                if not told:
                    self.notice("waiting for the converge run of pid %s (started %s) to "
                                "finish, up to %gs" % (holder.get("pid", "?"),
                                                        holder.get("started", "?"),
                                                        self.timeout))
                    told = True
                self.sleep(min(POLL, max(0.0, deadline - self.clock())))
        self._fd = fd
        stamp = json.dumps({"pid": os.getpid(), "started": time.strftime(
            "%Y-%m-%dT%H:%M:%SZ", time.gmtime())}).encode() + b"\n"
        os.ftruncate(fd, 0)
        os.pwrite(fd, stamp, 0)

    def release(self) -> None:
        if self._fd == -1:
            return
        try:
            os.ftruncate(self._fd, 0)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()
