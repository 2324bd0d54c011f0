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
import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple, Union

from .errors import InventoryError, printable

CONNECTION_KEYS = ("address", "port", "user", "key", "become", "known_hosts", "become_user",
                   "python")
HOST_KEYS = CONNECTION_KEYS + ("vars",)
GROUP_KEYS = ("hosts", "children", "vars")
TOP_KEYS = ("hosts", "groups", "vars", "ssh_config")
NAME = re.compile(r"[A-Za-z0-9_.\-\[\]:]+")  # fullmatch: "$" allows a final "\n"
SCRIPT_TIMEOUT = 60.0  # seconds an inventory script may take (CONVERGE_INVENTORY_TIMEOUT)
PYTHON = re.compile(r"/?[A-Za-z0-9_.+\-/]+")
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
    become_user: Optional[str] = None  # sudo -u USER instead of root
    python: Optional[str] = None  # the target's interpreter, if not python3 on its PATH

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


def targets(hosts: Sequence[str] = (), inventory: Union[str, Sequence[str], None] = None,
            limit: Sequence[str] = ()) -> Tuple[List[Host], Optional[Inventory]]:
    """The hosts a run goes to: an inventory's and ``-H`` ones, then ``--limit``."""
    paths = [inventory] if isinstance(inventory, str) else list(inventory or [])
    inv = load_all(paths) if paths else Inventory()
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


def load_all(paths: Sequence[str]) -> Inventory:
    """Several ``-i``: each read, then merged in order (a host in two keeps the
    later one's settings, its vars deep-merged; groups are joined)."""
    merged = Inventory(source=", ".join(_display(p) for p in paths) or "command line")
    for path in paths:
        inv = load(path)
        for name, host in inv.hosts.items():
            if name in merged.hosts:
                old = merged.hosts[name]
                vars_ = copy.deepcopy(old.vars)
                _deep_merge(vars_, host.vars)
                host.vars = vars_
                host.groups = sorted(set(old.groups) | set(host.groups))
            merged.hosts[name] = host
        for group, members in inv.groups.items():
            known = merged.groups.setdefault(group, [])
            known.extend(m for m in members if m not in known)
    return merged


