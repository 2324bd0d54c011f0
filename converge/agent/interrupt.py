"""SIGINT and SIGTERM during a run: what the agent started is stopped, the run is
journaled as interrupted, and the one who interrupted it is told.

While :func:`signals` is active (the main thread of an apply), both signals raise
:class:`Interrupted`, a KeyboardInterrupt that knows its signal. Each layer it
passes through records what it did: the command stopped (System.run_long), the
resource cut short (the engine journals it as failed), the run journaled as
interrupted (runs). The CLI prints :meth:`Interrupted.message` and exits 128 +
the signal's number. Standard library only, Python 3.8.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Any, Dict, Iterator, Optional

CAUGHT = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """The run was interrupted by a signal, and what was done about it: the command
    stopped (``stopped``), the resource it cut short (``during``, with its journal
    ``event``), the run journaled as interrupted (``run_id``)."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.stopped: Optional[str] = None
        self.during: Optional[str] = None
        self.event: Optional[Dict[str, Any]] = None
        self.run_id: Optional[str] = None

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    def reason(self) -> str:
        """What the resource's record says: ``interrupted by SIGINT; its command ...``."""
        text = "interrupted by %s" % signal.Signals(self.signum).name
        return text + ("; stopped its command (%s)" % self.stopped if self.stopped else "")

    def message(self) -> str:
        """One line for the one who interrupted the run."""
        text = "interrupted by %s" % signal.Signals(self.signum).name
        if self.during:
            text += " during %s" % self.during
        if self.stopped:
            text += ": stopped its command (%s)" % self.stopped
        if self.run_id:
            text += "; the run is journaled as interrupted (run %s: `converge history` " \
                    "lists it, `converge rollback %s` undoes it)" % (self.run_id, self.run_id)
        return text


def as_interrupted(exc: BaseException) -> Interrupted:
    """A KeyboardInterrupt as an Interrupted (Python's own handler raises the plain one)."""
    if isinstance(exc, Interrupted):
        return exc
    return Interrupted(signal.SIGINT)


#: ``held``: how many held() blocks are open; ``pending``: a signal that came in one
_STATE: Dict[str, Any] = {"held": 0, "pending": None}


def _raise(signum: int, frame: Any) -> None:
    if _STATE["held"]:
        _STATE["pending"] = signum
        return
    raise Interrupted(signum)


@contextmanager
def held() -> Iterator[None]:
    """A signal that comes inside the block is raised at its end, not in the middle
    (a Popen cut short after its fork would lose the child's pid)."""
    _STATE["held"] += 1
    try:
        yield
    finally:
        _STATE["held"] -= 1
        signum = _STATE["pending"]
        if signum is not None and not _STATE["held"]:
            _STATE["pending"] = None
            raise Interrupted(signum)


@contextmanager
def signals() -> Iterator[None]:
    """Make SIGINT and SIGTERM raise Interrupted here (main thread only; a signal
    someone set to be ignored stays ignored), and put the handlers back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {}
    for signum in CAUGHT:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            saved[signum] = signal.signal(signum, _raise)
    try:
        yield
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
