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
import stat as stat_mod
from typing import Any, Dict, List, Optional, Union

from ..agent import managed
from ..errors import ResourceError
from . import _validate as v
from ._base import Change, Pending, Resource, prop, unplain


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
            state["want_uid"] = managed.resolve_account(system.uid, self.owner, "owner",
                                                        system.accounts_where("passwd"))
            state["want_gid"] = managed.resolve_account(system.gid, self.group, "group",
                                                        system.accounts_where("group"))
        return state

    def changes(self, current: Dict[str, Any]) -> List[Change]:
        exists = current["exists"]
        if self.action == "delete":
            if not exists:
                return []
            gone = managed.Write(self.path, None, backup=self.backup)
            if current.get("link") is not None:
                return [Change("delete symbolic link %s" % self.path, data=gone)]
            return [Change("delete file %s" % self.path, data=gone)]
        if self.action == "create_if_missing" and exists:
            return []
        write = managed.Write(self.path, self.desired_bytes() or b"",
                              int(self.mode, 8) if self.mode else None, current["want_uid"],
                              current["want_gid"], follow=True, backup=self.backup)
        out: List[Change] = []
        if not exists:
            out.append(Change("create new file %s" % self.path, data=write))
        want = self.desired_bytes()
        have = current.get("content")
        if want is not None and want != have:
            out.append(managed.change(self, managed.content_text(
                self, "file %s" % self.path, have, want), write, have))
        out.extend(managed.attribute_changes(self, current))
        return out

    def writes(self) -> List[str]:
        return [os.path.normpath(self.path)]

    def before(self, system: Any, current: Any, changes: List[Change]) -> Dict[str, Any]:
        """Journal hook: the journal keeps the file (content, mode, owner) as it was;
        a rollback restores it, or deletes it when this run created it."""
        return managed.journal_files(system, self.path)

    def leaves(self, system: Any, current: Any, changes: List[Change]) -> List[Pending]:
        """A unit file's content changed, or the file went: systemctl daemon-reload."""
        if not any(isinstance(c.data, managed.Write) for c in changes):
            return []
        from . import _init_systems as init_sys  # here: a plan of files need not load it

        if init_sys.is_unit_file(managed.absolute(system, self.path)) and \
                init_sys.systemd_running(system):
            return [init_sys.daemon_reload()]
        return []

    def apply(self, system: Any, changes: List[Change]) -> None:
        writes = [c.data for c in changes if isinstance(c.data, managed.Write)]
        if writes:  # content, mode and owner at once
            managed.write(system, writes[0])
            return
        mode = int(self.mode, 8) if self.mode else None
        managed.set_attributes(system, self.path, {c.data for c in changes}, mode,
                               self.current(system))


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
