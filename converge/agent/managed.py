"""One managed file: the layer every resource that writes a whole file goes through.

file and template, sysctl's persisted setting, cron's /etc/cron.d file (and a
user's spool file under ``--root``), oom_protect's cron entry or drop-in,
systemd_unit, authorized_key, line, remote_file, hostname's /etc/hostname and
/etc/hosts, mount's /etc/fstab, timezone's /etc/timezone, apt_repository's
source and keyring and yum_repository's .repo file render the content they
want; this module does the rest, the same way for each of them::

    render (the resource)
      → compare with what is there (read through the System's walker, paths.py)
      → diff (:func:`diff`: None for a resource that hides content; values a
        change line quotes go through :func:`shown`; sensitive hidden here only)
      → journal (the ``before`` hook returns :func:`journal_files`; the engine
        records and keeps the file whole before apply)
      → back up (:func:`keep_backup`: ``backup`` copies in the state directory,
        never one name for two)
      → write (:func:`write`: System.write_atomic, temp file beside it, fsync,
        rename; or remove)
      → rollback (the journal restores the file it kept; nothing type-specific)

A content change carries a :class:`Write` as its ``Change.data``: the whole file
as it should be. Change.data never leaves the agent process (the plan carries
properties; the journal carries what ``before`` returned), so no journal or plan
written by an older converge depends on its shape. The attribute helpers of
file-like types (mode, owner, group) live here too.
Standard library only, Python 3.8.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any, Dict, List, NamedTuple, Optional

from ..errors import ResourceError
from ..resources._base import Change, short_hash

#: Contents larger than this (or binary) get no diff.
DIFF_LIMIT = 512 * 1024
#: What is shown instead of a hidden value.
SENSITIVE = "(sensitive)"


class Write(NamedTuple):
    """A managed file as it should be (``Change.data`` of a content change);
    :func:`write` makes it so."""

    path: str
    #: the whole content; None removes the file
    content: Optional[bytes]
    #: None: the mode of the file replaced (0644 for a new one)
    mode: Optional[int] = None
    uid: int = -1
    gid: int = -1
    #: write through a trusted link at ``path`` instead of replacing it (file)
    follow: bool = False
    #: how many copies of the replaced or removed file to keep (0: none)
    backup: int = 0
    #: the mode of missing parent directories, made first; None: a missing
    #: parent directory is an error (the recipe should declare it)
    parents: Optional[int] = None


# -- compare and show --------------------------------------------------------------


def unified_diff(before: bytes, after: bytes, path: str) -> Optional[str]:
    """A unified diff of two contents, or None for binary or very large content."""
    if len(before) > DIFF_LIMIT or len(after) > DIFF_LIMIT or b"\0" in before + after:
        return None
    try:
        old, new = before.decode("utf-8"), after.decode("utf-8")
    except UnicodeDecodeError:
        return None
    import difflib  # here: an up-to-date run never pays for it

    lines = difflib.unified_diff(old.splitlines(True), new.splitlines(True),
                                 fromfile=path, tofile=path + " (new)")
    text = "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
                   for line in lines)
    return text or None


def diff(resource: Any, before: Optional[bytes], after: Optional[bytes],
         label: str) -> Optional[str]:
    """The diff shown for a content change: None when the resource hides content
    (it is sensitive, or writes a file a sensitive resource writes). The one
    place a managed file's content is kept out of the output."""
    if resource.hides_content:
        return None
    return unified_diff(before or b"", after or b"", label)


def change(resource: Any, text: str, write: Write, before: Optional[bytes],
           label: Optional[str] = None, show_diff: bool = True) -> Change:
    """A content change: ``text`` for people, the diff from ``before`` to the
    new content (see :func:`diff`), the :class:`Write` as its data."""
    shown = diff(resource, before, write.content, label or write.path) if show_diff else None
    return Change(text, diff=shown, data=write)


