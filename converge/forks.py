"""How many hosts a run works on at once when ``--forks`` is not given: the rule,
from the machine (CPUs, open-file limit) and the fleet's size. Standard library
only, imported by the CLI for its help without the runner."""

from __future__ import annotations

import os
from typing import Optional

FORKS_PER_CPU = 50
MAX_FORKS = 500
FILES_PER_HOST = 4  # its socket; a ProxyCommand's pipes or a jump host's socket
RESERVED_FILES = 64  # the interpreter's own, the run store, known_hosts, keys...


def default_forks(hosts: int, *, cpus: Optional[int] = None,
                  open_files: Optional[int] = None) -> int:
    """How many of ``hosts`` to work on at once when no ``forks`` is given.

    FORKS_PER_CPU per CPU this process may run on, at most MAX_FORKS; no more
    than the open-file limit leaves room for (FILES_PER_HOST descriptors a host,
    beyond RESERVED_FILES); no more than the hosts; at least 1. Most of a host's
    time is the network and the target's own work, so even one CPU waits on many
    hosts at once; but each host in flight also costs the controller CPU (its key
    exchange, about 15 ms, and reading its events), so a burst of connections
    must stay well within the connect timeout. ``cpus`` and ``open_files`` (the
    soft RLIMIT_NOFILE) default to this machine's.
    """
    if cpus is None:
        cpus = _usable_cpus()
    if open_files is None:
        open_files = _open_file_limit()
    by_cpu = min(MAX_FORKS, FORKS_PER_CPU * max(1, cpus))
    by_files = (open_files - RESERVED_FILES) // FILES_PER_HOST
    return max(1, min(hosts, by_cpu, by_files))


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))  # a cpuset or taskset, not the machine's
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _open_file_limit() -> int:
    try:
        import resource
    except ImportError:  # not a Unix
        return 512
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20
