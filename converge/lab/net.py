"""Addresses and links for lab nodes: a range per lab, a /30 per node, out of a
private pool.

Each lab takes a range of the pool (a /21 of a /16: 512 nodes) where no other
lab has a node, and keeps it while it has nodes; its nodes get /30s of that
range only, so two labs never overlap. Host ends of the links are named after
their address (`cvl0ad50001` for 10.213.0.1), so every lab on the machine sees
which ranges and /30s are taken just by listing links; labs choose under a
machine-wide lock file.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from converge.lab.errors import LabError

DEFAULT_POOL = "10.213.0.0/16"
LINK_PREFIX = "cvl"
RANGE_PREFIX = 21  # a lab's range in a /16 pool; smaller pools give 8 ranges


@dataclass(frozen=True)
class Slot:
    """One node's /30: the host end and the node end."""

    host: ipaddress.IPv4Address
    node: ipaddress.IPv4Address

    @property
    def link(self) -> str:
        """Name of the host end of the veth pair."""
        return f"{LINK_PREFIX}{int(self.host):08x}"


def parse_pool(text: str) -> ipaddress.IPv4Network:
    """The pool as a network, refusing ones too small for a single /30."""
    try:
        pool = ipaddress.IPv4Network(text, strict=False)
    except ValueError as exc:
        raise LabError(
            f"lab network {text!r} is not an IPv4 network such as 10.213.0.0/16"
        ) from exc
    if pool.prefixlen > 30:
        raise LabError(f"lab network {text} is smaller than a /30")
    return pool


def _ip_json(*args: str) -> list[dict[str, Any]]:
    done = subprocess.run(["ip", "-j", *args], capture_output=True, text=True, check=True)
    entries: list[dict[str, Any]] = json.loads(done.stdout or "[]")
    return entries


def host_networks() -> list[tuple[str, ipaddress.IPv4Network]]:
    """IPv4 networks the host uses: its addresses and routes, with the link of each."""
    found = []
    for link in _ip_json("-4", "addr", "show"):
        for info in link.get("addr_info", []):
            net = ipaddress.IPv4Network(f"{info['local']}/{info['prefixlen']}", strict=False)
            found.append((link["ifname"], net))
    for route in _ip_json("-4", "route", "show", "table", "all"):
        dst = route.get("dst", "")
        if dst in ("", "default") or route.get("type") in ("broadcast",):
            continue
        try:
            found.append((route.get("dev", "?"), ipaddress.IPv4Network(dst, strict=False)))
        except ValueError:
            continue
    return found


def lab_ranges(pool: ipaddress.IPv4Network) -> list[ipaddress.IPv4Network]:
    """The ranges a pool is cut into, one lab's each."""
    prefix = min(30, max(RANGE_PREFIX, pool.prefixlen + 3))
    return list(pool.subnets(new_prefix=prefix)) if prefix > pool.prefixlen else [pool]


def pick_range(pool: ipaddress.IPv4Network, own_links: set[str],
               recorded: str | None = None) -> ipaddress.IPv4Network:
    """A range of the pool where no other lab has a node (its ``own_links`` aside) and
    nothing else on this machine has an address or a route; ``recorded`` first."""
    foreign, other_labs = [], []
    for link, net in host_networks():
        if not net.overlaps(pool):
            continue
        if not link.startswith(LINK_PREFIX):
            foreign.append((link, net))
        elif link not in own_links:
            other_labs.append(net)
    ranges = lab_ranges(pool)
    if recorded is not None:
        ranges.sort(key=lambda r: str(r) != recorded)
    for candidate in ranges:
        if not any(net.overlaps(candidate) for _, net in foreign) and \
                not any(net.overlaps(candidate) for net in other_labs):
            return candidate
    if foreign and all(any(net.overlaps(r) for _, net in foreign) for r in ranges):
        link, net = foreign[0]
        raise LabError(
            f"address range {pool} is already in use on this machine ({link}: {net}); "
            "choose another private range with CONVERGE_LAB_NET=10.x.0.0/16"
        )
    raise LabError(f"address range {pool} has no range left for another lab (other labs "
                   "use the rest): take one down, or choose another private range with "
                   "CONVERGE_LAB_NET=10.x.0.0/16")


def allocate(pool: ipaddress.IPv4Network, count: int) -> list[Slot]:
    """`count` free /30s of the pool; error if something other than a lab uses the pool."""
    taken: set[ipaddress.IPv4Network] = set()
    for link, net in host_networks():
        if not net.overlaps(pool):
            continue
        if not link.startswith(LINK_PREFIX):
            raise LabError(
                f"address range {pool} is already in use on this machine ({link}: {net}); "
                "choose another private range with CONVERGE_LAB_NET=10.x.0.0/16"
            )
        taken.add(ipaddress.IPv4Network(f"{net.network_address}/30", strict=False))
    slots = []
    for subnet in _subnets(pool):
        if subnet not in taken:
            hosts = list(subnet.hosts())
            slots.append(Slot(host=hosts[0], node=hosts[1]))
            if len(slots) == count:
                return slots
    raise LabError(f"address range {pool} has no room for {count} more nodes")


def _subnets(pool: ipaddress.IPv4Network) -> Iterator[ipaddress.IPv4Network]:
    return pool.subnets(new_prefix=30)


@contextmanager
def machine_lock() -> Iterator[None]:
    """Serialise address allocation between labs on this machine."""
    path = os.path.join(tempfile.gettempdir(), "converge-lab-net.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def create_links(pairs: list[tuple[Slot, int]]) -> None:
    """For each (slot, pid): a veth whose peer becomes eth0 in that pid's netns."""
    lines = []
    for slot, pid in pairs:
        lines.append(f"link add {slot.link} type veth peer name eth0 netns {pid}")
        lines.append(f"addr add {slot.host}/30 dev {slot.link}")
        lines.append(f"link set {slot.link} up")
    done = subprocess.run(
        ["ip", "-batch", "-"], input="\n".join(lines) + "\n", capture_output=True, text=True
    )
    if done.returncode != 0:
        raise LabError(f"could not create the nodes' links: {done.stderr.strip()}")


def link_exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


def link_up(name: str) -> bool:
    """Both ends of the node's link are up: its address is set, probes will not be lost
    (a SYN sent earlier waits a whole second for ARP to retry)."""
    try:
        with open(f"/sys/class/net/{name}/operstate") as state:
            return state.read().strip() == "up"
    except OSError:  # gone, or going while read (ENODEV: its node died starting)
        return False


def delete_link(name: str) -> None:
    subprocess.run(["ip", "link", "del", name], capture_output=True, check=False)
