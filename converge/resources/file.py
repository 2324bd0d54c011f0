"""file: a file's content, mode and ownership.

Example::

    file("/etc/motd", content="Hello Tunnelix\\n", mode="0644", owner="root")
    file("/etc/app.conf", source="app.conf.j2")        # rendered, next to the recipe
    file("/etc/legacy.conf", action="delete")

Content is replaced atomically (temp file in the same directory, fsync, rename) and
only when it differs, so an up-to-date file keeps its mtime. The replaced file is
kept in the backup directory (``backup`` copies, 0 for none). A systemd unit file
or drop-in (under /etc/systemd/system...) whose content changes, or that is
deleted, has ``systemctl daemon-reload`` run where systemd runs, once per run, as
systemd_unit does (so does a rollback that puts unit files back).
"""

from __future__ import annotations

import os
import re
import stat as stat_mod
import time
from typing import Any, Dict, List, Optional, Union

from ..errors import ResourceError
from . import _validate as v
from ._base import Change, Pending, Resource, prop, short_hash, unplain

DIFF_LIMIT = 512 * 1024


class File(Resource, type_name="file"):
    """Manage a file: its content, mode, owner and group, or its absence."""

    actions = ("create", "create_if_missing", "delete")

    path: str = prop(doc="Path of the file; relative paths are relative to the current "
                     "directory on a local run.", identity=True, coerce=v.path)
    content: Union[str, bytes, None] = prop(None, doc="The whole content, as text or bytes.",
                                            sensitive=True)
    source: Optional[str] = prop(
        None, doc="A file next to the recipe (or in its files/ or templates/ folder, or "
        "its cookbook's) whose content to use; a name ending in .j2 is rendered as a jinja2 "
        "template. A name that resolves outside those folders is refused unless the recipe "
        "allows that folder with allow_sources().", wire=False)
    mode: Optional[str] = prop(None, doc="Permissions, such as '0644'. Unmanaged when unset "
                               "(new files get 0644).", coerce=v.mode)
    owner: Optional[str] = prop(None, doc="Owning user name or uid. Unmanaged when unset.",
                                coerce=v.account)
    group: Optional[str] = prop(None, doc="Owning group name or gid. Unmanaged when unset.",
                                coerce=v.account)
    backup: int = prop(5, doc="How many backups of replaced or deleted versions to keep "
                       "(0 keeps none).", coerce=v.between(0, 1000))

    def normalise(self) -> None:
        if self.content is not None and self.source is not None:
            raise self.fail("give either content or source, not both")
        if isinstance(self.content, str) and not _utf8(self.content):
            raise self.fail("content is not valid UTF-8 text (it holds a lone surrogate); "
                            "give bytes for binary content")
        if self.source is not None:
            self.content = self._load_source(self.source)

    def _load_source(self, source: str) -> Union[str, bytes]:
        from ..context import current

        return current().load_source(source)

    def decoded(self) -> None:
        self.content = unplain(self.content)

    def desired_bytes(self) -> Optional[bytes]:
        if self.content is None:
            return None
        if isinstance(self.content, bytes):
            return self.content
        return self.content.encode("utf-8")

    # -- target ----------------------------------------------------------------------

    def current(self, system: Any) -> Dict[str, Any]:
        """The file's state. At a symbolic link, ``delete`` removes the link itself;
        the other actions manage the file it points to when the link is trusted
        (see agent/paths.py: root's link in a root-only directory) and fail
        naming the link otherwise, or when it is dangling."""
        st = system.stat(self.path)
        state: Dict[str, Any] = {"exists": st is not None}
        if st is not None and stat_mod.S_ISLNK(st.st_mode):
            state["link"] = system.readlink(self.path)
            if self.action == "delete":
                return state
            st = system.stat(self.path, follow=True)
        if st is not None:
            if stat_mod.S_ISDIR(st.st_mode):
                raise ResourceError("%s is a directory, not a file" % self.path)
            state.update(
                mode="%04o" % stat_mod.S_IMODE(st.st_mode),
                owner=system.user_name(st.st_uid),
                group=system.group_name(st.st_gid),
                uid=st.st_uid,
                gid=st.st_gid,
            )
            if self.content is not None or self.action == "delete":
                state["content"] = system.read_bytes(self.path)
        if self.action != "delete":
            state["want_uid"] = resolve_account(system.uid, self.owner, "owner",
                                                system.accounts_where("passwd"))
            state["want_gid"] = resolve_account(system.gid, self.group, "group",
                                                system.accounts_where("group"))
        return state

    def changes(self, current: Dict[str, Any]) -> List[Change]:
        exists = current["exists"]
        if self.action == "delete":
            if not exists:
                return []
            if current.get("link") is not None:
                return [Change("delete symbolic link %s" % self.path)]
            return [Change("delete file %s" % self.path)]
        if self.action == "create_if_missing" and exists:
            return []
        out: List[Change] = []
        if not exists:
            out.append(Change("create new file %s" % self.path, data="create"))
        want = self.desired_bytes()
        have = current.get("content")
        if want is not None and want != have:
            out.append(self._content_change(have, want))
        out.extend(attribute_changes(self, current))
        return out

    def writes(self) -> List[str]:
        return [os.path.normpath(self.path)]

    def _content_change(self, have: Optional[bytes], want: bytes) -> Change:
        if self.hides_content:
            return Change("update content in file %s (sensitive)" % self.path, data="content")
        before = "none" if have is None else short_hash(have)
        text = "update content in file %s from %s to %s" % (self.path, before, short_hash(want))
        return Change(text, diff=unified_diff(have or b"", want, self.path), data="content")

    def before(self, system: Any, current: Any, changes: List[Change]) -> Dict[str, Any]:
        """Journal hook: the journal keeps the file (content, mode, owner) as it was;
        a rollback restores it, or deletes it when this run created it."""
        return {"files": [absolute(system, self.path)]}

    def leaves(self, system: Any, current: Any, changes: List[Change]) -> List[Pending]:
        """A unit file's content changed, or the file went: systemctl daemon-reload."""
        if not changes or not (self.action == "delete" or any(
                c.data in ("create", "content") for c in changes)):
            return []
        from . import _init_systems as init_sys  # here: a plan of files need not load it

        if init_sys.is_unit_file(absolute(system, self.path)) and \
                init_sys.systemd_running(system):
            return [init_sys.daemon_reload()]
        return []

    def apply(self, system: Any, changes: List[Change]) -> None:
        kinds = {c.data for c in changes}
        if self.action == "delete":
            if system.readlink(self.path) is None:
                keep_backup(system, self.path, self.backup)
            system.remove(self.path)
            return
        current = self.current(system)
        mode = int(self.mode, 8) if self.mode else None
        if "create" in kinds or "content" in kinds:
            parent = os.path.dirname(system.absolute(self.path))
            if not system.is_dir(parent):
                raise ResourceError(
                    "parent directory %s does not exist" % parent,
                    hint="declare it first: directory(%r, recursive=True)" % parent,
                )
            if current["exists"]:
                keep_backup(system, self.path, self.backup)
            system.write_atomic(self.path, self.desired_bytes() or b"", mode,
                                current["want_uid"], current["want_gid"], follow=True)
            return
        set_attributes(system, self.path, kinds, mode, current)


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def attribute_changes(resource: Any, current: Dict[str, Any]) -> List[Change]:
    """Mode, owner and group changes, shared by file-like resources (a file or
    directory that does not exist yet had none: ``from none``)."""
    out = []
    if resource.mode is not None and current.get("mode") != resource.mode:
        out.append(Change("change mode from %s to '%s'" % (_was(current, "mode"),
                                                            resource.mode), data="mode"))
    if resource.owner is not None and current.get("uid") != current["want_uid"]:
        out.append(Change("change owner from %s to '%s'" % (_was(current, "owner"),
                                                             resource.owner), data="owner"))
    if resource.group is not None and current.get("gid") != current["want_gid"]:
        out.append(Change("change group from %s to '%s'" % (_was(current, "group"),
                                                             resource.group), data="group"))
    return out


