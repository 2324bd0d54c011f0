"""The agent's entry point on a remote target: one request in, JSON lines out.

The loader (converge/transport/bundle.py) has sent the handshake, read the request
line and put the cached agent on ``sys.path``; it calls :func:`main` with that
line and the process's binary stdout. The request is one JSON line::

    {"op": "run", "mode": "apply", "fail_fast": false, "debug": false, "plan": {...}}
    {"op": "facts"}

and every answer is one JSON line, written as it happens::

    {"event": {...}}            one per resource, as the engine emits it
    {"done": true, "maxrss_kb": 11234}
    {"facts": {...}}
    {"error": "what went wrong"}

Standard library only, Python 3.8 compatible.
"""

from __future__ import annotations

import json
from typing import IO, Any, Dict

from ..errors import ConvergeError
from ..plan import Plan
from .engine import Engine
from .facts import gather
from .system import System


def _write(stdout: IO[bytes], message: Dict[str, Any]) -> None:
    stdout.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
    stdout.flush()


def _maxrss_kb() -> int:
    try:
        import resource
    except ImportError:  # pragma: no cover - not Unix
        return 0
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def main(line: bytes, stdout: IO[bytes], root: str = "/") -> int:
    """Serve one request line; the exit status is 0 unless the agent itself broke."""
    try:
        request = json.loads(line.decode("utf-8"))
        op = request["op"]
    except (ValueError, KeyError, TypeError):
        _write(stdout, {"error": "malformed request line: %r" % line[:80]})
        return 2
    try:
        if op == "facts":
            _write(stdout, {"facts": gather(System(root))})
            return 0
        if op != "run":
            _write(stdout, {"error": "unknown request %r" % op})
            return 2
        plan = Plan.from_dict(request["plan"])
        engine = Engine(System(root), mode=request.get("mode", "apply"),
                        fail_fast=bool(request.get("fail_fast")),
                        emit=lambda event: _write(stdout, {"event": event}),
                        debug=bool(request.get("debug")))
        engine.run(plan)
        _write(stdout, {"done": True, "maxrss_kb": _maxrss_kb()})
        return 0
    except BrokenPipeError:
        return 1
    except ConvergeError as exc:
        _write(stdout, {"error": str(exc)})
        return 1
    except Exception as exc:  # noqa: BLE001 - reported to the controller, not lost
        text = "agent error: %s: %s" % (type(exc).__name__, exc)
        if request.get("debug"):
            import traceback

            text += "\n" + traceback.format_exc()
        _write(stdout, {"error": text})
        return 1
