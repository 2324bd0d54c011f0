"""Shared by ``user`` and ``group``: the local account databases read through the
System (/etc/passwd, /etc/shadow, /etc/group), the validators of what goes into
them, and the shadow tools (useradd, usermod, userdel, chpasswd, groupadd,
groupmod, groupdel, gpasswd) run as argument lists.

Only the local files are read, as only they are what those tools change: an
account that exists in LDAP (through NSS) but not in /etc/passwd is not a local
account here, as for useradd itself. Standard library only, Python 3.8.
"""

from __future__ import annotations

import datetime
import re
from typing import Any, Dict, List, Optional, Sequence

from ..errors import PropertyError, ResourceError
from ._validate import accepts, quoted

EPOCH = datetime.date(1970, 1, 1)
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\$?")
NAME_MAX = 32
ID_MAX = 4294967294  # (uid_t)-1 means "no change" to the kernel
# A crypt(3) hash in modular form ($id$[params$]salt$hash), optionally locked with
# leading '!', or a field that holds no hash at all ('!', '*', '!!', '*LK*').
HASH = re.compile(r"!*\$(1|2[abxy]?|5|6|7|y|gy|sha1|md5)\$[./0-9A-Za-z=,+-]*\$[./0-9A-Za-z$=,+-]+")
NO_HASH = re.compile(r"[!*]+|\*LK\*")
HASH_HINT = ("give a crypt hash such as '$6$salt$...' or '$y$...': make one with "
             "`openssl passwd -6` or `mkpasswd -m yescrypt` (a clear-text password is never "
             "accepted)")


def name(value: Any, what: str) -> str:
    """A user or group name as useradd/groupadd accept it."""
    if isinstance(value, str) and NAME.fullmatch(value) and len(value) <= NAME_MAX:
        return value
    hint = ""
    if isinstance(value, str) and ("," in value or " " in value.strip()):
        hint = "; give several names as a list: %r" % (
            [p.strip() for p in re.split(r"[,\s]+", value) if p.strip()],)
    raise PropertyError("%s %s is not a valid name (a letter or '_' first, then letters, "
                        "digits, '_', '.' or '-'; at most %d characters)%s"
                        % (what, quoted(value), NAME_MAX, hint))


@accepts("Union[int, str, None]")
def number(value: Any, what: str) -> Optional[int]:
    """A uid or gid: an integer (or a string of digits) in 0..4294967294."""
    if value is None:
        return None
    if isinstance(value, bool) or not (isinstance(value, int) or (
            isinstance(value, str) and value.isdigit())):
        raise PropertyError("%s %s is not a number such as 1500" % (what, quoted(value)))
    out = int(value)
    if not 0 <= out <= ID_MAX:
        raise PropertyError("%s %d is out of range 0..%d" % (what, out, ID_MAX))
    return out


@accepts("Union[int, str, None]")
def group_ref(value: Any, what: str) -> Optional[str]:
    """A group named or numbered: 'app' or 1500 (kept as the text '1500')."""
    if value is None:
        return None
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        return str(number(value, what))
    return name(value, what)


def names(value: Any, what: str) -> Optional[List[str]]:
    """None, or a list of unique names (a single name is a list of one)."""
    if value is None:
        return None
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise PropertyError("%s must be a list of names such as ['sudo', 'adm'], not %r"
                            % (what, value))
    out: List[str] = []
    for item in items:
        checked = name(item, "%s entry" % what)
        if checked not in out:
            out.append(checked)
    return out


