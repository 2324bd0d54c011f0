"""Facts about addresses, mounts and where the machine runs, and custom facts.

Network: every interface with its MAC, primary IPv4 address and IPv6 addresses,
read from /sys, /proc and an ioctl (no process is started for them); the
default route's interface and address as ``ipaddress`` (Ohai's name; with no
default route, the first global IPv4 address, as Ohai falls back). Mounts from
/proc/self/mountinfo. ``virtualization``: whether this is a container or a VM,
and which. Custom facts: files and programs in /etc/converge/facts.d (JSON; YAML
and the output of programs are parsed on the controller), each under its name in
``node.local``. Standard library only, Python 3.8.
"""

from __future__ import annotations

import json
import os
import socket
import struct
from typing import Any, Dict, List, Optional, Tuple

from .system import System

FACTS_D = "/etc/converge/facts.d"
PROGRAM_TIMEOUT = 10.0


def interfaces(system: System) -> Dict[str, Dict[str, Any]]:
    """{name: {"mac": .., "ipv4": [{"address", "prefix"}], "ipv6": [...], "up": bool}}"""
    return _from_kernel(system)


def _from_kernel(system: System) -> Dict[str, Dict[str, Any]]:
    found: Dict[str, Dict[str, Any]] = {}
    for name in sorted(system.listdir("/sys/class/net")):
        mac = (system.read_text("/sys/class/net/%s/address" % name) or "").strip() or None
        state = (system.read_text("/sys/class/net/%s/operstate" % name) or "").strip()
        entry: Dict[str, Any] = {"mac": None if name == "lo" else mac,
                                 "up": state in ("up", "unknown"), "ipv4": [], "ipv6": []}
        address = _ipv4_of(name) if system.root == "/" else None
        if address:
            entry["ipv4"].append({"address": address[0], "prefix": address[1],
                                  "scope": "host" if address[0].startswith("127.") else "global"})
        found[name] = entry
    for line in (system.read_text("/proc/net/if_inet6") or "").splitlines():
        fields = line.split()
        if len(fields) == 6 and fields[5] in found:
            raw = fields[0]
            text = socket.inet_ntop(socket.AF_INET6, bytes.fromhex(raw))
            scope = {"00": "global", "20": "link", "10": "host"}.get(fields[3], "global")
            found[fields[5]]["ipv6"].append({"address": text, "prefix": int(fields[2], 16),
                                             "scope": scope})
    return found


def _ipv4_of(name: str) -> Optional[Tuple[str, int]]:
    """The primary IPv4 address and prefix of an interface (SIOCGIFADDR/NETMASK)."""
    import fcntl

    request = struct.pack("256s", name.encode()[:15])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            address = fcntl.ioctl(sock.fileno(), 0x8915, request)[20:24]
            mask = fcntl.ioctl(sock.fileno(), 0x891B, request)[20:24]
        except OSError:
            return None
    prefix = bin(struct.unpack("!I", mask)[0]).count("1")
    return socket.inet_ntoa(address), prefix


def default_route(system: System) -> Optional[Dict[str, str]]:
    """The IPv4 default route's interface and gateway, from /proc/net/route."""
    best: Optional[Tuple[int, Dict[str, str]]] = None
    for line in (system.read_text("/proc/net/route") or "").splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8 or fields[1] != "00000000" or fields[7] != "00000000":
            continue
        gateway = socket.inet_ntoa(struct.pack("<I", int(fields[2], 16)))
        metric = int(fields[6])
        if best is None or metric < best[0]:
            best = (metric, {"interface": fields[0], "gateway": gateway})
    return best[1] if best else None


def network(system: System) -> Dict[str, Any]:
    """interfaces, default route, ipaddress / ip6address / macaddress as Ohai names them."""
    links = interfaces(system)
    route = default_route(system)
    ipaddress = macaddress = ip6address = None
    chosen = links.get(route["interface"]) if route else None
    if chosen and chosen["ipv4"]:
        ipaddress, macaddress = chosen["ipv4"][0]["address"], chosen["mac"]
    else:
        for entry in links.values():
            globals4 = [a for a in entry["ipv4"] if a.get("scope") == "global"
                        and not str(a["address"]).startswith("127.")]
            if globals4:
                ipaddress, macaddress, chosen = globals4[0]["address"], entry["mac"], entry
                break
    if chosen:
        six = [a for a in chosen["ipv6"] if a.get("scope") == "global"]
        ip6address = six[0]["address"] if six else None
    return {"interfaces": links, "default_route": route, "ipaddress": ipaddress,
            "ip6address": ip6address, "macaddress": macaddress}


