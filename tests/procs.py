"""Waiting for a process the test did not start (so cannot ``waitpid``)."""

from __future__ import annotations

import os
import select


def exits_within(pid: int, seconds: float) -> bool:
    """Whether the process ``pid`` has exited, or exits within ``seconds``. A
    process killed a moment ago can still show state R while the kernel takes it
    down; its pidfd turns readable at its exit (zombie or reaped alike)."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([pidfd], [], [], seconds)[0])
    finally:
        os.close(pidfd)
