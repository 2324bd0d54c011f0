"""A home directory made from /etc/skel, as ``useradd -m`` makes one, for a user
that already exists (useradd only does it at creation), through the System.

The home's mode is HOME_MODE from /etc/login.defs, else 0777 minus UMASK (0755
with Debian's UMASK 022), as useradd computes it. Standard library only, 3.8.
"""

from __future__ import annotations

import os
import stat as stat_mod
from typing import Any, List, Optional

SKEL = "/etc/skel"


def login_defs(system: Any, key: str) -> Optional[str]:
    for line in (system.read_text("/etc/login.defs") or "").splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == key:
            return fields[1]
    return None


def home_mode(system: Any) -> int:
    for key, umask in (("HOME_MODE", False), ("UMASK", True)):
        value = login_defs(system, key)
        if value and value.isdigit():
            try:
                number = int(value, 8)
            except ValueError:
                continue
            return (0o777 & ~number) if umask else number & 0o7777
    return 0o755


def default_home(system: Any, username: str) -> str:
    """Where useradd puts a new user's home: HOME= of /etc/default/useradd
    (default /home), then the user name."""
    base = "/home"
    for line in (system.read_text("/etc/default/useradd") or "").splitlines():
        if line.startswith("HOME=") and line[5:].strip().startswith("/"):
            base = line[5:].strip().rstrip("/") or "/"
    return os.path.join(base, username)


def copy_skel(system: Any, home: str, uid: int, gid: int) -> None:
    """Create ``home`` (and missing parents, root's) with a copy of /etc/skel owned
    by the user; links are copied as links, never followed.

    Everything is written while root owns it, then handed to the user from the
    deepest entry up, the home last: until then the user can rename nothing in the
    tree, so no entry can be swapped for a link that would send a write or a chown
    elsewhere (a user who owned ``~/.config`` early could replace a folder in it)."""
    parent = os.path.dirname(home)
    if not system.is_dir(parent):
        from ..agent.managed import makedirs

        makedirs(system, parent, 0o755)
    system.mkdir(home, home_mode(system))
    made = [home] + _copy(system, SKEL, home)
    for path in reversed(made):
        system.chown(path, uid, gid)


def _copy(system: Any, source: str, target: str) -> List[str]:
    """Copy the tree, root-owned; the paths made, each after its folder."""
    made: List[str] = []
    for name in system.listdir(source):
        src, dst = source + "/" + name, target + "/" + name
        st = system.stat(src)
        if st is None:
            continue
        mode = stat_mod.S_IMODE(st.st_mode)
        if stat_mod.S_ISLNK(st.st_mode):
            link = system.readlink(src)
            if link is not None:
                system.symlink(link, dst)
                made.append(dst)
        elif stat_mod.S_ISDIR(st.st_mode):
            system.mkdir(dst, mode)
            made.append(dst)
            made += _copy(system, src, dst)
        elif stat_mod.S_ISREG(st.st_mode):
            system.write_atomic(dst, system.read_bytes(src) or b"", mode)
            made.append(dst)
    return made


def check_home(system: Any, home: str) -> None:
    """Refuse to make, move or delete a home that another user could redirect: the
    home itself a link, a link on the way owned by someone other than root, or a
    folder on the way that a user other than root owns or may write into without
    the sticky bit (that user could swap the home for a link between two steps)."""
    from ..errors import ResourceError

    parts = [p for p in home.split("/") if p]
    path = ""
    for number, part in enumerate(parts):
        path += "/" + part
        st = system.stat(path)
        if st is None:
            return
        last = number == len(parts) - 1
        if stat_mod.S_ISLNK(st.st_mode) and (last or st.st_uid != 0):
            raise ResourceError(
                "%s is a symbolic link (to %s) owned by %s: manage_home makes, moves and "
                "deletes real folders only, never through a link"
                % (path, system.readlink(path), system.user_name(st.st_uid)),
                hint="remove the link, or give the user a home that is not one")
        if last or not stat_mod.S_ISDIR(st.st_mode):
            continue
        open_to_all = st.st_mode & 0o022 and not st.st_mode & stat_mod.S_ISVTX
        if st.st_uid != 0 or open_to_all:
            raise ResourceError(
                "%s, on the way to the home %s, is %s: its owner or writers could replace "
                "the home with a link while it is made, moved or deleted"
                % (path, home, "owned by %s" % system.user_name(st.st_uid)
                   if st.st_uid != 0 else "writable by others without the sticky bit"),
                hint="put the home under a folder only root can change (such as /home)")
