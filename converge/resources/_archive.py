"""Reading tar (plain, gz, bz2, xz) and zip archives with the standard library, as
one list of members, and deciding before anything is written whether every one
of them stays inside the destination.

A member is refused, and with it the whole archive, when its name is absolute or
has a '..' component, when it would be written through a link of the archive
(``l/f`` after ``l -> sub``), when it is a device, a fifo or a socket, when it is
a hard link to a name outside the archive, and when it is a symbolic link whose
target, resolved through the archive's other links as the kernel would, leaves
the destination (an absolute target, or one that climbs out). Python 3.8, stdlib.
"""

from __future__ import annotations

import io
import stat as stat_mod
from typing import Dict, List, Optional

from ..errors import ResourceError

MAX_LINK_DEPTH = 40  # as the kernel's ELOOP limit


class Member:
    """One entry: its path under the destination (after strip_components), its kind
    ("file", "dir", "symlink"), permission bits, and its data or link target (read
    while the archive is open: the archive is in memory already)."""

    __slots__ = ("name", "original", "kind", "mode", "link", "data")

    def __init__(self, name: str, original: str, kind: str, mode: int, link: str,
                 data: bytes) -> None:
        self.name, self.original, self.kind = name, original, kind
        self.mode, self.link, self.data = mode, link, data

    def __repr__(self) -> str:
        return "Member(%r, %r)" % (self.name, self.kind)


def _stripped(name: str, strip: int, original: str) -> Optional[str]:
    """The name's path under the destination, None when stripped away entirely."""
    if name.startswith("/"):
        raise refuse(original, "has an absolute name, outside the destination")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise refuse(original, "has a '..' component, which climbs out of the destination")
    parts = parts[strip:]
    return "/".join(parts) if parts else None


def refuse(member: str, why: str) -> ResourceError:
    return ResourceError("archive member %r %s: nothing was extracted" % (member, why),
                         hint="check where the archive comes from; extract it by hand if "
                         "it is what you want")


def members(data: bytes, strip: int) -> List[Member]:
    """Every member of a tar or zip archive given whole, checked (see the module
    docstring); a ResourceError names the first offending member."""
    import zipfile

    if data[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            found = _zip_members(archive, strip)
    else:
        import tarfile

        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
                found = _tar_members(archive, strip)
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise ResourceError("not a tar (gz, bz2, xz) or zip archive: %s" % exc) from None
    check(found)
    return found


def _tar_members(archive: object, strip: int) -> List[Member]:
    import tarfile

    assert isinstance(archive, tarfile.TarFile)
    out: List[Member] = []
    by_name: Dict[str, Member] = {}
    for info in archive.getmembers():
        name = _stripped(info.name, strip, info.name)
        if info.islnk():
            target = _stripped(info.linkname, strip, info.name)
            source = by_name.get(target or "")
            if source is None or source.kind != "file":
                raise refuse(info.name, "is a hard link to %r, which is not a file of the "
                             "archive" % info.linkname)
            kind, data = "file", source.data
        elif info.isreg():
            handle = archive.extractfile(info)
            kind, data = "file", handle.read() if handle is not None else b""
        elif info.isdir():
            kind, data = "dir", b""
        elif info.issym():
            kind, data = "symlink", b""
        else:
            raise refuse(info.name, "is a device, fifo or socket; such members are never "
                         "extracted")
        if name is None:
            continue
        member = Member(name, info.name, kind, info.mode & 0o777, info.linkname, data)
        by_name[name] = member
        out.append(member)
    return out


def _zip_members(archive: object, strip: int) -> List[Member]:
    import zipfile

    assert isinstance(archive, zipfile.ZipFile)
    out: List[Member] = []
    for info in archive.infolist():
        unix = info.external_attr >> 16
        name = _stripped(info.filename, strip, info.filename)
        data = b"" if info.is_dir() else archive.read(info.filename)
        if info.filename.endswith("/") or stat_mod.S_ISDIR(unix):
            kind, mode, link = "dir", (unix & 0o777) or 0o755, ""
        elif stat_mod.S_ISLNK(unix):
            kind, mode = "symlink", 0o777
            link = data.decode("utf-8", "surrogateescape")
        elif unix and not stat_mod.S_ISREG(unix):
            raise refuse(info.filename, "is a device, fifo or socket; such members are "
                         "never extracted")
        else:
            kind, mode, link = "file", (unix & 0o777) or 0o644, ""
        if name is not None:
            out.append(Member(name, info.filename, kind, mode, link, data))
    return out


def check(found: List[Member]) -> None:
    """Refuse a member written through a link of the archive, or a link that
    resolves outside the destination."""
    links = {m.name: m.link for m in found if m.kind == "symlink"}
    for member in found:
        parts = member.name.split("/")
        for depth in range(1, len(parts)):
            if "/".join(parts[:depth]) in links:
                raise refuse(member.original, "would be written through the link %r of the "
                             "archive, which may lead outside the destination"
                             % "/".join(parts[:depth]))
        if member.kind == "symlink":
            if member.link.startswith("/"):
                raise refuse(member.original, "is a link to the absolute path %r, outside "
                             "the destination" % member.link)
            if not member.link or resolve(parts[:-1] + member.link.split("/"), links) is None:
                raise refuse(member.original, "is a link to %r, which resolves outside the "
                             "destination" % member.link)


def resolve(parts: List[str], links: Dict[str, str], depth: int = 0) -> Optional[List[str]]:
    """Where a path relative to the destination leads, following the archive's own
    links as the kernel would; None when it climbs out (or loops)."""
    if depth > MAX_LINK_DEPTH:
        return None
    stack: List[str] = []
    for part in parts:
        if part in ("", "."):
            continue
        if part == "..":
            if not stack:
                return None
            stack.pop()
            continue
        stack.append(part)
        target = links.get("/".join(stack))
        if target is not None:
            if target.startswith("/"):
                return None
            stack.pop()
            landed = resolve(stack + target.split("/"), links, depth + 1)
            if landed is None:
                return None
            stack = landed
    return stack
