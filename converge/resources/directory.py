"""directory: a directory, its mode and ownership, or its absence.

Example::

    directory("/srv/app/releases", mode="0750", owner="root", recursive=True)
    directory("/var/tmp/old-cache", action="delete", recursive=True)
"""

from __future__ import annotations

import os
import stat as stat_mod
from typing import Any, Dict, List, Optional, Tuple

from ..agent.managed import (
    absolute,
    attribute_changes,
    makedirs,
    resolve_account,
    set_attributes,
)
from ..errors import ResourceError
from . import _validate as v
from ._base import Change, Resource, prop


class Directory(Resource, type_name="directory"):
    """Manage a directory: create it (with its parents when recursive) or delete it."""

    actions = ("create", "delete")

    path: str = prop(doc="Path of the directory.", identity=True, coerce=v.path)
    mode: Optional[str] = prop(None, doc="Permissions, such as '0755'. New directories get "
                               "0755 when unset.", coerce=v.mode)
    owner: Optional[str] = prop(None, doc="Owning user name or uid.", coerce=v.account)
    group: Optional[str] = prop(None, doc="Owning group name or gid.", coerce=v.account)
    recursive: bool = prop(False, doc="create: also create missing parents (with default "
                           "permissions). delete: remove the directory with its contents.")

    def current(self, system: Any) -> Dict[str, Any]:
        """The directory's state; a trusted link to a directory counts as that
        directory, except for ``delete`` (see agent/paths.py)."""
        st = system.stat(self.path, follow=self.action != "delete")
        state: Dict[str, Any] = {"exists": st is not None}
        if st is not None:
            if not stat_mod.S_ISDIR(st.st_mode):
                raise ResourceError("%s exists and is not a directory" % self.path)
            state.update(mode="%04o" % stat_mod.S_IMODE(st.st_mode),
                         owner=system.user_name(st.st_uid), group=system.group_name(st.st_gid),
                         uid=st.st_uid, gid=st.st_gid)
        if self.action != "delete":
            state["want_uid"] = resolve_account(system.uid, self.owner, "owner",
                                                system.accounts_where("passwd"))
            state["want_gid"] = resolve_account(system.gid, self.group, "group",
                                                system.accounts_where("group"))
        return state

    def changes(self, current: Dict[str, Any]) -> List[Change]:
        if self.action == "delete":
            return [Change("delete directory %s" % self.path)] if current["exists"] else []
        out = []
        if not current["exists"]:
            out.append(Change("create new directory %s" % self.path, data="create"))
        out.extend(attribute_changes(self, current))
        return out

    def before(self, system: Any, current: Dict[str, Any], changes: List[Change]
               ) -> Dict[str, Any]:
        """Journal hook: whether it existed, its mode and owner, and the directories
        this run creates (itself and missing parents), for a rollback to remove."""
        path = absolute(system, self.path)
        if self.action == "delete":
            if self.recursive and system.listdir(path):
                return {"irreversible": "its contents were deleted, not kept"}
            return {"path": path, "mode": current["mode"], "uid": current["uid"],
                    "gid": current["gid"]}
        created = []
        while path not in ("", "/") and not system.is_dir(path):
            created.append(path)
            path = os.path.dirname(path)
        if created:
            return {"created": created}
        return {"path": path, "mode": current["mode"], "uid": current["uid"],
                "gid": current["gid"]}

    @classmethod
    def undo(cls, before: Dict[str, Any], system: Any) -> List[Tuple[str, str, Dict[str, Any]]]:
        """Rollback: remove the directories the run created (when empty), or put
        back the mode and owner (an empty directory when the run deleted it)."""
        if "created" in before:
            return [("directory", "delete", {"path": p}) for p in before["created"]]
        return [("directory", "create", {"path": before["path"], "mode": before["mode"],
                                         "owner": str(before["uid"]),
                                         "group": str(before["gid"])})]

    def apply(self, system: Any, changes: List[Change]) -> None:
        if self.action == "delete":
            if self.recursive:
                system.rmtree(self.path)
            else:
                try:
                    system.rmdir(self.path)
                except OSError as exc:
                    raise ResourceError(
                        "cannot delete %s: %s" % (self.path, exc.strerror),
                        hint="use recursive=True to delete a directory with its contents",
                    ) from exc
            return
        kinds = {c.data for c in changes}
        mode = int(self.mode, 8) if self.mode else 0o755
        state = self.current(system)
        if "create" in kinds:
            absolute = os.path.normpath(os.path.join(system.cwd, self.path))
            parent = os.path.dirname(absolute)
            if not system.is_dir(parent):
                if not self.recursive:
                    raise ResourceError(
                        "parent directory %s does not exist" % parent,
                        hint="use recursive=True to create missing parents",
                    )
                makedirs(system, parent, 0o755)
            system.mkdir(self.path, mode, state["want_uid"], state["want_gid"])
            return
        set_attributes(system, self.path, kinds, mode if self.mode else None, state)