def load(path: str) -> Inventory:
    """Read an inventory: a YAML file; an executable, run with ``--list`` and read
    as an Ansible inventory script's JSON; or a Python file (``inventory.py``)
    defining ``hosts``, ``groups`` and ``vars`` as the YAML file would."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise InventoryError("cannot read inventory %s: %s"
                             % (_display(path), exc.strerror or exc)) from exc
    if stat.S_ISREG(info.st_mode) and info.st_mode & 0o111:
        return _load_script(path)
    if path.endswith(".py"):
        return _load_python(path)
    return _load_yaml(path)


def _load_yaml(path: str) -> Inventory:
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


# -- inventories made by programs ----------------------------------------------------

# Ansible's connection variables, as an inventory script's hostvars give them.
ANSIBLE_KEYS = {
    "ansible_host": "address", "ansible_ssh_host": "address", "ansible_port": "port",
    "ansible_ssh_port": "port", "ansible_user": "user", "ansible_ssh_user": "user",
    "ansible_ssh_private_key_file": "key", "ansible_private_key_file": "key",
    "ansible_become": "become", "ansible_become_user": "become_user",
    "ansible_python_interpreter": "python",
}


def _load_script(path: str) -> Inventory:
    """An executable inventory (Ansible's inventory-script protocol): run with
    ``--list``, it prints JSON: groups (a list of hosts, or hosts / children /
    vars), and ``_meta.hostvars``."""
    import subprocess

    where = _display(path)
    try:
        timeout = float(os.environ.get("CONVERGE_INVENTORY_TIMEOUT") or SCRIPT_TIMEOUT)
    except ValueError:
        timeout = SCRIPT_TIMEOUT
    try:
        done = subprocess.run([os.path.abspath(path), "--list"], capture_output=True,
                              timeout=timeout, stdin=subprocess.DEVNULL,
                              cwd=os.path.dirname(os.path.abspath(path)))
    except subprocess.TimeoutExpired:
        raise InventoryError("inventory script %s did not finish within %gs"
                             % (where, timeout),
                             hint="set CONVERGE_INVENTORY_TIMEOUT for a slower one") from None
    except OSError as exc:
        raise InventoryError("cannot run inventory script %s: %s"
                             % (where, exc.strerror or exc)) from None
    if done.returncode != 0:
        words = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise InventoryError("inventory script %s --list exited %d%s"
                             % (where, done.returncode, ": " + words[-1] if words else ""))
    try:
        data = json.loads(done.stdout.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InventoryError("inventory script %s --list printed no JSON inventory: %s"
                             % (where, exc)) from None
    if not isinstance(data, dict):
        raise InventoryError("inventory script %s --list printed %s, not a JSON object of "
                             "groups" % (where, _kind(data)))
    loader = _Loader("%s --list" % where, Path(path).parent, None)
    return loader.build(_from_ansible(data, loader))


def _from_ansible(data: Dict[str, Any], loader: "_Loader") -> Dict[str, Any]:
    """Ansible's script JSON as this module's inventory data."""
    meta: Dict[str, Any] = data["_meta"] if isinstance(data.get("_meta"), dict) else {}
    hostvars: Dict[str, Any] = (meta["hostvars"] if isinstance(meta.get("hostvars"), dict)
                                else {})
    hosts: Dict[str, Any] = {}
    groups: Dict[str, Any] = {}
    top: Dict[str, Any] = {}

    def host(name: Any) -> str:
        text = str(name)
        if text not in hosts:
            hosts[text] = _ansible_vars(hostvars.get(text) or {}, loader, text)
        return text

    for gname, spec in data.items():
        if gname == "_meta":
            continue
        if isinstance(spec, list):
            spec = {"hosts": spec}
        if not isinstance(spec, dict):
            raise loader.error("group %s: expected a list of hosts or a mapping, not %s"
                               % (gname, _kind(spec)))
        members = [host(h) for h in spec.get("hosts") or []]
        if gname == "all":
            top = _split_ansible(spec.get("vars") or {}, loader, "all")
            continue
        entry: Dict[str, Any] = {"hosts": members,
                                 "children": [str(c) for c in spec.get("children") or []
                                              if str(c) != "ungrouped"]}
        if spec.get("vars"):
            entry["vars"] = _split_ansible(spec["vars"], loader, "group " + str(gname))
        groups[str(gname)] = entry
    for name in hostvars:
        host(name)
    for entry in groups.values():  # a child named but not defined is an empty group
        for kid in entry["children"]:
            groups.setdefault(kid, {"hosts": [], "children": []})
    return {"hosts": hosts, "groups": groups, "vars": top}


def _split_ansible(values: Any, loader: "_Loader", what: str) -> Dict[str, Any]:
    if not isinstance(values, dict):
        raise loader.error("%s: vars must be a mapping, not %s" % (what, _kind(values)))
    out: Dict[str, Any] = {}
    for key, value in values.items():
        ours = ANSIBLE_KEYS.get(str(key))
        if ours == "become":
            value = value if isinstance(value, bool) else str(value).lower() in (
                "true", "yes", "1")
        if ours == "port":
            value = int(value) if str(value).isdigit() else value
        out[ours or str(key)] = value
    return out


def _ansible_vars(values: Any, loader: "_Loader", name: str) -> Dict[str, Any]:
    split = _split_ansible(values, loader, "host " + name)
    conn = {k: v for k, v in split.items() if k in CONNECTION_KEYS}
    return {**conn, "vars": {k: v for k, v in split.items() if k not in CONNECTION_KEYS}}


def _load_python(path: str) -> Inventory:
    """``inventory.py``: Python that sets ``hosts``, ``groups``, ``vars`` (and
    ``ssh_config``) as the YAML inventory has them, or defines ``inventory()``
    returning that mapping. It is code the operator wrote, run as such."""
    where = _display(path)
    try:
        source = Path(path).read_bytes()
        code = compile(source, where, "exec")
    except OSError as exc:
        raise InventoryError("cannot read inventory %s: %s" % (where, exc.strerror)) from None
    except SyntaxError as exc:
        raise InventoryError("syntax error: %s" % exc.msg,
                             source="%s:%s" % (where, exc.lineno)) from None
    namespace: Dict[str, Any] = {"__name__": "__converge_inventory__", "__file__": path}
    try:
        exec(code, namespace)  # noqa: S102 - the operator's own inventory program
        data = namespace["inventory"]() if callable(namespace.get("inventory")) else {
            key: namespace[key] for key in TOP_KEYS if key in namespace}
    except InventoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - any error in the user's program
        import traceback

        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == where]
        line = frames[-1].lineno if frames else 1
        raise InventoryError("%s: %s" % (type(exc).__name__, exc),
                             source="%s:%s" % (where, line)) from None
    return _Loader(where, Path(path).parent, None).build(data)


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
                groups=sorted(host_groups), ssh_config=self.path(ssh_config),
                become_user=conn.get("become_user"), python=conn.get("python"))
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
                check = {"address": address_problem, "user": user_problem,
                         "become_user": user_problem}.get(key)
                problem = check(conn[key]) if check else None
                if key == "python" and not PYTHON.fullmatch(conn[key]):
                    problem = ("python '%s' is not a path to python3 such as "
                               "/usr/bin/python3" % printable(conn[key]))
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
    """As recipe.display: relative inside the current directory, unless that is /."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") or os.getcwd() == "/" else rel


def host_vars(hosts: Iterable[Host]) -> Dict[str, Dict[str, Any]]:
    """The attribute layer of each host, for runner.run(host_vars=...)."""
    return {h.name: h.vars for h in hosts}
