"""Validators shared by resource types. Each returns the normalised value or raises
a PropertyError whose message says what was expected.

Values are shown in messages with :func:`quoted` (Python's repr of the text), so a
hostile value (a newline, a terminal escape) is shown escaped, on one line.
Patterns are matched whole with ``fullmatch``: ``$`` would also match before a
final newline."""

from __future__ import annotations

import re
import types
from typing import Any, Callable, List, Optional, TypeVar, Union, cast

from ..errors import PropertyError, printable

_C = TypeVar("_C", bound=Callable[..., Any])


class _Lazy:
    """A regular expression compiled when first used (see :func:`pattern`)."""

    def __init__(self, text: str, flags: int) -> None:
        self._text, self._flags = text, flags
        self._compiled: Optional["re.Pattern[str]"] = None

    def __getattr__(self, name: str) -> Any:
        if self._compiled is None:
            self._compiled = re.compile(self._text, self._flags)
        return getattr(self._compiled, name)


def pattern(text: str, flags: int = 0) -> "re.Pattern[str]":
    """``re.compile(text, flags)``, compiled on first use: most of a resource
    module's patterns check properties on the controller, and the agent, which
    imports the module on every run, never uses them (compiling them all cost it
    about 2 ms a run). Use its methods (``fullmatch``...), not ``re.match(it, ...)``."""
    return cast("re.Pattern[str]", _Lazy(text, flags))


_NAME = pattern(r"[A-Za-z_][A-Za-z0-9_.-]*\$?")
NAME_MAX = 255  # bytes in one path component (Linux file systems)


def accepts(text: str) -> Callable[[_C], _C]:
    """Mark a coerce function with what a recipe may give it (``Union[str, int,
    None]`` for a mode), for the recipe stub (converge/stubs.py)."""

    def mark(function: _C) -> _C:
        function.accepts = text  # type: ignore[attr-defined]
        return function

    return mark


def quoted(value: Any) -> str:
    """A value as messages show it: '0644', 'a\\nb' (escaped, always one line)."""
    return repr(value if isinstance(value, str) else str(value))


def text(value: Any, what: str, *, one_line: bool = False) -> str:
    """A string that can be written to a file or passed as an argument: no NUL,
    valid UTF-8 (no lone surrogate), and with ``one_line`` no line break."""
    if not isinstance(value, str):
        raise PropertyError("%s must be a string, not %r" % (what, value))
    if "\0" in value:
        raise PropertyError("%s %s contains a NUL character" % (what, quoted(value)))
    if one_line and ("\n" in value or "\r" in value):
        raise PropertyError("%s %s contains a line break; it must be one line"
                            % (what, quoted(value)))
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PropertyError("%s %s is not valid UTF-8 text (it holds a lone surrogate)"
                            % (what, quoted(value))) from None
    return value


def one_line(value: Any, what: str) -> str:
    """:func:`text` on one line (a coerce function)."""
    return text(value, what, one_line=True)


@accepts("Union[str, Sequence[str]]")
def listed(value: Any, what: str) -> Any:
    """One string is a list of one: 'main' is ['main'] (a coerce function)."""
    return [value] if isinstance(value, str) else value


def between(low: int, high: int) -> Callable[[Any, str], int]:
    """A coerce function: an integer (or its digits) in low..high."""

    def coerce(value: Any, what: str) -> int:
        return integer(value, what, low, high)

    return coerce


def regex(value: str, what: str) -> str:
    """A regular expression Python compiles without error or warning (a warning,
    such as "possible set intersection" for '[a&&b]', means a later Python may read
    the pattern differently)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            re.compile(value)
        except (re.error, Warning) as exc:
            raise PropertyError("%s %s is not a valid regular expression: %s"
                                % (what, quoted(value), exc)) from None
    return value


@accepts("Union[str, int, None]")
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
        digits = str(value).strip()
        if digits.startswith("0o"):
            digits = digits[2:]
        if not digits or not re.fullmatch(r"[0-7]{1,4}", digits):
            raise PropertyError("%s %s is not an octal mode such as '0644'" % (what, quoted(value)))
        number = int(digits, 8)
    if not 0 <= number <= 0o7777:
        raise PropertyError("%s '%o' is not an octal mode such as '0644'" % (what, number))
    return "%04o" % number


def path(value: Any, what: str = "path") -> str:
    """A file path: a non-empty string without NUL or line breaks, valid UTF-8, with
    no '..' component (a path names one place: it never climbs out of a directory,
    nor out of the root a run is confined to), each component at most 255 bytes.
    '.' components, repeated and trailing slashes are dropped: '/etc/./motd/' is
    '/etc/motd'."""
    if not isinstance(value, str) or not value:
        raise PropertyError("%s must be a non-empty string, not %r" % (what, value))
    if "\0" in value or "\n" in value or "\r" in value:
        raise PropertyError("%s %s contains a NUL or line break character" % (what, quoted(value)))
    text(value, what)
    if len(value) > 4096:
        raise PropertyError("%s is longer than 4096 characters" % what)
    parts = value.split("/")
    if ".." in parts:
        raise PropertyError("%s %s has a '..' component; give the path it means without '..'"
                            % (what, quoted(value)))
    for part in parts:
        if len(part.encode("utf-8")) > NAME_MAX:
            raise PropertyError("%s %s has a component longer than %d bytes"
                                % (what, quoted(value), NAME_MAX))
    kept = [p for p in parts if p not in ("", ".")]
    if value.startswith("/"):
        return "/" + "/".join(kept)
    return "/".join(kept) or "."


@accepts("Union[str, int, None]")
def account(value: Any, what: str) -> Optional[str]:
    """A user or group: a name as useradd accepts it, or a numeric id."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if isinstance(value, str) and (re.fullmatch(r"[0-9]+", value) or _NAME.fullmatch(value)) \
            and len(value) <= 32:
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
    digits = str(value).strip()
    if not re.fullmatch(r"[-+]?[0-9]+", digits):
        raise PropertyError("%s %s is not an integer" % (what, quoted(value)))
    number = int(digits)
    if (low is not None and number < low) or (high is not None and number > high):
        raise PropertyError("%s %s is out of range %s..%s" % (what, quoted(value), low, high))
    return number



