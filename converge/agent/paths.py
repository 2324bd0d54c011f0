"""One way to reach a managed path: a component at a time, never through a link
that someone other than root could have placed.

Every path the agent changes (a resource's file, the journal, backups, the run
lock) is reached by :meth:`Walker.walk`: from the root (``/``, or the tree of
``--root DIR``), each directory is opened with ``O_NOFOLLOW`` relative to the
previous one, and the last component is acted on through its directory's file
descriptor (``dir_fd=``), so what was checked is what is changed.

A symbolic link met on the way is followed only when nobody but root could have
placed it: the link is owned by root (or by the user converge runs as) and sits
in a directory that no other user can write (owned by root or that user, no
group or other write bit). Debian's ``/etc/resolv.conf ->
../run/systemd/resolve/stub-resolv.conf`` is such a link; ``/home/alice/app ->
/etc`` made by alice, or any link in ``/tmp``, is not, and the walk stops with
:class:`UnsafePath`, naming the link, its owner and what to do. A trusted link
whose target does not exist (dangling) is refused too when a file would be
created through it. Link targets are resolved inside the root: an absolute
target starts again at the root and ``..`` never climbs above it, as
``openat2(RESOLVE_IN_ROOT)`` does, so a run with ``--root DIR`` never leaves DIR.

Hard links are not links to this walker: a file's other names are the kernel's
business (``fs.protected_hardlinks``, on by default on Debian, Ubuntu and RHEL,
keeps a user from hard-linking a file she does not own).
Standard library only, Python 3.8.
"""

from __future__ import annotations

import errno
import os
import stat as stat_mod
from typing import Callable, List, NamedTuple, Optional, Tuple

from ..errors import ResourceError

MAX_LINKS = 40  # as the kernel's MAXSYMLINKS
_O_PATH = getattr(os, "O_PATH", os.O_RDONLY)
O_DIR = _O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafePath(ResourceError):
    """A path reaches a link converge will not follow (see the module docstring)."""


class Place(NamedTuple):
    """Where a walk ended: the open directory holding the last component, that
    component's name ('.' for the root itself), and the directory's path in the
    tree (links resolved). The caller closes ``dirfd``."""

    dirfd: int
    name: str
    directory: str

    @property
    def path(self) -> str:
        if self.name == ".":
            return self.directory
        return self.directory.rstrip("/") + "/" + self.name


def trusted_ids() -> Tuple[int, ...]:
    """The users whose links may be followed: root, and the user converge runs as."""
    return (0,) if os.geteuid() == 0 else (0, os.geteuid())


def writable_by_others(st: os.stat_result) -> bool:
    """Whether a user other than root (and converge's own) can write this directory."""
    return st.st_uid not in trusted_ids() or bool(st.st_mode & 0o022)


class Walker:
    """Walks target paths inside ``root`` (a host directory). ``user_name(uid)``
    names the owner of a refused link in messages."""

    def __init__(self, root: str, user_name: Optional[Callable[[int], str]] = None) -> None:
        self.root = root
        self.user_name = user_name or str

    def open_root(self) -> int:
        return os.open(self.root, O_DIR & ~os.O_NOFOLLOW)

    def walk(self, path: str, follow: bool = False) -> Place:
        """The directory holding the last component of the absolute target path
        ``path`` and that component's name. Links before the last component are
        followed when trusted and refused otherwise; the last one too when
        ``follow`` (a trusted link whose target is missing is refused then).
        A missing directory on the way is FileNotFoundError, a file on the way
        NotADirectoryError, both naming ``path``."""
        stack: List[str] = list(reversed(_parts(path)))
        fd = self.open_root()
        where: List[str] = []
        links = 0
        through_link = ""  # the link the last component was reached through, if any
        try:
            while stack:
                name = stack.pop()
                if name == "..":
                    if where:
                        where.pop()
                        os.close(fd)
                        fd = self._reopen(where, path)
                    continue
                last = not stack
                if last and not follow:
                    return Place(fd, name, _show(where))
                try:
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    if last:
                        if through_link:
                            raise self._dangling(through_link, _show(where + [name])) from None
                        return Place(fd, name, _show(where))
                    raise _error(errno.ENOENT, path) from None
                if stat_mod.S_ISLNK(st.st_mode):
                    target = os.readlink(name, dir_fd=fd)
                    self._check(fd, name, st, where, target)
                    links += 1
                    if links > MAX_LINKS:
                        raise _error(errno.ELOOP, path)
                    if last:
                        through_link = through_link or _show(where + [name])
                    if target.startswith("/"):
                        os.close(fd)
                        fd = self.open_root()
                        where = []
                    stack.extend(reversed(_parts(target)))
                    continue
                if last:
                    return Place(fd, name, _show(where))
                if not stat_mod.S_ISDIR(st.st_mode):
                    raise _error(errno.ENOTDIR, path)
                try:
                    new = os.open(name, O_DIR, dir_fd=fd)
                except OSError as exc:  # replaced since the stat (by a link: ELOOP)
                    raise _error(exc.errno or errno.EIO, path) from None
                os.close(fd)
                fd = new
                where.append(name)
            # the path ends at a directory reached by '..' or is the root itself
            if not where:
                return Place(fd, ".", "/")
            os.close(fd)
            fd = self._reopen(where[:-1], path)
            return Place(fd, where[-1], _show(where[:-1]))
        except BaseException:
            os.close(fd)
            raise

    def _reopen(self, where: List[str], path: str) -> int:
        """The directory ``where`` (components already walked), opened again from
        the root: '..' is taken by name, never through the kernel's own '..'."""
        fd = self.open_root()
        try:
            for name in where:
                new = os.open(name, O_DIR, dir_fd=fd)
                os.close(fd)
                fd = new
        except OSError as exc:
            os.close(fd)
            raise _error(exc.errno or errno.EIO, path) from None
        return fd

    def _check(self, fd: int, name: str, st: os.stat_result, where: List[str],
               target: str) -> None:
        link = _show(where + [name])
        if st.st_uid not in trusted_ids():
            owner = self.user_name(st.st_uid)
            raise UnsafePath(
                "refusing to follow the symbolic link %s -> %s: it is owned by %s "
                "(uid %d), and a link a user other than root placed may lead anywhere"
                % (link, target, owner, st.st_uid),
                hint="remove the link, or have the recipe manage the path it points to")
        folder = os.fstat(fd)
        if writable_by_others(folder):
            raise UnsafePath(
                "refusing to follow the symbolic link %s -> %s: it is in %s (owner %s, "
                "mode %04o), a directory a user other than root can write, who could "
                "have placed it" % (link, target, _show(where), self.user_name(folder.st_uid),
                                    stat_mod.S_IMODE(folder.st_mode)),
                hint="remove the link, or have the recipe manage the path it points to")

    @staticmethod
    def _dangling(link: str, target: str) -> UnsafePath:
        return UnsafePath(
            "refusing to create %s through the symbolic link %s: the link is dangling"
            % (target, link),
            hint="create its target first, or remove the link and let converge create "
            "the file")


def _parts(path: str) -> List[str]:
    return [p for p in path.split("/") if p not in ("", ".")]


def _show(parts: List[str]) -> str:
    return "/" + "/".join(parts)


def _error(code: int, path: str) -> OSError:
    return OSError(code, os.strerror(code), path)
