"""The errors converge raises, and what each one means to a user.

::

    ConvergeError                 anything converge reports without a traceback
    ├── RecipeError               a recipe cannot be loaded or compiled (exit 1)
    │   └── PropertyError         a resource property is unknown or invalid
    ├── InventoryError            an inventory or target list is malformed
    ├── TransportError            a target could not be reached or talked to
    │   ├── ConnectError          no connection (refused, unreachable, timed out)
    │   ├── AuthError             the connection was refused our credentials
    │   └── HostKeyError          the host key is unknown or has changed
    ├── ResourceError             a resource failed on the target
    ├── RunError                  a run cannot start or be rolled back: the run lock
    │                             is held, a journal is missing, a file changed since
    └── VaultError                a vault file or value cannot be read or written: no
                                  password, a wrong password, damaged text

Every error carries keyword-only context: ``source`` ("recipe.py:7"), ``host`` and
``identity`` ("file[/etc/motd]"); ``str(error)`` puts them in front of the message,
compiler-style, so editors can jump to the line.

An error keeps its kind across a transport: the agent on a target sends
:func:`to_wire`, the controller raises :func:`from_wire`'s error, the same class
with the same message and hint as a local run raises (a held run lock is a
RunError either way), naming the host.
"""

from __future__ import annotations

from typing import Any, Dict, Optional


class ConvergeError(Exception):
    """Base of every error converge expects and explains."""

    def __init__(
        self,
        message: str,
        *,
        source: Optional[str] = None,
        host: Optional[str] = None,
        identity: Optional[str] = None,
        hint: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.source = source
        self.host = host
        self.identity = identity
        self.hint = hint

    def __str__(self) -> str:
        parts = []
        if self.source:
            parts.append(self.source)
        if self.host and self.host != "localhost":
            parts.append(self.host)
        if self.identity:
            parts.append(self.identity)
        text = ": ".join(parts + [self.message])
        if self.hint:
            text += "\n  " + self.hint
        return text


class RecipeError(ConvergeError):
    """A recipe could not be found, parsed or compiled."""


class PropertyError(RecipeError):
    """A resource was declared with an unknown or invalid property."""


class InventoryError(ConvergeError):
    """An inventory file or a target given on the command line is malformed."""


class TransportError(ConvergeError):
    """A target could not be reached, or the conversation with it broke."""


class ConnectError(TransportError):
    """No connection could be made to the target."""


class AuthError(TransportError):
    """The target refused our credentials."""


class HostKeyError(TransportError):
    """The target's host key is unknown, or differs from the recorded one."""


class ResourceError(ConvergeError):
    """A resource failed on the target; the run goes on with the others."""


class RunError(ConvergeError):
    """A run could not start (another holds the run lock), or a rollback was refused
    (unknown run, missing backup, files changed since that run)."""


class VaultError(ConvergeError):
    """A vault file or value cannot be read or written: no password was given, the
    password does not open it, or its text is damaged."""


def printable(text: str, tabs: bool = False) -> str:
    """Control characters (a newline, a terminal escape) escaped, so a value shown
    to people is one line of plain text that cannot drive their terminal; ``tabs``
    keeps tabs as they are (lines of a file's diff)."""
    if all(c.isprintable() or c == " " or (tabs and c == "\t") for c in text):
        return text
    return "".join(c if c.isprintable() or c == " " or (tabs and c == "\t")
                   else repr(c)[1:-1] for c in text)


def printable_lines(text: str, tabs: bool = False) -> str:
    """:func:`printable` line by line: the newlines of a message with a hint (or of
    a diff) stay, every other control character is escaped."""
    return "\n".join(printable(line, tabs) for line in text.split("\n"))


def to_wire(exc: ConvergeError) -> Dict[str, Any]:
    """An error as the agent sends it: its kind and fields (``error`` is the whole
    text, for a controller that knows no more)."""
    return {"error": str(exc), "kind": type(exc).__name__, "message": exc.message,
            "hint": exc.hint, "source": exc.source, "identity": exc.identity}


def from_wire(data: Dict[str, Any], host: str) -> ConvergeError:
    """The error an agent sent (:func:`to_wire`), as the same class, naming ``host``;
    an error without a known kind (the agent broke, the loader refused its cache)
    is a TransportError with the agent's text."""
    kinds = {cls.__name__: cls for cls in _KINDS}
    kind = kinds.get(str(data.get("kind")))
    message = data.get("message")
    if kind is None or not isinstance(message, str):
        return TransportError("agent: %s" % (data.get("error"),), host=host)

    def text(key: str) -> Optional[str]:
        value = data.get(key)
        return value if isinstance(value, str) else None

    return kind(message, host=host, source=text("source"), identity=text("identity"),
                hint=text("hint"))


_KINDS = (ConvergeError, RecipeError, PropertyError, InventoryError, TransportError,
          ConnectError, AuthError, HostKeyError, ResourceError, RunError, VaultError)
