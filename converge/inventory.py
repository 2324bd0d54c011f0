"""Targets: a YAML inventory (hosts, groups, vars) and ``-H [user@]host[:port]``.

::

    vars:                      # every host; connection keys here are defaults
      known_hosts: ssh/known_hosts
    hosts:
      web1: {address: 10.0.0.11, user: deploy, become: true}
      db1:  {address: 10.0.0.21, port: 2222, vars: {chrony: {maxpoll: 10}}}
    groups:
      web: {hosts: [web1], vars: {nginx: {hsts: true}}}
      all_servers: {children: [web], hosts: [db1]}

Connection settings (``address port user key become known_hosts``) may be given on
a host, or in any ``vars`` (top level < group < host), as the lab's inventory
does; every other var becomes a recipe attribute layer for that host. Relative
paths (key, known_hosts, ssh_config) are relative to the inventory file. The file
is read with ``yaml.safe_load`` (plus ``!vault`` values, and whole files encrypted
with Ansible Vault: converge/vault.py); mistakes name the file and line.
"""

from __future__ import annotations

import copy
import fnmatch
import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from .errors import InventoryError, printable

CONNECTION_KEYS = ("address", "port", "user", "key", "become", "known_hosts")
HOST_KEYS = CONNECTION_KEYS + ("vars",)
GROUP_KEYS = ("hosts", "children", "vars")
TOP_KEYS = ("hosts", "groups", "vars", "ssh_config")
NAME = re.compile(r"[A-Za-z0-9_.\-\[\]:]+")  # fullmatch: "$" allows a final "\n"
# A DNS label (underscores allowed, as in many internal names), never starting with
# "-": an address reaches an OpenSSH ProxyCommand's %h, where "-o..." is an option.
LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
# POSIX portable user names (letters, digits, ".", "_", "-"; not starting with "-"),
# and the trailing "$" of Samba machine accounts.
USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,255}\$?")
ZONE = re.compile(r"[A-Za-z0-9_.-]+")
IPV6_CHARS = re.compile(r"[0-9A-Fa-f:.]+(%[^%]*)?")


def address_problem(value: str) -> Optional[str]:
    """Why ``value`` is not a host name, an IPv4 address or an IPv6 literal (None
    when it is one). Nothing else may reach the SSH client: an address with a
    space, a quote or a leading "-" could become options of an OpenSSH
    ProxyCommand (``%h``) and run a command on the controller."""
    shown = "address '%s'" % printable(value)
    if ":" in value and IPV6_CHARS.fullmatch(value):
        literal, _, zone = value.partition("%")
        try:
            ipaddress.IPv6Address(literal)
        except ValueError:
            return "%s is not a valid IPv6 address (a port goes in port:)" % shown
        if "%" in value and not ZONE.fullmatch(zone):
            return "%s has an invalid IPv6 zone" % shown
        return None
    if value.replace(".", "").isdigit():
        try:
            ipaddress.IPv4Address(value)
        except ValueError:
            return "%s is not a valid IPv4 address" % shown
        return None
    name = value[:-1] if value.endswith(".") else value
    if not name or len(name) > 253 or not all(LABEL.fullmatch(p) for p in name.split(".")):
        return ("%s is not a host name, an IPv4 address or an IPv6 address (letters, "
                "digits, '-', '_' and dots; no spaces, quotes or options; a port goes in "
                "port:)" % shown)
    return None


def user_problem(value: str) -> Optional[str]:
    """Why ``value`` is not a POSIX user name (None when it is one)."""
    if USER.fullmatch(value):
        return None
    return ("user '%s' is not a POSIX user name (letters, digits, '.', '_' and '-', not "
            "starting with '-')" % printable(value))


