"""Cron fields, commands and names, validated as cron reads them; shared by cron
resources. Standard library only, Python 3.8: this module is shipped to targets."""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from ..errors import PropertyError
from ._validate import pattern, quoted
from ._validate import text as valid_text

MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
#: name: (low, high, names whose index + offset is the number)
FIELDS: Dict[str, Tuple[int, int, Tuple[str, ...], int]] = {
    "minute": (0, 59, (), 0),
    "hour": (0, 23, (), 0),
    "day": (1, 31, (), 0),
    "month": (1, 12, MONTHS, 1),
    "weekday": (0, 7, DAYS, 0),
}
SPECIALS = ("@reboot", "@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@annually",
            "@midnight")
_VALUE = r"[0-9]+|[a-z]+"
#: One element of a list, as Debian's cron and cronie read it: *, a value or a range
#: (either end a number or, in month and weekday, a three-letter name), then a step
#: only after * or a range. A range may run backwards (22-2): the daemon wraps it.
_ELEMENT = pattern(r"(\*|(%s)(?:-(%s))?)(?:/([0-9]+))?" % (_VALUE, _VALUE))
_ENV_NAME = pattern(r"[A-Za-z_][A-Za-z0-9_]*")
_FILE_NAME = pattern(r"[A-Za-z0-9_-]+")
_SHAPES = ("a number, a range such as 1-5, a list such as 1,15, a step such as */10 or "
           "1-30/5, or *")


def field(name: str, value: Any) -> str:
    """One time field: 5, "*/10", "1-5", [0, 30], "mon" or "mon-fri" become cron's text.

    Accepts what Debian's cron and cronie accept (names case-insensitively, in ranges
    and lists too) and refuses what they refuse (``monday``, ``mon/2``, a step of 0),
    plus what Debian's crontab would install while ignoring part of it (``1-2-3``)."""
    low, high, names, offset = FIELDS[name]
    if isinstance(value, bool):
        raise PropertyError("%s %r is not a cron field" % (name, value))
    if isinstance(value, (list, tuple)):
        if not value:
            raise PropertyError("%s is an empty list" % name)
        text = ",".join(str(v) for v in value)
    else:
        text = str(value).strip()
    lowered = text.lower()
    for element in lowered.split(","):
        match = _ELEMENT.fullmatch(element)
        if not match:
            raise PropertyError("%s %s is not a cron field (%s)" % (name, quoted(text), _SHAPES))
        _, first, last, step = match.groups()
        if step is not None and first is not None and last is None:
            raise PropertyError("%s %s: a step needs a range or * before it (write %s-%d/%s)"
                                % (name, quoted(text), first, high, step))
        for part in (first, last):
            if part is not None:
                _number(name, part, low, high, names, offset)
        if step is not None and int(step) < 1:
            raise PropertyError("%s %s: the step must be 1 or more" % (name, quoted(text)))
    return lowered



def time_field(value: Any, what: str) -> str:
    """:func:`field` as a property's coerce function."""
    return field(what, value)

def _number(name: str, part: str, low: int, high: int, names: Tuple[str, ...],
            offset: int) -> int:
    if part.isdigit():
        number = int(part)
        if not low <= number <= high:
            raise PropertyError("%s '%s' is out of range %d-%d" % (name, part, low, high))
        return number
    if part in names:
        return names.index(part) + offset
    if names:
        raise PropertyError("%s '%s' is not a number %d-%d or one of the names %s"
                            % (name, part, low, high, ", ".join(names)))
    raise PropertyError("%s '%s' is not a number %d-%d" % (name, part, low, high))


def special(value: Any, what: str = "special") -> Any:
    """'daily' and '@Daily ' become '@daily' (prop's choices then check it)."""
    if not isinstance(value, str):
        return value
    text = value.strip().lower()
    return text if text.startswith("@") else "@" + text


def command(value: Any, what: str = "command") -> str:
    """A command cron runs as one line; ``%`` must be escaped."""
    if not isinstance(value, str) or not value.strip():
        raise PropertyError("command must be a non-empty string, not %r" % (value,))
    if "\n" in value or "\r" in value:
        raise PropertyError("command contains a newline; a cron entry is one line (put several "
                            "commands in a script)")
    valid_text(value, "command")
    escaped = False
    for char in value:
        if char == "%" and not escaped:
            raise PropertyError(
                "command contains an unescaped '%': cron turns % into a newline and passes "
                "what follows as standard input; write \\% to keep a literal %")
        escaped = char == "\\" and not escaped
    return value.strip()


def environment(value: Any, what: str = "environment") -> Dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PropertyError("environment must be a dict such as {'MAILTO': 'root'}")
    out = {}
    for key, val in value.items():
        if not isinstance(key, str) or not _ENV_NAME.fullmatch(key):
            raise PropertyError("environment name %r is not a variable name such as MAILTO"
                                % (key,))
        text = "" if val is None else str(val)
        if "\n" in text or "\r" in text or '"' in text:
            raise PropertyError("environment %s contains a newline or a double quote" % key)
        valid_text(text, "environment %s" % key)
        out[key] = text
    return out


def file_name(value: Any, what: str = "cron_file") -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str) or not _FILE_NAME.fullmatch(value):
        raise PropertyError(
            "cron_file %r is not a valid name: cron ignores files in /etc/cron.d whose names "
            "contain anything but letters, digits, '_' and '-'" % (value,))
    return value


def entry_name(value: Any, what: str = "name") -> str:
    if not isinstance(value, str) or not value.strip() or "\n" in value or "\r" in value:
        raise PropertyError("name must be a non-empty line of text, not %r" % (value,))
    return valid_text(value, "name").strip()
