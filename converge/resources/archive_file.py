"""archive_file: a tar (gz, bz2, xz) or zip archive on the target, extracted.

Example::

    archive_file("/srv/releases/app-1.4.tar.gz", "/opt/app", overwrite="auto",
                 owner="app", group="app", strip_components=1)
    archive_file("/tmp/site.zip", destination="/var/www/site", mode="0750")

The archive is read and extracted by the agent with Python's standard library
(no tar or unzip needed on the target). ``destination`` is created when missing
(with missing parents), with ``mode`` (default 0755), ``owner`` and ``group``,
which also own every extracted member; members keep their permission bits
(never setuid, setgid or sticky). Whether to extract: with ``overwrite=False``
an existing non-empty destination is left alone; with ``"auto"`` the archive is
extracted again when its sha256 differs from the one recorded in the state
directory at the last extraction; ``True`` extracts on every run.

Every member is checked before anything is written, the destination included:
an absolute name, a '..' component, a link whose target leads outside the
destination (through the archive's own links too), a member written through a
link, a device or a fifo: the whole archive is refused, naming the member. A
link already inside the destination is never followed to write a member, and a
destination that is itself a link is refused.
Rollback deletes what the extraction created (the destination, when it made it)
and restores the files it replaced.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat as stat_mod
from typing import Any, Dict, List, Optional, Tuple, Union

from ..agent.managed import attribute_changes, makedirs, resolve_account
from ..errors import ResourceError
from . import _archive
from . import _validate as v
from ._base import Change, Resource, prop


class ArchiveFile(Resource, type_name="archive_file"):
    """Extract a tar or zip archive that is on the target into a directory."""

    actions = ("extract",)

    path: str = prop(doc="The archive on the target (.tar, .tar.gz/.tgz, .tar.bz2, .tar.xz, "
                     ".zip; the format is read from the content).", identity=True, coerce=v.path)
    destination: str = prop(doc="The directory to extract into; created when missing.",
                            coerce=v.path)
    overwrite: Union[bool, str] = prop(False, doc="False: leave a non-empty destination "
                                       "alone. 'auto': extract again when the archive's "
                                       "checksum changed since the last extraction. True: "
                                       "extract on every run.", choices=(False, True, "auto"))
    mode: Optional[str] = prop(None, doc="Permissions of the destination directory ('0755' "
                               "when it is created and mode is unset).", coerce=v.mode)
    owner: Optional[str] = prop(None, doc="Owner of the destination and of every extracted "
                                "member. Unset: the user converge runs as.", coerce=v.account)
    group: Optional[str] = prop(None, doc="Group of the destination and of every member.",
                                coerce=v.account)
    strip_components: int = prop(0, doc="Leading path components removed from each member "
                                 "name (as tar --strip-components).", coerce=v.between(0, 100))

    # -- target ----------------------------------------------------------------------

    def current(self, system: Any) -> Dict[str, Any]:
        st = system.stat(self.destination)
        state: Dict[str, Any] = {"exists": st is not None, "entries": []}
        if st is not None:
            if stat_mod.S_ISLNK(st.st_mode):
                raise ResourceError("destination %s is a symbolic link (to %s); an archive is "
                                    "never extracted through a link" % (
                                        self.destination, system.readlink(self.destination)),
                                    hint="give the directory it points to as destination")
            if not stat_mod.S_ISDIR(st.st_mode):
                raise ResourceError("destination %s exists and is not a directory"
                                    % self.destination)
            state.update(mode="%04o" % stat_mod.S_IMODE(st.st_mode), uid=st.st_uid,
                         gid=st.st_gid, owner=system.user_name(st.st_uid),
                         group=system.group_name(st.st_gid))
            state["entries"] = system.listdir(self.destination)
        state["want_uid"] = resolve_account(system.uid, self.owner, "owner")
        state["want_gid"] = resolve_account(system.gid, self.group, "group")
        state["record"] = _record_path(system, self.path, self.destination)
        state["extract"] = None
        if self.overwrite is True or not state["entries"] or self.overwrite == "auto":
            data = system.read_bytes(self.path)
            if data is None:
                raise ResourceError("archive %s does not exist" % self.path)
            digest = hashlib.sha256(data).hexdigest()
            recorded = json.loads(system.read_text(state["record"]) or "{}").get("sha256")
            if self.overwrite is True or not state["entries"] or recorded != digest:
                state["extract"] = {"sha256": digest, "recorded": recorded,
                                    "members": _archive.members(data, self.strip_components)}
        return state

    def changes(self, current: Dict[str, Any]) -> List[Change]:
        out: List[Change] = []
        if not current["exists"]:
            out.append(Change("create directory %s" % self.destination, data="mkdir"))
        job = current["extract"]
        if job is not None:
            count = len(job["members"])
            why = "" if job["recorded"] is None or not current["entries"] else \
                " (its checksum changed from %s)" % job["recorded"][:8]
            out.append(Change("extract %s (%s, %d member%s) into %s%s" % (
                self.path, job["sha256"][:8], count, "" if count == 1 else "s",
                self.destination, why), data="extract"))
        if current["exists"]:
            out.extend(attribute_changes(self, current))
        return out

    # -- journal and rollback -------------------------------------------------------------

    def before(self, system: Any, current: Dict[str, Any], changes: List[Change]
               ) -> Dict[str, Any]:
        """Journal hook: the files an extraction replaces (kept whole by the journal),
        the paths it creates (deleted by a rollback), or the destination it creates."""
        kinds = {c.data for c in changes}
        dest = os.path.normpath(os.path.join(system.cwd, self.destination))
        if "mkdir" in kinds:
            created = dest
            while os.path.dirname(created) != created and \
                    not system.is_dir(os.path.dirname(created)):
                created = os.path.dirname(created)
            return {"created": [(created, "dir")]}
        out: Dict[str, Any] = {"files": [], "created": []}
        if "mode" in kinds or "owner" in kinds or "group" in kinds:
            out["destination"] = {"path": dest, "mode": current["mode"],
                                  "uid": current["uid"], "gid": current["gid"]}
        if "extract" not in kinds:
            return out
        made = set()  # paths (under dest) this extraction creates, with all below them
        for member in current["extract"]["members"]:
            parts = member.name.split("/")
            prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
            if any(p in made for p in prefixes):
                continue
            missing = next((p for p in prefixes if system.stat(dest + "/" + p) is None), None)
            if missing is not None:
                whole = missing == member.name and member.kind != "dir"
                out["created"].append([dest + "/" + missing, "file" if whole else "dir"])
                made.add(missing)
                continue
            st = system.stat(dest + "/" + member.name)
            if member.kind != "dir" and st is not None:
                if not stat_mod.S_ISREG(st.st_mode):
                    return {"irreversible": "it replaced %s/%s, which was not a regular file"
                            % (dest, member.name)}
                out["files"].append(dest + "/" + member.name)
        return out

    @classmethod
    def undo(cls, before: Dict[str, Any], system: Any) -> List[Tuple[str, str, Dict[str, Any]]]:
        """Rollback: delete what the extraction created; put back the destination's
        mode and owner (replaced files are restored by the journal)."""
        steps: List[Tuple[str, str, Dict[str, Any]]] = []
        for path, kind in before.get("created", []):
            if kind == "dir":
                steps.append(("directory", "delete", {"path": path, "recursive": True}))
            else:
                steps.append(("file", "delete", {"path": path, "backup": 0}))
        dest = before.get("destination")
        if dest:
            steps.append(("directory", "create", {"path": dest["path"], "mode": dest["mode"],
                                                  "owner": str(dest["uid"]),
                                                  "group": str(dest["gid"])}))
        return steps

    # -- acting --------------------------------------------------------------------------

    def apply(self, system: Any, changes: List[Change]) -> None:
        kinds = {c.data for c in changes}
        current = self.current(system)  # members read and checked again, now
        uid, gid = current["want_uid"], current["want_gid"]
        if "mkdir" in kinds:
            makedirs(system, os.path.dirname(os.path.normpath(
                os.path.join(system.cwd, self.destination))), 0o755)
            system.mkdir(self.destination, int(self.mode or "0755", 8))
        if kinds & {"mkdir", "owner", "group"} and (uid != -1 or gid != -1):
            system.chown(self.destination, uid, gid)
        if "mode" in kinds and self.mode:
            system.chmod(self.destination, int(self.mode, 8))
        job = current["extract"]
        if "extract" in kinds and job is not None:
            for member in job["members"]:
                self._extract(system, member, uid, gid)
            from ..agent.journal import ensure_dir, state_dir, write_file

            ensure_dir(system, state_dir(system) + "/archive_file", 0o700)
            write_file(system, current["record"], json.dumps({
                "path": self.path, "destination": self.destination,
                "sha256": job["sha256"]}).encode("utf-8") + b"\n")

    def _extract(self, system: Any, member: _archive.Member, uid: int, gid: int) -> None:
        path = self.destination + "/" + member.name
        folder = self.destination
        for part in member.name.split("/")[:-1]:  # never through a link on the disk
            folder += "/" + part
            st = system.stat(folder)
            if st is None:
                system.mkdir(folder, 0o755)
                system.chown(folder, uid, gid)
            elif not stat_mod.S_ISDIR(st.st_mode):
                raise ResourceError("%s is in the way of archive member %r: it is not a "
                                    "directory (a link is never followed)"
                                    % (folder, member.original))
        st = system.stat(path)
        if member.kind == "dir":
            if st is None:
                system.mkdir(path, member.mode | 0o700)
            elif not stat_mod.S_ISDIR(st.st_mode):
                raise ResourceError("%s is in the way of archive member %r: it is not a "
                                    "directory" % (path, member.original))
        elif st is not None and stat_mod.S_ISDIR(st.st_mode):
            raise ResourceError("%s is a directory in the way of archive member %r"
                                % (path, member.original))
        elif member.kind == "symlink":
            if st is not None:
                system.remove(path)
            system.symlink(member.link, path)
        else:
            system.write_atomic(path, member.data, member.mode, uid, gid)
            return
        if uid != -1 or gid != -1:
            system.chown(path, uid, gid)


def _record_path(system: Any, path: str, destination: str) -> str:
    """Where the checksum of the last extraction of this archive into this
    destination is kept."""
    from ..agent.journal import state_dir

    key = hashlib.sha256(("%s\0%s" % (path, destination)).encode("utf-8")).hexdigest()[:24]
    return "%s/archive_file/%s.json" % (state_dir(system), key)