# -- declared types (prop(type=...) or the annotation), checked at compile time ----

def _origin(kind: Any) -> Any:
    import typing

    origin = getattr(typing, "get_origin", lambda k: getattr(k, "__origin__", None))(kind)
    if origin is not None and origin is getattr(types, "UnionType", ()):
        return Union
    return origin


def _args(kind: Any) -> Any:
    return getattr(kind, "__args__", None) or ()


def matches(value: Any, kind: Any) -> bool:
    """Whether value is of the declared kind: a class (int refuses True; float takes
    an int), Any, None, Optional/Union, List/Sequence/Tuple (a list or a tuple) and
    Dict of them. Constructs it does not know are accepted."""
    from collections import abc

    if kind is Any or kind is object:
        return True
    if kind is None or kind is type(None):
        return value is None
    origin = _origin(kind)
    if origin is Union:
        return any(matches(value, k) for k in _args(kind))
    if origin in (list, tuple, abc.Sequence, abc.MutableSequence):
        if not isinstance(value, (list, tuple)):
            return False
        inner = [k for k in _args(kind) if k is not Ellipsis][:1]
        return all(matches(item, inner[0]) for item in value) if inner else True
    if origin in (dict, abc.Mapping, abc.MutableMapping):
        if not isinstance(value, dict):
            return False
        pair = _args(kind)
        return len(pair) != 2 or all(matches(k, pair[0]) and matches(v, pair[1])
                                     for k, v in value.items())
    if origin is not None or not isinstance(kind, type):
        return True
    if kind in (int, float) and isinstance(value, bool):
        return False
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)


_NAMES = {str: ("a string", "strings"), int: ("an integer", "integers"),
          float: ("a number", "numbers"), bool: ("True or False", "booleans"),
          bytes: ("bytes", "bytes"), dict: ("a dict", "dicts"), list: ("a list", "lists"),
          type(None): ("None", "None")}


def describe(kind: Any, plural: bool = False) -> str:
    """A declared kind in words: 'a string or None', 'a list of strings'."""
    if kind is None:
        kind = type(None)
    if kind in _NAMES:
        return _NAMES[kind][plural]
    origin = _origin(kind)
    if origin is Union:  # None goes without saying: it is what leaves a property unset
        parts: List[str] = []
        for k in [k for k in _args(kind) if k is not type(None)] or [None]:
            text = describe(k, plural)
            if text not in parts:
                parts.append(text)
        return " or ".join([", ".join(parts[:-1]), parts[-1]] if len(parts) > 2 else parts)
    if origin is not None and origin in (list, tuple) or \
            getattr(origin, "__name__", "") in ("Sequence", "MutableSequence"):
        inner = [k for k in _args(kind) if k is not Ellipsis][:1]
        head = "lists" if plural else "a list"
        return head + (" of %s" % describe(inner[0], True) if inner and inner[0] is not Any
                       else "")
    if origin is not None and origin is dict or \
            getattr(origin, "__name__", "") in ("Mapping", "MutableMapping"):
        pair = _args(kind)
        head = "dicts" if plural else "a dict"
        if len(pair) == 2 and pair[1] is not Any:
            return "%s of %s to %s" % (head, describe(pair[0], True), describe(pair[1], True))
        return head
    name = getattr(kind, "__name__", str(kind))
    return name + "s" if plural else "a " + name


def kind_of(value: Any) -> str:
    """'an int', 'a list': what a value is, without showing it."""
    name = type(value).__name__
    return ("an " if name[:1] in "aeiou" else "a ") + name


def shown(value: Any) -> str:
    """A value in a message: its repr on one line (a recipe's object may write any
    repr: its control characters are escaped), cut at 60 characters."""
    text = printable(repr(value))
    return text if len(text) <= 60 else text[:57] + "..."
