"""Cron fields, commands and names, validated as cron reads them; shared by cron
resources. Standard library only, Python 3.8: this module is shipped to targets."""

from __future__ import annotations

import re
from typing import Any, Dict, Optional, Tuple

from ..errors import PropertyError
from ._validate import quoted
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
_ELEMENT = re.compile(r"(\*|[0-9]+|[0-9]+-[0-9]+)(?:/([0-9]+))?")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FILE_NAME = re.compile(r"[A-Za-z0-9_-]+")


def field(name: str, value: Any) -> str:
    """One time field: 5, "*/10", "1-5", [0, 30] or "mon" become cron's text."""
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
    if names and lowered in names:
        return lowered
    tokens = re.split(r"[,/-]", lowered)
    if names and any(t in names for t in tokens) and all(
            t in names or t.isdigit() or t == "*" for t in tokens):
        raise PropertyError(
            "%s %s uses a name in a range or list; cron accepts a name only on its own "
            "(write numbers: %s)" % (name, quoted(text), _numbered(lowered, names, offset)))
    for element in text.split(","):
        match = _ELEMENT.fullmatch(element)
        if not match:
            raise PropertyError(
                "%s %s is not a cron field (a number, a range such as 1-5, a list such as "
                "1,15, a step such as */10, or *)" % (name, quoted(text)))
        span, step = match.groups()
        if span != "*":
            bounds = [int(n) for n in span.split("-")]
            for number in bounds:
                if not low <= number <= high:
                    raise PropertyError("%s '%s' is out of range %d-%d" % (name, number, low, high))
            if len(bounds) == 2 and bounds[0] > bounds[1]:
                raise PropertyError("%s '%s' is a backwards range (write %d-%d)"
                                    % (name, element, bounds[1], bounds[0]))
        if step is not None and not 1 <= int(step) <= high:
            raise PropertyError("%s '%s': the step must be between 1 and %d"
                                % (name, element, high))
    return text


def _numbered(text: str, names: Tuple[str, ...], offset: int) -> str:
    for index, n in enumerate(names):
        text = text.replace(n, str(index + offset))
    return text


def special(value: Any) -> Optional[str]:
    if value is None:
        return None
    text = str(value).strip().lower()
    if not text.startswith("@"):
        text = "@" + text
    if text not in SPECIALS:
        raise PropertyError("special %s is not one of: %s" % (quoted(value), ", ".join(SPECIALS)))
    return text


def command(value: Any) -> str:
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


def environment(value: Any) -> Dict[str, str]:
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


def file_name(value: Any) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str) or not _FILE_NAME.fullmatch(value):
        raise PropertyError(
            "cron_file %r is not a valid name: cron ignores files in /etc/cron.d whose names "
            "contain anything but letters, digits, '_' and '-'" % (value,))
    return value


def entry_name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or "\n" in value or "\r" in value:
        raise PropertyError("name must be a non-empty line of text, not %r" % (value,))
    return valid_text(value, "name").strip()
