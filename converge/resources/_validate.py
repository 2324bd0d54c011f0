"""Validators shared by resource types. Each returns the normalised value or raises
a PropertyError whose message says what was expected."""

from __future__ import annotations

import re
from typing import Any, Optional

from ..errors import PropertyError

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*\$?$")


def mode(value: Any, what: str = "mode") -> Optional[str]:
    """0o644, 420, "644" and "0644" all become "0644"; None stays None."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise PropertyError("%s %r is not an octal mode such as '0644'" % (what, value))
    if isinstance(value, int):
        if value > 0o7777 or (value > 0o777 and re.fullmatch(r"[0-7]{3,4}", str(value))):
            raise PropertyError(
                "%s %d is a decimal number; write it as 0o%d or '%04d'"
                % (what, value, value, value)
            )
        number = value
    else:
        text = str(value).strip()
        if text.startswith("0o"):
            text = text[2:]
        if not text or not re.fullmatch(r"[0-7]{1,4}", text):
            raise PropertyError("%s '%s' is not an octal mode such as '0644'" % (what, value))
        number = int(text, 8)
    if not 0 <= number <= 0o7777:
        raise PropertyError("%s '%o' is not an octal mode such as '0644'" % (what, number))
    return "%04o" % number


def path(value: Any, what: str = "path") -> str:
    """A file path: a non-empty string without NUL or newline bytes."""
    if not isinstance(value, str) or not value:
        raise PropertyError("%s must be a non-empty string, not %r" % (what, value))
    if "\0" in value or "\n" in value:
        raise PropertyError("%s %r contains a NUL or newline character" % (what, value))
    if len(value) > 4096:
        raise PropertyError("%s is longer than 4096 characters" % what)
    if value != "/" and value.endswith("/"):
        value = value.rstrip("/")
    return value


def account(value: Any, what: str) -> Optional[str]:
    """A user or group: a name as useradd accepts it, or a numeric id."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if isinstance(value, str) and (value.isdigit() or _NAME.match(value)) and len(value) <= 32:
        return value
    raise PropertyError(
        "%s %r is not a valid name (letters, digits, '_', '-', '.'; or a numeric id)"
        % (what, value)
    )


def boolean(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    raise PropertyError("%s must be True or False, not %r" % (what, value))


def integer(value: Any, what: str, low: Optional[int] = None, high: Optional[int] = None) -> int:
    if isinstance(value, bool):
        raise PropertyError("%s %r is not an integer" % (what, value))
    try:
        number = int(str(value).strip())
    except ValueError:
        raise PropertyError("%s '%s' is not an integer" % (what, value)) from None
    if (low is not None and number < low) or (high is not None and number > high):
        raise PropertyError("%s '%s' is out of range %s..%s" % (what, value, low, high))
    return number
