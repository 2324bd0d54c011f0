"""timezone: the machine's time zone: the /etc/localtime link and /etc/timezone.

Example::

    timezone("Europe/Paris")
    timezone("UTC")

/etc/localtime becomes a link to /usr/share/zoneinfo/<zone> (replaced whole:
the new link is made beside it and renamed over it), and /etc/timezone holds the
zone's name, as Debian's tzdata does. A link that already names the zone,
absolute or relative (``../usr/share/zoneinfo/Europe/Paris``, as timedatectl
writes it), is up to date; a copy of a zone file in place of the link is
replaced by the link. The zone is checked on the target: a zone with no file
under /usr/share/zoneinfo there fails the resource, naming it. Rollback puts the
old link and /etc/timezone back; a /etc/localtime that was not a link to a zone
cannot be restored, and rollback says so.
"""

from __future__ import annotations

import os
import re
import stat as stat_mod
from typing import Any, Dict, List, Optional, Tuple

from ..agent import managed
from ..errors import ResourceError
from . import _validate as v
from ._base import Change, Resource, prop

ZONEINFO = "/usr/share/zoneinfo"
LOCALTIME = "/etc/localtime"
ZONE = re.compile(r"[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*")


def zone_of(link: Optional[str]) -> Optional[str]:
    """The zone a /etc/localtime link names, absolute or relative to /etc."""
    if link is None:
        return None
    target = os.path.normpath(os.path.join("/etc", link))
    prefix = ZONEINFO + "/"
    return target[len(prefix):] if target.startswith(prefix) else None


class Timezone(Resource, type_name="timezone"):
    """Set the machine's time zone."""

    actions = ("set",)

    timezone: str = prop(doc="A zone name under /usr/share/zoneinfo, such as Europe/Paris "
                         "or UTC.", identity=True)

    def normalise(self) -> None:
        zone = self.timezone
        if not ZONE.fullmatch(zone) or len(zone) > 255 or \
                zone.startswith("-"):
            raise self.fail("timezone %s is not a zone name such as 'Europe/Paris' or 'UTC'"
                            % v.quoted(zone))

    # -- target ----------------------------------------------------------------------

    def current(self, system: Any) -> Dict[str, Any]:
        path = "%s/%s" % (ZONEINFO, self.timezone)
        st = system.stat(path)
        if st is not None and stat_mod.S_ISLNK(st.st_mode):  # UTC -> Etc/UTC
            st = system.stat(os.path.normpath(os.path.join(ZONEINFO, os.path.dirname(
                self.timezone), system.readlink(path) or "")))
        if st is None or not stat_mod.S_ISREG(st.st_mode):
            raise ResourceError("unknown time zone %s: there is no file %s on this machine"
                                % (v.quoted(self.timezone), path),
                                hint="check the name (ls %s), or install tzdata" % ZONEINFO)
        link = system.readlink(LOCALTIME)
        return {"link": link, "exists": system.exists(LOCALTIME),
                "file": system.read_text("/etc/timezone")}

    def changes(self, current: Dict[str, Any]) -> List[Change]:
        out = []
        zone = self.timezone
        old = zone_of(current["link"])
        if old != zone:
            was = old or (current["link"] and "a link to %s" % current["link"]) or (
                "a copy of a zone file" if current["exists"] else "absent")
            out.append(Change("set time zone to %s (%s was %s)" % (zone, LOCALTIME, was),
                              data="link"))
        if current["file"] != zone + "\n":
            out.append(Change("update /etc/timezone from %s to %s" % (
                v.quoted((current["file"] or "").strip() or "(none)"), zone),
                data=managed.Write("/etc/timezone", (zone + "\n").encode("utf-8"), 0o644)))
        return out

    # -- journal and rollback -------------------------------------------------------------

    def before(self, system: Any, current: Dict[str, Any], changes: List[Change]
               ) -> Dict[str, Any]:
        """Journal hook: /etc/timezone kept whole; the zone the link named."""
        out: Dict[str, Any] = {"files": ["/etc/timezone"]}
        if any(c.data == "link" for c in changes):
            old = zone_of(current["link"])
            if old is None:
                return {"irreversible": "%s was not a link to a zone under %s"
                        % (LOCALTIME, ZONEINFO)}
            out["zone"] = old
        return out

    @classmethod
    def undo(cls, before: Dict[str, Any], system: Any) -> List[Tuple[str, str, Dict[str, Any]]]:
        """Rollback: the old zone's link (the journal then restores /etc/timezone)."""
        return [("timezone", "set", {"timezone": before["zone"]})] if before.get("zone") else []

    # -- acting --------------------------------------------------------------------------

    def apply(self, system: Any, changes: List[Change]) -> None:
        for change in changes:
            if change.data == "link":
                temp = "/etc/.localtime.converge-%d.tmp" % os.getpid()
                if system.readlink(temp) is not None:
                    system.remove(temp)
                system.symlink("%s/%s" % (ZONEINFO, self.timezone), temp)
                system.rename(temp, LOCALTIME)
            else:
                managed.write(system, change.data)
