"""group: a local group and its members, with groupadd, groupmod and gpasswd.

Example::

    group("deploy")
    group("docker", members=["deploy", "ci"])                  # exactly these two
    group("adm", members=["deploy"], append=True)              # add deploy, keep others
    group("backup", gid=1500, system=True)
    group("games", action="remove")

``create`` makes the group (groupadd) or brings an existing one to what is
declared; ``modify`` does the same to a group that must already exist. ``gid``
changes the group's number (groupmod -g; files keep their old gid). ``members``
lists the users whose supplementary group it is: ``None`` leaves the members
alone, a list is exact (``gpasswd -M``, ``[]`` empties the group) unless
``append=True``, which adds the missing ones (``gpasswd -a``) and keeps the rest.
A member that does not exist in /etc/passwd fails the resource, naming it, before
anything changes. ``remove`` runs groupdel, which refuses to remove a user's
primary group (its message is the failure). ``system`` only matters at creation.

State comes from /etc/group, read again after a change. Under ``--root``, plan
works and apply is refused. Rollback removes a group the run created, recreates
a removed one with its gid and members, and restores a changed gid and members.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from ..errors import ResourceError
from . import _accounts as acc
from ._base import Change, Resource, prop


class Group(Resource, type_name="group"):
    """Manage a local group: create, modify or remove it, and its members."""

    actions = ("create", "remove", "modify")

    group_name: str = prop(doc="The group's name.", identity=True, coerce=acc.name)
    gid: Optional[int] = prop(None, doc="The numeric group id. Unset: groupadd picks one; an "
                              "existing group keeps its own.", coerce=acc.number)
    members: Optional[List[str]] = prop(None, doc="User names whose supplementary group this "
                                        "is. Unset: members are left alone.", coerce=acc.names)
    append: bool = prop(False, doc="True: add the listed members and keep the others. False: "
                        "the list is exact.")
    system: bool = prop(False, doc="Create a system group (groupadd -r: a gid below GID_MIN). "
                        "Only used when the group is created.")

    # -- target ----------------------------------------------------------------------

    def current(self, system: Any) -> Dict[str, Any]:
        entry = acc.groups(system).get(self.group_name)
        state: Dict[str, Any] = {"exists": entry is not None}
        if entry is not None:
            state.update(entry)
        known = acc.users(system)
        state["unknown"] = [m for m in self.members or [] if m not in known]
        if self.action in ("create", "modify"):
            for member in state["unknown"]:  # an earlier resource may create it (plan mode)
                text = "user %s does not exist yet" % member
                if text not in self.warnings:
                    self.warnings.append(text)
        return state

    def changes(self, current: Dict[str, Any]) -> List[Change]:
        name = self.group_name
        if self.action == "remove":
            return [Change("remove group %s" % name, data="remove")] if current["exists"] else []
        if not current["exists"]:
            if self.action == "modify":
                raise ResourceError("group %s does not exist, so it cannot be modified" % name,
                                    hint="use action='create' to create it")
            parts = (["gid %d" % self.gid] if self.gid is not None else []) + (
                ["members %s" % ", ".join(self.members)] if self.members else []) + (
                ["system group"] if self.system else [])
            return [Change("create group %s" % name + (" (%s)" % ", ".join(parts)
                                                       if parts else ""), data="create")]
        out = []
        if self.gid is not None and self.gid != current["gid"]:
            out.append(Change("alter group %s: gid from %d to %d" % (name, current["gid"],
                                                                   self.gid), data="gid"))
        added, dropped = self._member_changes(current["members"])
        if added:
            out.append(Change("alter group %s: add members %s" % (name, ", ".join(added)),
                              data="members"))
        if dropped:
            out.append(Change("alter group %s: remove members %s" % (name, ", ".join(dropped)),
                              data="members"))
        return out

    def _member_changes(self, have: List[str]) -> Tuple[List[str], List[str]]:
        if self.members is None:
            return [], []
        added = [m for m in self.members if m not in have]
        dropped = [] if self.append else [m for m in have if m not in self.members]
        return added, dropped

    # -- journal and rollback -------------------------------------------------------------

    def before(self, system: Any, current: Dict[str, Any], changes: List[Change]
               ) -> Dict[str, Any]:
        """Journal hook: whether the group existed, and its gid and members."""
        if not current["exists"]:
            return {"group_name": self.group_name, "created": True}
        kinds = {c.data for c in changes}
        out: Dict[str, Any] = {"group_name": self.group_name}
        if "remove" in kinds or "gid" in kinds:
            out["gid"] = current["gid"]
        if "remove" in kinds or "members" in kinds:
            out["members"] = current["members"]
        out["removed"] = "remove" in kinds
        return out

    @classmethod
    def undo(cls, before: Dict[str, Any], system: Any) -> List[Tuple[str, str, Dict[str, Any]]]:
        """Rollback: remove a created group; recreate a removed one; put the gid and
        the exact member list back."""
        name = before["group_name"]
        if before.get("created"):
            return [("group", "remove", {"group_name": name})]
        props = {"group_name": name, "gid": before.get("gid"), "members": before.get("members")}
        return [("group", "create" if before.get("removed") else "modify", props)]

    # -- acting --------------------------------------------------------------------------

    def apply(self, system: Any, changes: List[Change]) -> None:
        acc.refuse_root(system, "%s group %s" % (self.action, self.group_name))
        name = self.group_name
        current = self.current(system)
        if current["unknown"] and self.action != "remove":
            raise ResourceError("member%s %s of group %s do%s not exist" % (
                "s" if len(current["unknown"]) > 1 else "", ", ".join(current["unknown"]), name,
                "" if len(current["unknown"]) > 1 else "es"),
                hint="create the user%s first: user(%r)" % (
                    "s" if len(current["unknown"]) > 1 else "", current["unknown"][0]))
        kinds = {c.data for c in changes}
        if "remove" in kinds:
            acc.run(system, ["groupdel", "--", name], warnings=self.warnings)
            return self._verify(system)
        if "create" in kinds:
            argv = ["groupadd"] + (["-g", str(self.gid)] if self.gid is not None else []) + (
                ["-r"] if self.system else [])
            acc.run(system, argv + ["--", name], warnings=self.warnings)
            current = self.current(system)
        if "gid" in kinds:
            acc.run(system, ["groupmod", "-g", str(self.gid), "--", name], warnings=self.warnings)
        added, dropped = self._member_changes(current.get("members", []))
        if dropped or (added and not self.append):
            acc.run(system, ["gpasswd", "-M", ",".join(self.members or []), name])
        else:
            for member in added:
                acc.run(system, ["gpasswd", "-a", member, name])  # its "Adding user" is no warning
        self._verify(system)

    def _verify(self, system: Any) -> None:
        left = [c.text for c in self.changes(self.current(system))]
        if left:
            raise ResourceError("the tools exited 0, yet group %s still differs: %s"
                                % (self.group_name, "; ".join(left)))