@dataclass
class Host:
    """One target: how to reach it, and the vars its recipe compiles with."""

    name: str
    address: Optional[str] = None
    port: Optional[int] = None
    user: Optional[str] = None
    key: Optional[str] = None
    become: bool = False
    known_hosts: Optional[str] = None
    vars: Dict[str, Any] = field(default_factory=dict)
    groups: List[str] = field(default_factory=list)
    ssh_config: Optional[str] = None

    @property
    def hostname(self) -> str:
        """What to connect to (before any OpenSSH config alias is resolved)."""
        return self.address or self.name


@dataclass
class Inventory:
    hosts: Dict[str, Host] = field(default_factory=dict)
    groups: Dict[str, List[str]] = field(default_factory=dict)  # group -> host names
    source: str = "command line"

    def select(self, limit: Sequence[str] = ()) -> List[Host]:
        """Hosts matching ``-l`` patterns: host, group or glob; ``!pattern`` excludes."""
        patterns = [p.strip() for item in limit for p in item.split(",") if p.strip()]
        if not patterns:
            return list(self.hosts.values())
        include = [p for p in patterns if not p.startswith("!")]
        exclude = [p[1:] for p in patterns if p.startswith("!")]
        chosen = set(self.hosts) if not include else set()
        for pattern in include:
            found = self._match(pattern)
            if not found:
                raise InventoryError(
                    "--limit %r matches no host or group in %s" % (pattern, self.source),
                    hint="hosts: %s; groups: %s" % (", ".join(self.hosts) or "none",
                                                    ", ".join(self.groups) or "none"))
            chosen |= found
        for pattern in exclude:
            chosen -= self._match(pattern)
        return [host for name, host in self.hosts.items() if name in chosen]

    def _match(self, pattern: str) -> Set[str]:
        found = {n for n in self.hosts if fnmatch.fnmatchcase(n, pattern)}
        for group, members in self.groups.items():
            if fnmatch.fnmatchcase(group, pattern):
                found.update(members)
        return found


def parse_target(text: str, *, source: str = "-H") -> Host:
    """``[user@]host[:port]`` (IPv6 as ``[::1]:2222``) as a Host."""
    user, at, rest = text.rpartition("@")
    if at and not user:
        raise InventoryError("%s %s: empty user before '@'" % (source, text))
    port: Optional[int] = None
    if rest.startswith("["):
        host, bracket, tail = rest[1:].partition("]")
        if not bracket or (tail and not tail.startswith(":")):
            raise InventoryError("%s %s: expected [address]:port" % (source, text))
        port_text = tail[1:] if tail else ""
    elif rest.count(":") == 1:
        host, _, port_text = rest.partition(":")
    else:
        host, port_text = rest, ""
    if not host or any(c.isspace() for c in host):
        raise InventoryError("%s '%s': expected [user@]host[:port]" % (source, printable(text)))
    problem = address_problem(host) or (user_problem(user) if user else None)
    if problem:
        raise InventoryError("%s %s: %s" % (source, printable(text), problem))
    if port_text:
        port = _port(port_text, "%s %s" % (source, text))
    name = host if port is None else rest
    return Host(name=name, address=host, port=port, user=user or None)


def targets(hosts: Sequence[str] = (), inventory: Optional[str] = None,
            limit: Sequence[str] = ()) -> Tuple[List[Host], Optional[Inventory]]:
    """The hosts a run goes to: an inventory's and ``-H`` ones, then ``--limit``."""
    inv = load(inventory) if inventory else Inventory()
    for text in hosts:
        host = parse_target(text)
        if host.name in inv.hosts:
            raise InventoryError("-H %s: host %s is also in %s" % (text, host.name, inv.source))
        inv.hosts[host.name] = host
    chosen = inv.select(limit)
    if not chosen:
        raise InventoryError("no hosts to run on (%s is empty)" % inv.source)
    return chosen, inv


# -- loading ---------------------------------------------------------------------


