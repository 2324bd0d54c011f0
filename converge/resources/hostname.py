"""hostname: the machine's name, live and at boot, and its /etc/hosts line.

Example::

    hostname("web1.example.com")
    hostname("db1", ipaddress="10.0.0.21")

Sets the live host name (``hostname NAME``: sethostname), writes /etc/hostname,
and keeps one /etc/hosts line for the name: ``127.0.1.1 NAME`` as Debian's
installer does when ``ipaddress`` is None, else ``IPADDRESS NAME``; a fully
qualified name is followed by its short name (``127.0.1.1 web1.example.com
web1``), so both resolve. An older line for the same address is replaced; every
other line, and comments, are kept. Where /etc/hostname or /etc/hosts is a
bind mount (a container's), it cannot be replaced by a rename and is rewritten
in place. Rollback restores both files and the live name.
"""

from __future__ import annotations

import errno
import re
from typing import Any, Dict, List, Optional, Tuple

from ..agent import managed
from ..errors import PropertyError, ResourceError
from . import _validate as v
from ._base import Change, Resource, prop

LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
DEBIAN_ADDRESS = "127.0.1.1"


def hosts_edit(text: Optional[str], address: str, line: str) -> str:
    """/etc/hosts with ``line`` for ``address``: the first line for that address
    replaced and later ones dropped, or, when there is none, added after the
    127.0.0.1 line (at the end without one). Other lines are kept as they are."""
    lines = (text or "").splitlines()
    out: List[str] = []
    placed = False
    for raw in lines:
        fields = raw.split("#", 1)[0].split()
        if fields and fields[0] == address:
            if not placed:
                out.append(line)
                placed = True
            continue
        out.append(raw)
    if not placed:
        anchor = max((i for i, raw in enumerate(out) if raw.split()[:1] == ["127.0.0.1"]),
                     default=len(out) - 1)
        out.insert(anchor + 1, line)
    return "".join(raw + "\n" for raw in out)


def _address(value: Any, what: str) -> str:
    """An IPv4 or IPv6 address (or an ipaddress object), in its canonical form."""
    import ipaddress

    try:
        return str(ipaddress.ip_address(str(value)))
    except ValueError:
        raise PropertyError("%s %s is not an IPv4 or IPv6 address"
                            % (what, v.quoted(value))) from None


def _write(path: str, text: str) -> managed.Write:
    """Change.data of /etc/hostname or /etc/hosts: the file as it should be."""
    return managed.Write(path, text.encode("utf-8"), 0o644)


class Hostname(Resource, type_name="hostname"):
    """Set the host name: live, in /etc/hostname and in /etc/hosts."""

    actions = ("set",)

    hostname: str = prop(doc="The host name, short (web1) or fully qualified "
                         "(web1.example.com).", identity=True)
    ipaddress: Optional[str] = prop(None, doc="The address of the /etc/hosts line. Unset: "
                                    "127.0.1.1, as Debian does.", coerce=_address)

    def normalise(self) -> None:
        name = self.hostname
        if not name or len(name) > 64 or \
                not all(LABEL.fullmatch(label) for label in name.split(".")):
            raise self.fail("hostname %s is not a valid host name (labels of letters, digits "
                            "and '-', separated by dots, at most 64 characters)"
                            % v.quoted(name))

    @property
    def hosts_line(self) -> str:
        names = [self.hostname]
        if "." in self.hostname:
            names.append(self.hostname.split(".", 1)[0])
        return "%s\t%s" % (self.ipaddress or DEBIAN_ADDRESS, " ".join(names))

    # -- target ----------------------------------------------------------------------

    def current(self, system: Any) -> Dict[str, Any]:
        state: Dict[str, Any] = {"file": system.read_text("/etc/hostname"),
                                 "hosts": system.read_text("/etc/hosts"), "live": None}
        if system.root == "/":
            done = system.run(["hostname"])
            if not done.ok:
                raise ResourceError("hostname exited %d: %s" % (done.returncode, done.output()))
            state["live"] = done.stdout.strip()
        return state

    def changes(self, current: Dict[str, Any]) -> List[Change]:
        out = []
        name = self.hostname
        if current["live"] is not None and current["live"] != name:
            out.append(Change("set hostname from %s to %s" % (v.quoted(current["live"]), name),
                              data="live"))
        if current["file"] != name + "\n":
            old = (current["file"] or "").strip() or "(none)"
            out.append(Change("update /etc/hostname from %s to %s" % (v.quoted(old), name),
                              data=_write("/etc/hostname", name + "\n")))
        hosts = hosts_edit(current["hosts"], self.ipaddress or DEBIAN_ADDRESS, self.hosts_line)
        if hosts != current["hosts"]:
            out.append(Change("set the /etc/hosts line for %s to '%s'" % (
                self.ipaddress or DEBIAN_ADDRESS, self.hosts_line.replace("\t", " ")),
                data=_write("/etc/hosts", hosts)))
        return out

    # -- journal and rollback -------------------------------------------------------------

    def before(self, system: Any, current: Dict[str, Any], changes: List[Change]
               ) -> Dict[str, Any]:
        """Journal hook: both files kept whole, and the live name."""
        return {"files": ["/etc/hostname", "/etc/hosts"], "live": current["live"]
                if any(c.data == "live" for c in changes) else None}

    @classmethod
    def undo(cls, before: Dict[str, Any], system: Any) -> List[Tuple[str, str, Dict[str, Any]]]:
        """Rollback: the live name back with ``hostname`` (the files are restored by
        the journal, after this step)."""
        if not before.get("live"):
            return []
        return [("hostname", "set", {"hostname": before["live"]})]

    # -- acting --------------------------------------------------------------------------

    def apply(self, system: Any, changes: List[Change]) -> None:
        for change in changes:
            if change.data == "live":
                if system.root != "/":
                    raise ResourceError("cannot set the live host name under the root "
                                        "directory %s" % system.root)
                done = system.run(["hostname", self.hostname])  # validated: no leading '-'
                if not done.ok:
                    raise ResourceError("hostname exited %d: %s" % (
                        done.returncode, done.output() or "(no output)"))
                continue
            try:
                managed.write(system, change.data)
            except OSError as exc:
                if exc.errno != errno.EBUSY:  # a bind mount cannot be renamed over
                    raise
                system.write_in_place(change.data.path, change.data.content)
