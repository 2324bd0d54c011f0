"""Transports take a plan to a target and bring its events back.

Every transport implements :class:`Transport`: the local one runs the agent
in-process, the SSH one ships the agent and the plan to a remote ``python3``, and
tests pass fakes. The runner and the CLI use nothing else of a transport.

Errors keep their kind whatever the transport: what the agent raises on the
target (a held run lock is a :class:`~converge.errors.RunError`) travels as its
kind and fields (:func:`converge.errors.to_wire`) and is raised again as the
same class on the controller (:func:`converge.errors.from_wire`); a library's
own exceptions (paramiko, socket) become converge's ``ConnectError``,
``AuthError``, ``HostKeyError`` or ``TransportError`` in one place, the SSH
transport's ``translate``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Protocol

if TYPE_CHECKING:
    from ..agent.engine import Event
    from ..plan import Plan


class Transport(Protocol):
    """What the runner and the CLI ask of a target's transport."""

    #: the host's name, as the inventory and the report call it
    host: str

    def facts(self) -> Dict[str, Any]:
        """The target's facts (gathered once; the recipe reads them as ``node``)."""
        ...

    def run(self, plan: "Plan", *, mode: str = "apply", fail_fast: bool = False,
            emit: Optional[Callable[["Event"], None]] = None) -> List["Event"]:
        """Converge the plan on the target (``mode`` apply or plan): the events, each
        also given to ``emit`` as it happens."""
        ...

    def history(self) -> List[Dict[str, Any]]:
        """The target's run journal."""
        ...

    def preview_rollback(self, run_id: Optional[str] = None) -> Dict[str, Any]:
        """What rolling back a run would do (packages removed, files changed since)."""
        ...

    def rollback(self, run_id: Optional[str] = None, *, force: bool = False,
                 yes: bool = False, emit: Optional[Callable[["Event"], None]] = None
                 ) -> List["Event"]:
        """Roll back a run on the target: the events."""
        ...

    def warm(self) -> None:
        """Get ready before the first request needs it (connect, start the agent);
        called on a thread while the recipe compiles. An error here is raised by the
        first request."""
        ...

    def close(self) -> None:
        """Let go of the target (a connection); the transport is not used again."""
        ...