def load(path: str) -> Inventory:
    """Read an inventory file (YAML, safe_load)."""
    import yaml

    from . import vault

    where = _display(path)
    try:
        text = vault.read_yaml_text(path, where)
    except OSError as exc:
        raise InventoryError("cannot read inventory %s: %s" % (where, exc.strerror or exc)) \
            from exc
    except UnicodeDecodeError:
        raise InventoryError("cannot read inventory %s: not UTF-8 text" % where) from None
    try:
        data = vault.safe_load(text, where)
        tree = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = str(getattr(exc, "problem", exc))
        hint = None
        if "could not determine a constructor for the tag" in problem:
            hint = ("inventories are read with yaml.safe_load, which builds no Python "
                    "objects and runs nothing: remove the tag")
        raise InventoryError("invalid YAML: %s" % problem, source="%s:%d" % (where, line),
                             hint=hint) from None
    _refuse_duplicate_keys(tree, where)
    return _Loader(where, Path(path).parent, tree).build(data if data is not None else {})


def _refuse_duplicate_keys(node: Any, where: str) -> None:
    """YAML loaders keep the last of two equal keys without a word: a host or a
    setting given twice would silently lose its first definition."""
    if node is None:
        return
    if node.id == "mapping":
        seen: Dict[Any, int] = {}
        for key, value in node.value:
            name = key.value if key.id == "scalar" else None
            if name is not None and name in seen:
                raise InventoryError("duplicate key %r (first given on line %d)"
                                     % (name, seen[name]),
                                     source="%s:%d" % (where, key.start_mark.line + 1))
            if name is not None:
                seen[name] = key.start_mark.line + 1
            _refuse_duplicate_keys(value, where)
    elif node.id == "sequence":
        for item in node.value:
            _refuse_duplicate_keys(item, where)


