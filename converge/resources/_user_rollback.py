"""The journal and rollback hooks of ``user``: what a run replaces, and the steps
that put it back. A record that holds a password hash is marked sensitive, so the
journal seals it instead of writing it in clear. Standard library only, 3.8."""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

from . import _accounts as acc
from ._base import Change

FIELDS = ("uid", "gid", "home", "shell", "comment", "password", "expire_date")


class UserRollback:
    """Mixed into User (it has username, manage_home, home and meta)."""

    username: str
    manage_home: bool
    home: Any
    meta: Any

    def before(self, system: Any, current: Dict[str, Any], changes: List[Change]
               ) -> Dict[str, Any]:
        """Journal hook: what this run replaces (the hash is sealed: the record is
        marked sensitive whenever it holds one)."""
        name = self.username
        kinds = {c.data for c in changes}
        if "create" in kinds:
            created = self.manage_home and not current["home_exists"]
            return {"username": name, "created": True, "home_created": created}
        if kinds & {"lock", "unlock"}:
            return {"username": name, "undo": "unlock" if "lock" in kinds else "lock"}
        old = {"uid": current["uid"], "gid": str(current["gid"]), "home": current["home"],
               "shell": current["shell"], "comment": current["comment"],
               "expire_date": acc.show_expire(current["expire"])}
        for field in ("home", "shell"):  # an empty field cannot be declared back
            if not old[field]:
                del old[field]
        hashed = current["password"]
        if hashed is not None and acc.bare(hashed):
            self.meta.sensitive = True
            old["password"] = hashed
        if "remove" in kinds:
            if self.manage_home and current["home_exists"]:
                return {"irreversible": "its home directory %s was deleted with it"
                        % current["home"]}
            group = acc.group_by_gid(current["groups_table"], current["gid"])
            return {"username": name, "removed": old, "groups": current["groups"],
                    "group": group}
        fields = {f: old[f] for f in FIELDS if f in kinds and f in old}
        if "password" in kinds and "password" not in old:
            return {"irreversible": "the previous password field was empty"}
        out: Dict[str, Any] = {"username": name, "fields": fields,
                               "moved": "home" in kinds and self.manage_home
                               and current["home_exists"]}
        if "groups" in kinds:
            out["groups"] = current["groups"]
        if "skel" in kinds:
            out["skel"] = self.home or current["home"]
        return out

    @classmethod
    def undo(cls, before: Dict[str, Any], system: Any) -> List[Tuple[str, str, Dict[str, Any]]]:
        """Rollback: remove a created user, recreate a removed one, unlock what was
        locked (and the reverse), or put back the fields and groups it changed."""
        name = before["username"]
        if before.get("created"):
            return [("user", "remove", {"username": name,
                                        "manage_home": bool(before.get("home_created"))})]
        if "undo" in before:
            return [("user", before["undo"], {"username": name})]
        if "removed" in before:
            old = dict(before["removed"])
            steps: List[Tuple[str, str, Dict[str, Any]]] = []
            if before.get("group"):
                steps.append(("group", "create", {"group_name": before["group"],
                                                  "gid": int(old["gid"])}))
            table = acc.groups(system)
            steps.append(("user", "create", dict(old, username=name, append=False, groups=[
                g for g in before["groups"] if g in table])))
            return steps
        props: Dict[str, Any] = dict(before["fields"], username=name,
                                     manage_home=bool(before.get("moved")))
        if "groups" in before:  # less the groups gone since (made by that run, undone)
            table = acc.groups(system)
            props.update(groups=[g for g in before["groups"] if g in table], append=False)
        steps = [("user", "modify", props)]
        if before.get("skel"):
            steps.append(("directory", "delete", {"path": before["skel"], "recursive": True}))
        return steps