def shown(resource: Any, text: str, read: bool = False) -> str:
    """``text`` as a change line may quote it, or ``(sensitive)``: a value the
    recipe gave is hidden when the resource is sensitive; one ``read`` from a
    managed file also when that file holds a sensitive resource's content."""
    if resource.meta.sensitive or (read and resource.hides_content):
        return SENSITIVE
    return text


def content_text(resource: Any, what: str, before: Optional[bytes], after: bytes) -> str:
    """'update content in WHAT from 3e9b4d0a to 8a1c02ff' (``none`` for a new file),
    or '... (sensitive)' when the resource hides content."""
    if resource.hides_content:
        return "update content in %s %s" % (what, SENSITIVE)
    return "update content in %s from %s to %s" % (
        what, "none" if before is None else short_hash(before), short_hash(after))


# -- journal, backup, write ------------------------------------------------------------


def journal_files(system: Any, *paths: str) -> Dict[str, Any]:
    """A ``before`` hook's answer for managed files: the journal keeps each whole
    (content, mode, owner) before the change, and a rollback restores it, or
    removes it when the run created it."""
    return {"files": [absolute(system, p) for p in paths]}


def write(system: Any, want: Write) -> None:
    """Make the file as ``want`` says: back up the file replaced or removed, make
    or check the parent directory, then replace the file whole (or remove it).
    Every step reaches the path through the System's walker: a link someone other
    than root could have placed on the way is refused (UnsafePath), and a link at
    the path itself is replaced or removed as a link, never backed up as the file
    it leads to, unless ``follow`` (a trusted link then leads to the file)."""
    backup = want.backup and (want.follow or system.readlink(want.path) is None)
    if want.content is None:
        if backup:
            keep_backup(system, want.path, want.backup)
        system.remove(want.path)
        return
    parent = os.path.dirname(system.absolute(want.path))
    if want.parents is not None:
        makedirs(system, parent, want.parents)
    elif not system.is_dir(parent):
        raise ResourceError("parent directory %s does not exist" % parent,
                            hint="declare it first: directory(%r, recursive=True)" % parent)
    if backup:
        keep_backup(system, want.path, want.backup)
    system.write_atomic(want.path, want.content, want.mode, want.uid, want.gid,
                        follow=want.follow)


_BACKUP_STAMP = re.compile(r"[0-9]{14}(-[0-9]{6,})?")


def keep_backup(system: Any, path: str, count: int, now: Optional[float] = None) -> None:
    """Copy the file about to be replaced into the backup directory
    (``backup/PATH.YYYYMMDDHHMMSS-UUUUUU`` in the state directory: never one
    name for two backups, even within one microsecond); keep the ``count``
    newest. ``now`` is the time to name it by (time.time())."""
    if count <= 0:
        return
    data = system.read_bytes(path)
    if data is None:
        return
    target = system.absolute(path)
    directory = backup_root(system) + os.path.dirname(target)
    makedirs(system, directory, 0o700)
    base = os.path.basename(target)
    now = time.time() if now is None else now
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


def backup_root(system: Any) -> str:
    """Where replaced files are kept: backup/ in the state directory (the one the
    journal and the run lock use, System.state_dir)."""
    return str(system.state_dir()) + "/backup"


def absolute(system: Any, path: str) -> str:
    """A target path made absolute (relative ones are from the System's cwd)."""
    return str(system.absolute(path))


def makedirs(system: Any, path: str, mode: int) -> None:
    """mkdir -p through the System."""
    if system.is_dir(path) or path in ("", "/"):
        return
    makedirs(system, os.path.dirname(path), mode)
    system.mkdir(path, mode)


# -- mode, owner and group of file-like resources ------------------------------------------


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


def attribute_changes(resource: Any, current: Dict[str, Any]) -> List[Change]:
    """Mode, owner and group changes (data ``"mode"``, ``"owner"``, ``"group"``) of
    a resource with those properties; a path that does not exist yet had none:
    ``from none``."""
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