def _was(current: Dict[str, Any], key: str) -> str:
    value = current.get(key)
    return "none" if value is None else "'%s'" % value


def set_attributes(system: Any, path: str, kinds: Any, mode: Optional[int],
                   current: Dict[str, Any]) -> None:
    """Owner and group, then mode, in one pass: a chown clears setuid and setgid,
    so after an owner change the mode (wanted, or the one it had) is set again."""
    owner = "owner" in kinds or "group" in kinds
    if owner and mode is None and current.get("mode"):
        mode = int(current["mode"], 8)
    if "mode" not in kinds and not owner:
        return
    system.set_attributes(path, mode, current["want_uid"] if owner else -1,
                          current["want_gid"] if owner else -1)


def resolve_account(lookup: Any, name: Optional[str], what: str,
                    where: str = "on this machine") -> int:
    """The uid/gid of a user or group name; a failure when it does not exist."""
    if name is None:
        return -1
    value = lookup(name)
    if value is None:
        raise ResourceError(
            "%s '%s' does not exist %s" % (what, name, where),
            hint="create it first (a user or group must exist before files name it), "
            "or give a numeric id",
        )
    return int(value)


def unified_diff(before: bytes, after: bytes, path: str) -> Optional[str]:
    """A unified diff of two contents, or None for binary or very large content."""
    if len(before) > DIFF_LIMIT or len(after) > DIFF_LIMIT or b"\0" in before + after:
        return None
    try:
        old, new = before.decode("utf-8"), after.decode("utf-8")
    except UnicodeDecodeError:
        return None
    import difflib

    lines = difflib.unified_diff(old.splitlines(True), new.splitlines(True),
                                 fromfile=path, tofile=path + " (new)")
    text = "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
                   for line in lines)
    return text or None


