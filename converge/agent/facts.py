"""Node facts: what a recipe can know about the machine it converges.

Gathered on the target (one call, cheap: a few small files read), readable in
recipes as ``node.hostname``, ``node.platform_family`` and so on.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Dict

from .system import System

FAMILIES = {
    "debian": "debian", "ubuntu": "debian", "linuxmint": "debian", "raspbian": "debian",
    "rhel": "rhel", "centos": "rhel", "rocky": "rhel", "almalinux": "rhel", "fedora": "rhel",
    "ol": "rhel", "amzn": "rhel", "alpine": "alpine", "arch": "arch", "opensuse-leap": "suse",
    "sles": "suse",
}


def os_release(system: System) -> Dict[str, str]:
    """/etc/os-release as a dict (quotes removed)."""
    text = system.read_text("/etc/os-release") or system.read_text("/usr/lib/os-release") or ""
    values: Dict[str, str] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip().strip('"').strip("'")
    return values


def init_system(system: System) -> str:
    """systemd when systemd runs (or is the installed init), else sysvinit."""
    if system.is_dir("/run/systemd/system"):
        return "systemd"
    comm = system.read_text("/proc/1/comm") or ""
    if comm.strip() == "systemd":
        return "systemd"
    return "sysvinit"


def memory_mb(system: System) -> int:
    for line in (system.read_text("/proc/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return 0


def gather(system: System) -> Dict[str, Any]:
    """Every fact, as plain JSON data."""
    release = os_release(system)
    platform = release.get("ID", "unknown")
    family = FAMILIES.get(platform)
    if family is None:
        for like in release.get("ID_LIKE", "").split():
            if like in FAMILIES:
                family = FAMILIES[like]
                break
    import socket  # here, not at the top: the package resource imports this module

    uname = os.uname()
    hostname = socket.gethostname()
    try:
        fqdn = socket.getfqdn()
    except OSError:
        fqdn = hostname
    return {
        "hostname": hostname,
        "fqdn": fqdn or hostname,
        "os": uname.sysname.lower(),
        "platform": platform,
        "platform_family": family or platform,
        "platform_version": release.get("VERSION_ID", ""),
        "init": init_system(system),
        "cpu_count": os.cpu_count() or 1,
        "memory_mb": memory_mb(system),
        "python_version": "%d.%d.%d" % sys.version_info[:3],
        "architecture": uname.machine,
        **_more(system),
    }


def _more(system: System) -> Dict[str, Any]:
    """Addresses, mounts, virtualization and custom facts (agent/netfacts.py)."""
    from . import netfacts

    place = netfacts.virtualization(system)
    return {**netfacts.network(system), "mounts": netfacts.mounts(system),
            "virtualization": place, "container": place["container"] is not None,
            "local": netfacts.custom(system)}
