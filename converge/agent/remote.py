"""The agent's entry point on a remote target: one request in, JSON lines out.

The loader (converge/transport/bundle.py) has sent the handshake, read the request
line and put the cached agent on ``sys.path``; it calls :func:`main` with that
line and the process's binary stdout. The request is one JSON line::

    {"op": "run", "mode": "apply", "fail_fast": false, "debug": false, "plan": {...},
     "keep_runs": 50, "lock_timeout": 60}
    {"op": "facts"}
    {"op": "history"}
    {"op": "rollback", "run": null, "force": false, "yes": false, "preview": false, ...}

and every answer is one JSON line, written as it happens::

    {"event": {...}}            one per resource, as the engine emits it
    {"done": true, "maxrss_kb": 11234, "cpu": 0.041}   peak memory, CPU seconds
    {"facts": {...}}
    {"history": [...]}          the run journal (converge/agent/journal.py)
    {"preview": {...}}          what a rollback would do
    {"notice": "text"}          said while working: waiting for the run lock...
    {"error": "what went wrong", "kind": "RunError", "message": ..., "hint": ...}

When the controller goes away mid-run (killed, its connection lost), sshd closes
the session: the agent's standard output has no reader any more. A watchdog
thread sees it at once (poll: POLLERR on a pipe, POLLHUP on a socket), as does a
SIGHUP; the agent then kills the command it is running (execute's process
group) and stops at its next event, as a write to a closed pipe would, so the
run's journal is finished (interrupted) and the run lock released within
moments instead of an agent and its command blocked forever holding it.

Standard library only, Python 3.8 compatible.
"""

from __future__ import annotations

import json
import threading
from typing import IO, Any, Callable, Dict

from ..errors import ConvergeError, to_wire
from ..plan import Plan
from . import runs
from .interrupt import as_interrupted
from .system import System

_GONE = threading.Event()  # the controller is gone: see the module docstring


def _write(stdout: IO[bytes], message: Dict[str, Any]) -> None:
    if _GONE.is_set():
        raise BrokenPipeError("the controller is gone")
    stdout.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
    stdout.flush()


def watch_controller(stdout: IO[bytes], stop: Callable[[], None]) -> None:
    """Call ``stop`` (once) when the controller is gone: standard output lost its
    reader, or SIGHUP came. Does nothing when stdout is not a pipe or socket."""
    import select
    import signal

    def gone() -> None:
        if not _GONE.is_set():
            _GONE.set()
            stop()

    try:
        fd = stdout.fileno()
        poller = select.poll()
        poller.register(fd, select.POLLERR | select.POLLHUP)
    except (AttributeError, OSError, ValueError):  # not a real file: a test's buffer
        return

    def watch() -> None:
        while not poller.poll():
            pass
        gone()

    threading.Thread(target=watch, name="watch-controller", daemon=True).start()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGHUP, lambda signum, frame: gone())


def _maxrss_kb() -> int:
    try:
        import resource
    except ImportError:  # pragma: no cover - not Unix
        return 0
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _cpu() -> float:
    """CPU seconds (user and system) of this agent and the commands it ran."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not Unix
        return 0.0
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return round(total, 4)


def main(line: bytes, stdout: IO[bytes], root: str = "/") -> int:
    """Serve one request line; the exit status is 0 unless the agent itself broke.
    No line at all (end of input: a ready agent whose connection closed before a run
    took it, see converge/transport/broker.py) ends it quietly."""
    if not line:
        return 0
    try:
        request = json.loads(line.decode("utf-8"))
        op = request["op"]
    except (ValueError, KeyError, TypeError):
        _write(stdout, {"error": "malformed request line: %r" % line[:80]})
        return 2
    try:
        if op == "facts":  # facts are imported only when asked for
            from .facts import gather

            _write(stdout, {"facts": gather(System(root))})
            return 0
        if op == "history":
            _write(stdout, {"history": runs.history(System(root))})
            return 0
        if op not in ("run", "rollback"):
            _write(stdout, {"error": "unknown request %r" % op})
            return 2
        options = runs.Options.from_request(
            request, emit=lambda event: _write(stdout, {"event": event}),
            notice=lambda text: _write(stdout, {"notice": text}))
        system = System(root)
        if op == "rollback" and request.get("preview"):
            _write(stdout, {"preview": runs.preview(system, request.get("run"))})
            return 0
        watch_controller(stdout, system.stop_commands)
        if op == "rollback":
            runs.rollback(system, request.get("run"), force=bool(request.get("force")),
                          yes=bool(request.get("yes")), options=options)
        else:
            runs.apply_plan(system, Plan.from_dict(request["plan"]),
                            request.get("mode", "apply"), options)
        _write(stdout, {"done": True, "maxrss_kb": _maxrss_kb(), "cpu": _cpu()})
        return 0
    except BrokenPipeError:
        return 1
    except KeyboardInterrupt as exc:  # SIGINT/SIGTERM: stopped and journaled (interrupt.py)
        interrupted = as_interrupted(exc)
        try:
            _write(stdout, {"error": interrupted.message()})
        except OSError:
            pass
        return interrupted.exit_code
    except ConvergeError as exc:  # raised again on the controller as the same class
        _write(stdout, to_wire(exc))
        return 1
    except Exception as exc:  # noqa: BLE001 - reported to the controller, not lost
        text = "agent error: %s: %s" % (type(exc).__name__, exc)
        if request.get("debug"):
            import traceback

            text += "\n" + traceback.format_exc()
        _write(stdout, {"error": text})
        return 1