def passwd_field(value: Any, what: str) -> Optional[str]:
    """Text stored in one field of /etc/passwd: one line, no ':'."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise PropertyError("%s must be a string, not %r" % (what, value))
    if ":" in value or "\n" in value or "\r" in value or "\0" in value:
        raise PropertyError("%s %s contains ':', a line break or NUL, which /etc/passwd "
                            "cannot hold" % (what, quoted(value)))
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PropertyError("%s %s is not valid UTF-8 text" % (what, quoted(value))) from None
    return value


def password(value: Any, what: str = "password") -> Optional[str]:
    """A crypt hash; anything else is refused without being shown."""
    if value is None:
        return None
    if isinstance(value, str) and (HASH.fullmatch(value) or NO_HASH.fullmatch(value)):
        return value
    if value == "":
        raise PropertyError("password is empty, which would let anyone log in without one; "
                            "use '!' for an account that has no password")
    raise PropertyError("password is not a crypt hash (its value is not shown); " + HASH_HINT)


def bare(hashed: Optional[str]) -> str:
    """A password field without the '!' a lock adds in front of a hash."""
    text = hashed or ""
    stripped = text.lstrip("!")
    return stripped if stripped.startswith("$") else text


# -- reading the databases -----------------------------------------------------------


def _rows(system: Any, path: str, width: int) -> List[List[str]]:
    rows = []
    for line in (system.read_text(path) or "").splitlines():
        fields = line.split(":")
        if len(fields) >= width and fields[0] and not fields[0].startswith(("+", "-", "#")):
            rows.append(fields)
    return rows


def users(system: Any) -> Dict[str, Dict[str, Any]]:
    """/etc/passwd and /etc/shadow by user name (the first entry of a name wins)."""
    out: Dict[str, Dict[str, Any]] = {}
    for f in _rows(system, "/etc/passwd", 7):
        if f[2].isdigit() and f[3].isdigit() and f[0] not in out:
            out[f[0]] = {"uid": int(f[2]), "gid": int(f[3]), "comment": f[4], "home": f[5],
                         "shell": f[6], "password": None, "expire": None}
    for f in _rows(system, "/etc/shadow", 8):
        if f[0] in out and out[f[0]]["password"] is None:
            out[f[0]]["password"] = f[1]
            out[f[0]]["expire"] = int(f[7]) if f[7].lstrip("-").isdigit() \
                and int(f[7]) >= 0 else None
    return out


def groups(system: Any) -> Dict[str, Dict[str, Any]]:
    """/etc/group by group name: gid and the member list."""
    out: Dict[str, Dict[str, Any]] = {}
    for f in _rows(system, "/etc/group", 4):
        if f[2].isdigit() and f[0] not in out:
            out[f[0]] = {"gid": int(f[2]), "members": [m for m in f[3].split(",") if m]}
    return out


def group_by_gid(table: Dict[str, Dict[str, Any]], gid: int) -> Optional[str]:
    for group, entry in table.items():
        if entry["gid"] == gid:
            return group
    return None


def resolve_group(table: Dict[str, Dict[str, Any]], ref: str) -> Optional[int]:
    """The gid of a group name or number, None when no such group exists."""
    if ref.isdigit():
        return int(ref) if group_by_gid(table, int(ref)) is not None else None
    entry = table.get(ref)
    return None if entry is None else int(entry["gid"])


def show_gid(table: Dict[str, Dict[str, Any]], gid: Optional[int]) -> str:
    if gid is None:
        return "(none)"
    group = group_by_gid(table, gid)
    return "%d (%s)" % (gid, group) if group else str(gid)


# -- acting ----------------------------------------------------------------------------


def refuse_root(system: Any, what: str) -> None:
    if system.root != "/":
        raise ResourceError("cannot %s under the root directory %s: the shadow tools act on "
                            "the machine itself" % (what, system.root),
                            hint="run without --root on the machine (or push to it)")


def run(system: Any, argv: Sequence[str], input: Optional[str] = None,
        warnings: Optional[List[str]] = None) -> None:
    """Run one shadow tool; its own message is the error when it fails, and what it
    printed while succeeding (useradd's warnings) becomes the resource's warnings."""
    done = system.run(list(argv), input=input)
    if not done.ok:
        raise ResourceError("%s exited %d: %s" % (argv[0], done.returncode,
                                                  done.output() or "(no output)"))
    if warnings is not None and done.output():
        warnings.extend(line for line in done.output().splitlines() if line.strip())


# -- expiry dates ------------------------------------------------------------------------


def expire_date(value: Any, what: str = "expire_date") -> Optional[str]:
    """'YYYY-MM-DD' (from a string or a date), 'never', or None."""
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        value = value.date()
    if isinstance(value, datetime.date):
        return value.isoformat()
    if value == "never":
        return "never"
    try:
        return datetime.datetime.strptime(str(value), "%Y-%m-%d").date().isoformat()
    except ValueError:
        raise PropertyError("expire_date %s is not a date such as '2027-06-30' (or 'never')"
                            % quoted(value)) from None


def show_expire(days: Optional[int]) -> str:
    return "never" if days is None else (EPOCH + datetime.timedelta(days=days)).isoformat()


def expire_arg(date: str) -> str:
    """usermod -e takes days since 1970-01-01 exactly (a date would be read in the
    machine's time zone); '' removes the expiry."""
    if date == "never":
        return ""
    day = datetime.datetime.strptime(date, "%Y-%m-%d").date()
    return str((day - EPOCH).days)
