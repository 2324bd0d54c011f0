"""user: a local account, made and changed with the machine's useradd and usermod.

Example::

    user("deploy", shell="/bin/bash", groups=["sudo"], manage_home=True)
    user("backup", uid=1500, gid="backup", home="/srv/backup", system=True,
         comment="nightly backups", password="$6$Qf3.abcd$0rXw1Vq5tDk8bq3cWqU3hD9LZ6bTq3t1")
    user("ci", groups=["docker"], append=False, expire_date="2027-06-30")
    user("olduser", action="lock")
    user("olduser", action="remove", manage_home=True)

``create`` makes the account (useradd) or brings an existing one to what is
declared (usermod), field by field: what is not declared is left as it is (an
existing user keeps its uid and home). ``modify`` does the same to a user that
must already exist. ``groups`` are supplementary groups: ``None`` leaves them
alone; with ``append=True`` (the default) the listed ones are added and others
kept; with ``append=False`` the list is exact (``[]`` removes every one).
``password`` is a crypt hash, written with ``chpasswd -e`` (standard input, never
a command line); a user with a password is always ``sensitive``, so the hash is
never shown nor journaled in clear. ``create`` and ``modify`` keep a lock: a locked
account whose hash changes stays locked; ``lock`` and ``unlock`` (usermod -L/-U)
are the only actions that change it, and unlocking an account that has no hash
fails (usermod -U would exit 0 and leave it locked). ``manage_home`` creates the
home from /etc/skel (``useradd -m``, or a copy for an existing user without one),
moves it when ``home`` changes (``usermod -m``) and deletes it with the user
(``userdel -r``); a home that is a link, or that lies under a folder another
user owns or may write into, is refused (that user could redirect it). ``system``
only matters when the user is created.

The state is read from /etc/passwd, /etc/shadow and /etc/group; after a change it
is read again, and a tool that exits 0 without doing its work is a failure. Under
``--root``, plan works and apply is refused (the tools act on the machine).
Rollback restores the previous fields, groups and hash, removes a user the run
created, and recreates a removed user (not its home: removing a home is
irreversible).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from ..errors import PropertyError, ResourceError
from . import _accounts as acc
from . import _user_argv as _argv
from . import _validate as v
from ._base import Change, Resource, prop
from ._skel import check_home, copy_skel, default_home
from ._user_rollback import UserRollback


def _absolute(value: Any, what: str) -> str:
    """home and shell: an absolute path /etc/passwd can hold."""
    path = v.path(value, what)
    acc.passwd_field(path, what)
    if not path.startswith("/"):
        raise PropertyError("%s %s must be an absolute path" % (what, v.quoted(path)))
    return path


class User(UserRollback, Resource, type_name="user"):
    """Manage a local user account: create, modify, lock, unlock or remove it."""

    actions = ("create", "remove", "lock", "unlock", "modify")

    username: str = prop(doc="The login name.", identity=True, coerce=acc.name)
    uid: Optional[int] = prop(None, doc="The numeric user id. Unset: useradd picks one; an "
                              "existing user keeps its own.", coerce=acc.number)
    gid: Optional[str] = prop(None, doc="The primary group, a name or a number (it must "
                              "exist). Unset: useradd's default (a group named after the "
                              "user); an existing user keeps its own.", coerce=acc.group_ref)
    home: Optional[str] = prop(None, doc="The home directory path. Unset: /home/<username> "
                               "for a new user; an existing user keeps its own.",
                               coerce=_absolute)
    shell: Optional[str] = prop(None, doc="The login shell, such as '/bin/bash'.",
                                coerce=_absolute)
    comment: Optional[str] = prop(None, doc="The GECOS field (full name, room, ...).",
                                  coerce=acc.passwd_field)
    password: Optional[str] = prop(None, doc="A crypt hash ('$6$...', '$y$...'), or '!' for "
                                   "no password. A clear-text password is refused.",
                                   sensitive=True, coerce=acc.password)
    system: bool = prop(False, doc="Create a system account (useradd -r: a uid below "
                        "UID_MIN, no aging). Only used when the user is created.")
    manage_home: bool = prop(False, doc="Create the home from /etc/skel, move it when home "
                             "changes, and delete it with the user.")
    groups: Optional[List[str]] = prop(None, doc="Supplementary groups. Unset: left alone.",
                                       coerce=acc.names)
    append: bool = prop(True, doc="True: add the listed groups and keep others. False: the "
                        "list is exact: other supplementary groups are removed.")
    expire_date: Optional[str] = prop(None, doc="The day the account expires, 'YYYY-MM-DD' "
                                      "(or a datetime.date); 'never' removes the expiry.",
                                      coerce=acc.expire_date)

    def check_action(self) -> None:
        if self.password is not None:
            self.meta.sensitive = True  # sensitive by default: the journal seals the hash

    # -- target ----------------------------------------------------------------------

    def current(self, system: Any) -> Dict[str, Any]:
        entry = acc.users(system).get(self.username)
        table = acc.groups(system)
        state: Dict[str, Any] = {"exists": entry is not None, "groups_table": table}
        if entry is not None:
            state.update(entry)
            state["groups"] = sorted(g for g, e in table.items() if self.username in e["members"])
            state["home_exists"] = system.is_dir(entry["home"])
        else:
            state["default_home"] = self.home or default_home(system, self.username)
            state["home_exists"] = system.is_dir(state["default_home"])
        state["want_gid"] = None if self.gid is None else acc.resolve_group(table, self.gid)
        state["target_home_exists"] = system.is_dir(self.home) if self.home \
            else state["home_exists"]
        state["missing"] = [g for g in ([self.gid] if self.gid else []) + (self.groups or [])
                            if acc.resolve_group(table, g) is None]
        if self.action in ("create", "modify"):
            for group in state["missing"]:  # an earlier resource may create it (plan mode)
                self._warn("group %s does not exist yet" % group)
        return state

    def _warn(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)

    def changes(self, current: Dict[str, Any]) -> List[Change]:
        action, name = self.action, self.username
        if action == "remove":
            if not current["exists"]:
                return []
            home = " and its home %s" % current["home"] if self.manage_home and \
                current["home_exists"] else ""
            return [Change("remove user %s%s" % (name, home), data="remove")]
        if not current["exists"]:
            if action == "create":
                return [Change(self._create_text(current), data="create")]
            raise ResourceError("user %s does not exist, so it cannot %s" % (name, action),
                                hint="declare it with user(%r) first" % name)
        if action in ("lock", "unlock"):
            return self._lock_change(current)
        return [Change("alter user %s: %s" % (name, text), data=data)
                for text, data in self._field_changes(current)]

    def _create_text(self, current: Dict[str, Any]) -> str:
        parts = ["%s %s" % (f, getattr(self, f)) for f in ("uid", "gid", "home", "shell")
                 if getattr(self, f) is not None]
        if self.comment is not None:
            parts.append("comment %s" % v.quoted(self.comment))
        if self.manage_home:
            parts.append("home %s from /etc/skel" % current["default_home"]
                         if not current["home_exists"] else
                         "home %s (kept as it is)" % current["default_home"])
        if self.groups:
            parts.append("groups %s" % ", ".join(self.groups))
        if self.password is not None:
            parts.append("password (sensitive)")
        if self.expire_date is not None:
            parts.append("expire_date %s" % self.expire_date)
        if self.system:
            parts.append("system account")
        return "create user %s" % self.username + (" (%s)" % ", ".join(parts) if parts else "")

    def _field_changes(self, current: Dict[str, Any]) -> List[Tuple[str, Any]]:
        out: List[Tuple[str, Any]] = []
        table = current["groups_table"]
        if self.uid is not None and self.uid != current["uid"]:
            out.append(("uid from %d to %d" % (current["uid"], self.uid), "uid"))
        if self.gid is not None and current["want_gid"] != current["gid"]:
            want = acc.show_gid(table, current["want_gid"]) if current["want_gid"] is not None \
                else self.gid
            out.append(("gid from %s to %s" % (acc.show_gid(table, current["gid"]), want), "gid"))
        home, moving = current["home"], False
        if self.home is not None and self.home != home:
            moving = self.manage_home and current["home_exists"]
            out.append(("home from %s to %s%s" % (home or "''", self.home, " (moving its "
                                                  "contents)" if moving else ""), "home"))
            home = self.home
        if self.manage_home and not moving and not current["target_home_exists"]:
            out.append(("create home %s from /etc/skel" % home, "skel"))
        for field in ("shell", "comment"):
            want = getattr(self, field)
            if want is not None and want != current[field]:
                out.append(("%s from %s to %s" % (field, v.quoted(current[field]),
                                                  v.quoted(want)), field))
        if self.password is not None and acc.bare(current["password"]) != acc.bare(self.password):
            out.append(("password (sensitive)", "password"))
        if self.expire_date is not None and self.expire_date != acc.show_expire(current["expire"]):
            out.append(("expire_date from %s to %s" % (acc.show_expire(current["expire"]),
                                                       self.expire_date), "expire_date"))
        if self.groups is not None:
            have = set(current["groups"])
            added = [g for g in self.groups if g not in have]
            if added:
                out.append(("add to groups %s" % ", ".join(added), "groups"))
            dropped = sorted(have - set(self.groups)) if not self.append else []
            if dropped:
                out.append(("remove from groups %s" % ", ".join(dropped), "groups"))
        return out

    def _lock_change(self, current: Dict[str, Any]) -> List[Change]:
        hashed = current["password"] or ""
        locked = hashed.startswith("!")
        if self.action == "lock":
            return [] if locked else [Change("lock user %s" % self.username, data="lock")]
        if not locked:
            return []
        if not acc.bare(hashed).startswith("$"):
            raise ResourceError(
                "user %s has no password hash: unlocking would leave a passwordless account "
                "(usermod -U refuses this, yet exits 0)" % self.username,
                hint="give the user a password: user(%r, password='$6$...')" % self.username)
        return [Change("unlock user %s" % self.username, data="unlock")]

    # -- acting --------------------------------------------------------------------------

    def apply(self, system: Any, changes: List[Change]) -> None:
        acc.refuse_root(system, "%s user %s" % (self.action, self.username))
        current = self.current(system)
        if current["missing"] and self.action in ("create", "modify"):
            raise ResourceError("group%s %s do%s not exist" % (
                "s" if len(current["missing"]) > 1 else "", ", ".join(current["missing"]),
                "" if len(current["missing"]) > 1 else "es"),
                hint="declare it with group(...) before this user")
        kinds = {c.data for c in changes}
        name = self.username
        if self.manage_home and kinds & {"create", "remove", "home", "skel"}:
            for home in {current.get("home") or current.get("default_home"), self.home}:
                if home:
                    check_home(system, home)
        if "remove" in kinds:
            acc.run(system, ["userdel"] + (["-r"] if self.manage_home else []) + ["--", name],
                    warnings=self.warnings)
        elif "create" in kinds:
            acc.run(system, _argv.useradd(self), warnings=self.warnings)
        elif kinds & {"lock", "unlock"}:
            acc.run(system, ["usermod", "-L" if "lock" in kinds else "-U", "--", name],
                    warnings=self.warnings)
        else:
            argv = _argv.usermod(self, kinds, current)
            if len(argv) > 1:
                acc.run(system, argv + ["--", name], warnings=self.warnings)
        if self.password is not None and kinds & {"create", "password"}:
            now = acc.users(system).get(name, {}).get("password") or ""
            locked = now.startswith("!") and not self.password.startswith("!") and \
                "create" not in kinds and self.password.startswith("$")
            acc.run(system, ["chpasswd", "-e"],
                    input="%s:%s\n" % (name, ("!" if locked else "") + self.password))
        if "skel" in kinds:
            entry = acc.users(system)[name]
            copy_skel(system, entry["home"], entry["uid"], entry["gid"])
        left = [c.text for c in self.changes(self.current(system))]
        if left:
            raise ResourceError("the tools exited 0, yet user %s still differs: %s"
                                % (name, "; ".join(left)))
