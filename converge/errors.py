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
"""

from __future__ import annotations

from typing import Optional


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