def mounts(system: System) -> List[Dict[str, Any]]:
    """Every mount: mount point, device, file system type, options."""
    found = []
    for line in (system.read_text("/proc/self/mountinfo") or "").splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 6 or len(tail) < 2:
            continue
        options = fields[5].split(",") + [o for o in (tail[2].split(",") if len(tail) > 2
                                                      else []) if o not in fields[5]]
        found.append({"mount_point": _unescape(fields[4]), "device": _unescape(tail[1]),
                      "fstype": tail[0], "options": options})
    return found


def _unescape(text: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        text = text.replace(code, char)
    return text


VM_VENDORS = (("kvm", "kvm"), ("qemu", "qemu"), ("vmware", "vmware"),
              ("virtualbox", "virtualbox"), ("xen", "xen"), ("microsoft", "hyperv"),
              ("amazon ec2", "kvm"), ("google", "kvm"), ("bochs", "bochs"), ("parallels",
                                                                               "parallels"))


def virtualization(system: System) -> Dict[str, Any]:
    """{"container": "docker"|"podman"|"lxc"|"systemd-nspawn"|"container"|None,
    "vm": "kvm"|"vmware"|...|None}."""
    container = None
    try:
        environ = system.read_bytes("/proc/1/environ") or b""
    except OSError:  # not readable in some sandboxes, even by root
        environ = b""
    for item in environ.split(b"\0"):
        if item.startswith(b"container="):
            container = item.split(b"=", 1)[1].decode("utf-8", "replace") or "container"
    if container is None:
        if system.exists("/.dockerenv"):
            container = "docker"
        elif system.exists("/run/.containerenv"):
            container = "podman"
        else:
            try:
                cgroup = system.read_text("/proc/1/cgroup") or ""
            except OSError:
                cgroup = ""
            for word in ("docker", "lxc", "kubepods", "containerd"):
                if word in cgroup:
                    container = word
                    break
    vm = None
    vendor = " ".join(_quiet_read(system, "/sys/class/dmi/id/" + key).strip().lower()
                      for key in ("sys_vendor", "product_name"))
    for needle, name in VM_VENDORS:
        if needle in vendor:
            vm = name
            break
    if vm is None and " hypervisor" in _quiet_read(system, "/proc/cpuinfo")[:4000]:
        vm = "unknown"
    return {"container": container, "vm": vm}


def _quiet_read(system: System, path: str) -> str:
    try:
        return system.read_text(path) or ""
    except OSError:
        return ""


def custom(system: System) -> Dict[str, Any]:
    """/etc/converge/facts.d: NAME.json read here; NAME.yaml / NAME.yml and the output
    of executables sent as text, parsed on the controller (no YAML library here).
    A fact that cannot be read is {"error": why}, never a failed run."""
    found: Dict[str, Any] = {}
    for entry in sorted(system.listdir(FACTS_D)):
        if entry.startswith("."):
            continue
        path = "%s/%s" % (FACTS_D, entry)
        info = system.stat(path)
        if info is None or not os.path.isfile(system.real(path)):
            continue
        name = entry.rsplit(".", 1)[0] if "." in entry else entry
        if info.st_uid != 0 or info.st_mode & 0o022:
            found[name] = {"error": "%s is not owned by root, or others can write it: "
                                    "ignored" % path}
        elif info.st_mode & 0o111:
            done = system.run([path], timeout=PROGRAM_TIMEOUT)
            found[name] = ({"_text": done.stdout} if done.ok else
                           {"error": "%s exited %d: %s" % (path, done.returncode,
                                                           done.stderr.strip()[-200:])})
        elif entry.endswith(".json"):
            try:
                found[name] = json.loads(system.read_text(path) or "null")
            except ValueError as exc:
                found[name] = {"error": "%s is not JSON: %s" % (path, exc)}
        elif entry.endswith((".yaml", ".yml")):
            found[name] = {"_text": system.read_text(path) or ""}
    return found