class _Loader:
    def __init__(self, where: str, base: Path, tree: Any) -> None:
        self.where = where
        self.base = base
        self.tree = tree

    def error(self, message: str, path: Sequence[Any] = (), hint: Optional[str] = None
              ) -> InventoryError:
        return InventoryError(message, source="%s:%d" % (self.where, self.line(path)), hint=hint)

    def line(self, path: Sequence[Any]) -> int:
        """The line of the value at ``path`` (keys and list indexes) in the file."""
        node, line = self.tree, 1
        for step in path:
            if node is None:
                break
            line = node.start_mark.line + 1
            nxt = None
            if node.id == "mapping":
                for key, value in node.value:
                    if key.value == str(step):
                        nxt, line = value, key.start_mark.line + 1
                        break
            elif node.id == "sequence" and isinstance(step, int) and step < len(node.value):
                nxt = node.value[step]
                line = nxt.start_mark.line + 1
            node = nxt
        if node is not None and not path:
            line = node.start_mark.line + 1
        return line

    def mapping(self, value: Any, path: Sequence[Any], what: str) -> Dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.error("%s must be a mapping, not %s" % (what, _kind(value)), path)
        return value

    def build(self, data: Any) -> Inventory:
        inv = Inventory(source=self.where)
        data = self.mapping(data, (), "an inventory")
        for key in data:
            if key not in TOP_KEYS:
                raise self.error("unknown key %r (expected: %s)" % (key, ", ".join(TOP_KEYS)),
                                 (key,))
        ssh_config = data.get("ssh_config")
        top_conn, top_vars = self.split_vars(data.get("vars"), ("vars",))
        raw_hosts = self.mapping(data.get("hosts"), ("hosts",), "hosts")
        settings: Dict[str, Dict[str, Any]] = {}
        for name, spec in raw_hosts.items():
            settings[str(name)] = self.host_spec(str(name), spec, ("hosts", name))
        groups_raw = self.mapping(data.get("groups"), ("groups",), "groups")
        direct: Dict[str, List[str]] = {}
        children: Dict[str, List[str]] = {}
        group_vars: Dict[str, Tuple[Dict[str, Any], Dict[str, Any]]] = {}
        for gname, gspec in groups_raw.items():
            gname = str(gname)
            path = ("groups", gname)
            gspec = self.mapping(gspec, path, "group %s" % gname)
            for key in gspec:
                if key not in GROUP_KEYS:
                    raise self.error("group %s: unknown key %r (expected: %s)"
                                     % (gname, key, ", ".join(GROUP_KEYS)), path + (key,))
            direct[gname] = []
            members = gspec.get("hosts") or []
            if isinstance(members, dict):
                for hname, hspec in members.items():
                    hname = str(hname)
                    if hspec is not None or hname not in settings:
                        if hname in settings and hspec is not None:
                            raise self.error("host %s is defined twice" % hname,
                                             path + ("hosts", hname))
                        settings[hname] = self.host_spec(hname, hspec, path + ("hosts", hname))
                    direct[gname].append(hname)
            elif isinstance(members, list):
                for i, hname in enumerate(members):
                    if not isinstance(hname, (str, int)):
                        raise self.error("group %s: hosts[%d] must be a host name" % (gname, i),
                                         path + ("hosts", i))
                    if str(hname) not in settings:
                        raise self.error("group %s: unknown host %r" % (gname, hname),
                                         path + ("hosts", i),
                                         hint="define it under hosts:, or list it as a "
                                              "mapping here (%s: {address: ...})" % hname)
                    direct[gname].append(str(hname))
            else:
                raise self.error("group %s: hosts must be a list or a mapping" % gname,
                                 path + ("hosts",))
            kids = gspec.get("children") or []
            if not isinstance(kids, list):
                raise self.error("group %s: children must be a list of group names" % gname,
                                 path + ("children",))
            children[gname] = [str(k) for k in kids]
            group_vars[gname] = self.split_vars(gspec.get("vars"), path + ("vars",))
        for gname, kids in children.items():
            for i, kid in enumerate(kids):
                if kid not in direct:
                    raise self.error("group %s: unknown child group %r" % (gname, kid),
                                     ("groups", gname, "children", i))
        depth = {g: self.depth(g, children, []) for g in direct}
        for gname in direct:
            inv.groups[gname] = sorted(self.members(gname, direct, children),
                                       key=list(settings).index)
        order = sorted(direct, key=lambda g: (depth[g], g))
        for hname, spec in settings.items():
            conn: Dict[str, Any] = dict(top_conn)
            attrs: Dict[str, Any] = {}
            _deep_merge(attrs, top_vars)
            host_groups = [g for g in order if hname in inv.groups[g]]
            for gname in host_groups:
                gconn, gvars = group_vars[gname]
                conn.update(gconn)
                _deep_merge(attrs, gvars)
            conn.update(spec["conn"])
            _deep_merge(attrs, spec["vars"])
            if conn.get("address") is None and address_problem(hname):
                raise self.error("host %s has no address, and its name is not one: give it "
                                 "an address (address: 10.0.0.5)" % hname,
                                 self.host_path(hname, groups_raw))
            inv.hosts[hname] = Host(
                name=hname, address=conn.get("address"), port=conn.get("port"),
                user=conn.get("user"), key=self.path(conn.get("key")),
                become=bool(conn.get("become", False)),
                known_hosts=self.path(conn.get("known_hosts")), vars=attrs,
                groups=sorted(host_groups), ssh_config=self.path(ssh_config))
        return inv

    def host_spec(self, name: str, spec: Any, path: Tuple[Any, ...]) -> Dict[str, Any]:
        if not NAME.fullmatch(name):
            raise self.error("host name %r: use letters, digits and . _ - only" % name, path)
        spec = self.mapping(spec, path, "host %s" % name)
        for key in spec:
            if key not in HOST_KEYS:
                raise self.error("host %s: unknown key %r (expected: %s; other settings go "
                                 "under vars:)" % (name, key, ", ".join(HOST_KEYS)),
                                 path + (key,))
        conn = {k: spec[k] for k in CONNECTION_KEYS if k in spec}
        self.check_conn(conn, path)
        vconn, attrs = self.split_vars(spec.get("vars"), path + ("vars",))
        return {"conn": {**vconn, **conn}, "vars": attrs}

    def split_vars(self, value: Any, path: Tuple[Any, ...]
                   ) -> Tuple[Dict[str, Any], Dict[str, Any]]:
        """vars → (connection settings, recipe attributes)."""
        values = self.mapping(value, path, "vars")
        conn = {k: values[k] for k in CONNECTION_KEYS if k in values}
        self.check_conn(conn, path)
        return conn, {k: v for k, v in values.items() if k not in CONNECTION_KEYS}

    def check_conn(self, conn: Dict[str, Any], path: Tuple[Any, ...]) -> None:
        for key, value in conn.items():
            where = path + (key,)
            if key == "port":
                conn[key] = _port(value, "", lambda m, w=where: self.error(m, w))
            elif key == "become":
                if not isinstance(value, bool):
                    raise self.error("become must be true or false, not %r" % (value,), where)
            elif not isinstance(value, (str, int)) or isinstance(value, bool) or value == "":
                raise self.error("%s must be a non-empty string, not %r" % (key, value), where)
            else:
                conn[key] = str(value)
                check = {"address": address_problem, "user": user_problem}.get(key)
                problem = check(conn[key]) if check else None
                if problem:
                    raise self.error("%s: %s" % (self.owner(path), problem), where)

    @staticmethod
    def owner(path: Tuple[Any, ...]) -> str:
        """Whose connection settings ``path`` holds: "host web1", "group web", "vars"."""
        if "hosts" in path[:-1]:
            return "host %s" % path[path.index("hosts") + 1]
        if path[:1] == ("groups",) and len(path) > 1:
            return "group %s" % path[1]
        return "vars"

    def host_path(self, name: str, groups: Dict[str, Any]) -> Tuple[Any, ...]:
        """Where host ``name`` is defined: under hosts:, or in a group's hosts."""
        for gname, gspec in groups.items():
            if isinstance(gspec, dict) and isinstance(gspec.get("hosts"), dict) \
                    and name in gspec["hosts"]:
                return ("groups", gname, "hosts", name)
        return ("hosts", name)

    def path(self, value: Optional[str]) -> Optional[str]:
        if value is None:
            return None
        expanded = os.path.expanduser(value)
        return expanded if os.path.isabs(expanded) else str(self.base / expanded)

    def depth(self, group: str, children: Dict[str, List[str]], stack: List[str]) -> int:
        """How deep a group sits under parents (parents' vars apply first)."""
        parents = [g for g, kids in children.items() if group in kids]
        if group in stack:
            cycle = " -> ".join(stack[stack.index(group):] + [group])
            raise self.error("groups form a cycle: %s" % cycle, ("groups", group, "children"))
        return 0 if not parents else 1 + max(self.depth(p, children, stack + [group])
                                             for p in parents)

    def members(self, group: str, direct: Dict[str, List[str]],
                children: Dict[str, List[str]]) -> Set[str]:
        found = set(direct[group])
        for kid in children[group]:
            found |= self.members(kid, direct, children)
        return found


def _port(value: Any, what: str, error: Any = None) -> int:
    try:
        port = int(str(value))
    except ValueError:
        port = -1
    if isinstance(value, bool) or not 0 < port < 65536:
        message = "%sport %r is not a number from 1 to 65535" % (what + ": " if what else "",
                                                                   value)
        raise error(message) if error else InventoryError(message)
    return port


def _deep_merge(into: Dict[str, Any], other: Dict[str, Any]) -> None:
    for key, value in other.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)


def _kind(value: Any) -> str:
    return {list: "a list", str: "a string", int: "a number", bool: "a boolean",
            float: "a number"}.get(type(value), type(value).__name__)


def _display(path: str) -> str:
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def host_vars(hosts: Iterable[Host]) -> Dict[str, Dict[str, Any]]:
    """The attribute layer of each host, for runner.run(host_vars=...)."""
    return {h.name: h.vars for h in hosts}
