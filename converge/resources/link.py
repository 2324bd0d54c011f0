"""link: a symbolic link, or its absence.

Example::

    link("/etc/localtime", to="/usr/share/zoneinfo/Europe/Paris")
    link("/usr/local/bin/old-tool", action="delete")

The link itself is managed, never what it points to: a new link is made beside
its place and renamed over it, so the path is always the old thing or the new
link. A file at the path is replaced (the journal keeps it, a rollback puts it
back); a directory is refused. ``delete`` removes only a link. The path is
reached as every path is (agent/paths.py): a link an unprivileged user placed on
the way is never followed. A rollback restores a link the run changed as a link.
"""

from __future__ import annotations

import stat as stat_mod
from typing import Any, Dict, List, Optional

from ..errors import ResourceError
from . import _validate as v
from ._base import Change, Resource, prop
from .file import absolute


class Link(Resource, type_name="link"):
    """Manage a symbolic link: where it points, or its absence."""

    actions = ("create", "delete")

    path: str = prop(doc="Path of the link.", identity=True)
    to: Optional[str] = prop(None, doc="Where the link points, written into it as given "
                             "(absolute, or relative to the link's directory).")

    def normalise(self) -> None:
        self.path = v.path(self.path)
        if self.to is not None:
            self.to = v.text(self.to, "to", one_line=True)
            if not self.to:
                raise self.fail("to must not be empty")

    def check_action(self) -> None:
        if self.to is None and self.action == "create":
            raise self.fail("to= is required to create a link: where it points")

    def current(self, system: Any) -> Dict[str, Any]:
        st = system.stat(self.path)
        if st is None:
            return {"exists": False}
        if stat_mod.S_ISLNK(st.st_mode):
            return {"exists": True, "to": system.readlink(self.path)}
        if stat_mod.S_ISDIR(st.st_mode):
            raise ResourceError("%s is a directory, not a symbolic link" % self.path,
                                hint="remove it first, or choose another path")
        if self.action == "delete":
            raise ResourceError("%s is a file, not a symbolic link; delete it with "
                                "file(%r, action='delete')" % (self.path, self.path))
        return {"exists": True, "to": None}

    def changes(self, current: Dict[str, Any]) -> List[Change]:
        if self.action == "delete":
            return [Change("delete symbolic link %s" % self.path)] if current["exists"] else []
        if not current["exists"]:
            return [Change("create symbolic link %s to %s" % (self.path, self.to))]
        if current["to"] is None:
            return [Change("replace file %s with a symbolic link to %s" % (self.path, self.to))]
        if current["to"] != self.to:
            return [Change("change symbolic link %s from %s to %s"
                           % (self.path, current["to"], self.to))]
        return []

    def before(self, system: Any, current: Any, changes: List[Change]) -> Dict[str, Any]:
        """Journal hook: the journal keeps the path as it was (a link, a file, or
        nothing), and a rollback puts that back."""
        return {"files": [absolute(system, self.path)]}

    def apply(self, system: Any, changes: List[Change]) -> None:
        if self.action == "delete":
            system.remove(self.path)
            return
        system.link_atomic(str(self.to), self.path)