_BACKUP_STAMP = re.compile(r"[0-9]{14}(-[0-9]{6,})?")


def keep_backup(system: Any, path: str, count: int) -> None:
    """Copy the file about to be replaced into the backup directory
    (``backup/PATH.YYYYMMDDHHMMSS-UUUUUU`` in the state directory: never one
    name for two backups); keep the ``count`` newest."""
    if count <= 0:
        return
    data = system.read_bytes(path)
    if data is None:
        return
    target = system.absolute(path)
    directory = backup_root(system) + os.path.dirname(target)
    makedirs(system, directory, 0o700)
    base = os.path.basename(target)
    now = time.time()
    second, micro = time.strftime("%Y%m%d%H%M%S", time.gmtime(now)), int(now * 1e6) % 1000000
    name = "%s.%s-%06d" % (base, second, micro)
    while system.exists(directory + "/" + name):
        micro += 1
        name = "%s.%s-%06d" % (base, second, micro)
    system.write_atomic(directory + "/" + name, data, 0o600)
    old = sorted(f for f in system.listdir(directory) if f.startswith(base + ".")
                 and _BACKUP_STAMP.fullmatch(f[len(base) + 1:]))
    for stale in old[:-count]:
        system.remove(directory + "/" + stale)


def absolute(system: Any, path: str) -> str:
    """A target path made absolute (relative ones are from the System's cwd)."""
    return str(system.absolute(path))


def backup_root(system: Any) -> str:
    """Where replaced files are kept: backup/ in the state directory (the one the
    journal and the run lock use, ``CONVERGE_STATE_DIR`` included)."""
    return str(system.state_dir()) + "/backup"


def makedirs(system: Any, path: str, mode: int) -> None:
    """mkdir -p through the System."""
    if system.is_dir(path) or path in ("", "/"):
        return
    makedirs(system, os.path.dirname(path), mode)
    system.mkdir(path, mode)
