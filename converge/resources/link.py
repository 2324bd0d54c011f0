"""link: a symbolic or hard link, or its absence.

Example::

    link("/etc/localtime", to="/usr/share/zoneinfo/Europe/Paris")
    link("/usr/local/bin/tool", to="/opt/tool/bin/tool", link_type="hard")
    link("/usr/local/bin/old-tool", action="delete")

``target_file`` is the link, ``to`` what it points to (Chef's names), written
into a symbolic link as given (absolute, or relative to the link's directory).
The link itself is managed, never what it points to: a new link is made beside
its place and renamed over it, so the path is always the old thing or the new
link. A regular file in the way is a failed resource unless ``force=True``
(then it is replaced; the journal keeps it, a rollback puts it back); a
directory in the way is always a failed resource. ``owner`` and ``group`` are
the link's own (lchown: what a symbolic link points to keeps its owner).
``delete`` removes only a link: a symbolic link, or with ``link_type="hard"`` a
path that is the same file (inode) as ``to``; anything else is a failed
resource. The paths are reached as every path is (agent/paths.py): a link an
unprivileged user placed on the way is never followed. A rollback restores a
symbolic link the run changed as a link.
"""

from __future__ import annotations

import os
import stat as stat_mod
from typing import Any, Dict, List, Optional

from ..agent.managed import absolute, resolve_account
from ..errors import ResourceError
from . import _validate as v
from ._base import Change, Resource, prop


class Link(Resource, type_name="link"):
    """Manage a symbolic or hard link: where it points, its owner, or its absence."""

    actions = ("create", "delete")

    target_file: str = prop(doc="Path of the link itself.", identity=True, coerce=v.path)
    to: Optional[str] = prop(None, doc="What the link points to, written into a symbolic "
                             "link as given (absolute, or relative to the link's directory); "
                             "for a hard link, an existing file (also to delete one).",
                             required_for=("create",), coerce=v.one_line)
    link_type: str = prop("symbolic", doc="The kind of link.", choices=("symbolic", "hard"))
    owner: Optional[str] = prop(None, doc="Owner of the link itself (lchown), a user name or "
                                "uid. Unmanaged when unset.", coerce=v.account)
    group: Optional[str] = prop(None, doc="Group of the link itself (lchown), a group name or "
                                "gid. Unmanaged when unset.", coerce=v.account)
    force: bool = prop(False, doc="Replace a regular file standing at target_file (a "
                       "directory is always refused).")

    def normalise(self) -> None:
        if self.to == "":
            raise self.fail("to must not be empty")

    def check_action(self) -> None:
        if self.to is None and self.link_type == "hard":
            raise self.fail("to is required to delete a hard link: the file it is a link to")

    @property
    def _kind(self) -> str:
        return "%s link" % self.link_type

    def _source(self) -> str:
        """``to`` as a path on the target (a relative one from the link's directory)."""
        return os.path.normpath(os.path.join(os.path.dirname(self.target_file), str(self.to)))

    def current(self, system: Any) -> Dict[str, Any]:
        path = self.target_file
        state: Dict[str, Any] = {"exists": False}
        if self.action == "create":
            state["want_uid"] = resolve_account(system.uid, self.owner, "owner",
                                                system.accounts_where("passwd"))
            state["want_gid"] = resolve_account(system.gid, self.group, "group",
                                                system.accounts_where("group"))
        source = None
        if self.link_type == "hard":
            source = system.stat(self._source())
            if self.action == "create" and source is None:
                raise ResourceError("%s does not exist: a hard link needs an existing file"
                                    % self._source(), hint="create it first")
            if self.action == "create" and stat_mod.S_ISDIR(source.st_mode):
                raise ResourceError("%s is a directory: a hard link cannot point to one"
                                    % self._source(), hint="use link_type='symbolic'")
        if source is not None:  # a new hard link has the owner of the file it names
            state.update(new_uid=source.st_uid, new_gid=source.st_gid,
                         new_owner=system.user_name(source.st_uid),
                         new_group=system.group_name(source.st_gid))
        st = system.stat(path)
        if st is None:
            return state
        state.update(exists=True, uid=st.st_uid, gid=st.st_gid,
                     owner=system.user_name(st.st_uid), group=system.group_name(st.st_gid))
        if stat_mod.S_ISDIR(st.st_mode):
            raise ResourceError("%s is a directory, not a link" % path,
                                hint="remove it first, or choose another path")
        if stat_mod.S_ISLNK(st.st_mode):
            state.update(kind="symbolic", to=system.readlink(path))
        elif source is not None and (st.st_dev, st.st_ino) == (source.st_dev, source.st_ino):
            state.update(kind="hard")
        else:
            state.update(kind="file")
        if self.action == "delete":
            if state["kind"] != self.link_type:
                what = "a symbolic link" if state["kind"] == "symbolic" else "a file"
                if self.link_type == "hard" and state["kind"] == "file":
                    what = "not the same file as %s" % self.to
                raise ResourceError("%s is %s, not a %s; nothing was deleted"
                                    % (path, what, self._kind),
                                    hint="delete a file with file(%r, action='delete')" % path)
        elif state["kind"] == "file" and not self.force:
            raise ResourceError("%s is a file, not a %s" % (path, self._kind),
                                hint="set force=True to replace it, or remove it first")
        return state

    def changes(self, current: Dict[str, Any]) -> List[Change]:
        path = self.target_file
        if self.action == "delete":
            return [Change("delete %s %s" % (self._kind, path))] if current["exists"] else []
        out: List[Change] = []
        kind = current.get("kind")
        if not current["exists"]:
            out.append(Change("create %s %s to %s" % (self._kind, path, self.to), data="link"))
        elif kind == "file":
            out.append(Change("replace file %s with a %s to %s" % (path, self._kind, self.to),
                              data="link"))
        elif kind != self.link_type:
            out.append(Change("replace %s link %s with a %s to %s"
                              % (kind, path, self._kind, self.to), data="link"))
        elif kind == "symbolic" and current["to"] != self.to:
            out.append(Change("change symbolic link %s from %s to %s"
                              % (path, current["to"], self.to), data="link"))
        # a new symbolic link is the runner's (shown as none), a new hard link has
        # the owner of the file it names
        prefix = "new_" if out and self.link_type == "hard" else ""
        fresh = bool(out) and self.link_type == "symbolic"
        for key, name in (("uid", "owner"), ("gid", "group")):
            want = getattr(self, name)
            if want is not None and (fresh or current.get(prefix + key)
                                     != current["want_" + key]):
                was = None if fresh else current.get(prefix + name)
                out.append(Change("change %s from %s to '%s'"
                                  % (name, "none" if was is None else "'%s'" % was, want),
                                  data="owner"))
        return out

    def before(self, system: Any, current: Any, changes: List[Change]) -> Dict[str, Any]:
        """Journal hook: the journal keeps the path as it was (a link, a file, or
        nothing), and a rollback puts that back."""
        return {"files": [absolute(system, self.target_file)]}

    def apply(self, system: Any, changes: List[Change]) -> None:
        kinds = {c.data for c in changes}
        if self.action == "delete":
            system.remove(self.target_file)
            return
        if "link" in kinds:
            if self.link_type == "hard":
                system.hard_link_atomic(self._source(), self.target_file)
            else:
                system.link_atomic(str(self.to), self.target_file)
        if "owner" in kinds:
            current = self.current(system)
            system.chown(self.target_file, current["want_uid"], current["want_gid"])
