"""The live mount table (/proc/self/mountinfo), /etc/fstab lines, and mount
options compared as the kernel reports them, for the ``mount`` resource.
Standard library only, Python 3.8."""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

FSTAB = "/etc/fstab"
MOUNTINFO = "/proc/self/mountinfo"
#: options that only mean something to mount(8) or fstab, never in the live table
NOT_LIVE = {"defaults", "auto", "noauto", "user", "nouser", "users", "owner", "group",
            "nofail", "_netdev", "async", "loop", "sw"}
#: an option that is the kernel's default when its negation is absent
NEGATION = {"rw": "ro", "exec": "noexec", "suid": "nosuid", "dev": "nodev"}
SIZE = re.compile(r"([0-9]+)([kKmMgGtT]?)")


def unescape(field: str) -> str:
    """mountinfo and fstab write a space as \\040 (tab \\011, newline \\012, \\ \\134)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def escape(field: str) -> str:
    return "".join("\\%03o" % ord(c) if c in " \t\n\\" else c for c in field)


def live(system: Any, mount_point: str) -> Optional[Dict[str, Any]]:
    """The mount on ``mount_point`` (the top one when mounts are stacked): its
    source, fstype and options (per-mount and per-superblock, together)."""
    found = None
    for line in (system.read_text(MOUNTINFO) or "").splitlines():
        head, sep, tail = line.partition(" - ")
        fields, rest = head.split(), tail.split()
        if not sep or len(fields) < 6 or len(rest) < 2:
            continue
        if unescape(fields[4]) == mount_point:
            options = fields[5].split(",") + (rest[2].split(",") if len(rest) > 2 else [])
            found = {"source": unescape(rest[1]), "fstype": rest[0], "options": options}
    return found


def bytes_of(value: str) -> Optional[int]:
    """size=8m, 8192k and 8388608 are the same size."""
    match = SIZE.fullmatch(value)
    if not match:
        return None
    power = " kmgt".index(match.group(2).lower() or " ")
    return int(match.group(1)) * int(1024 ** power)


def missing_options(desired: Sequence[str], have: Sequence[str]) -> List[str]:
    """The desired options the live mount does not show, compared as the kernel
    reports them: sizes by value, exec/suid/dev/rw by the absence of their
    negation; a key=value the kernel does not show is at its default (it shows
    the others); options only mount(8) reads are not compared."""
    live_values: Dict[str, str] = {}
    for option in have:
        key, _, value = option.partition("=")
        live_values[key] = value
    out = []
    for option in desired:
        key, eq, value = option.partition("=")
        if key in NOT_LIVE or key.startswith(("x-", "comment")):
            continue
        if key in NEGATION:
            if NEGATION[key] in live_values:
                out.append(option)
            continue
        if key not in live_values:
            if not eq:  # a flag (noexec, ro, noatime): shown whenever it is set
                out.append(option)
            # key=value the kernel does not show is its default (tmpfs mode=1777)
        elif eq and live_values[key] != value:
            a, b = bytes_of(value), bytes_of(live_values[key])
            if a is None or a != b:
                out.append(option)
    return out


def fstab_line(device: str, mount_point: str, fstype: str, options: Sequence[str],
               dump: int, fsck_pass: int) -> str:
    return "%s %s %s %s %d %d" % (escape(device), escape(mount_point), fstype,
                                  ",".join(options), dump, fsck_pass)


def fstab_entries(text: Optional[str], mount_point: str) -> List[Tuple[int, str]]:
    """The lines (index, text) of fstab that mount something on ``mount_point``."""
    out = []
    for index, line in enumerate((text or "").splitlines()):
        fields = line.split()
        if len(fields) >= 2 and not fields[0].startswith("#") and \
                unescape(fields[1]) == mount_point:
            out.append((index, line))
    return out


def fstab_edit(text: Optional[str], mount_point: str, new: Optional[str]) -> str:
    """fstab with the line for ``mount_point`` replaced by ``new`` (the first one
    replaced, later ones dropped; appended when there is none) or, with ``new``
    None, removed. Every other line, comments included, is kept as it was."""
    lines = (text or "").splitlines()
    entries = [i for i, _ in fstab_entries(text, mount_point)]
    out = []
    for index, line in enumerate(lines):
        if index in entries:
            if new is not None and index == entries[0]:
                out.append(new)
            continue
        out.append(line)
    if new is not None and not entries:
        out.append(new)
    return "".join(line + "\n" for line in out)
