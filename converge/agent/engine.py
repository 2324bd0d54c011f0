"""The engine: converge a plan on one machine, one event per resource.

For each step: guards → current state → changes → apply (or, in plan mode, only
report) → event. Delayed notifications run once each at the end. A failed resource
does not stop the others (unless ``fail_fast``); the resources it would have
notified are not run. The engine prints nothing: events go to ``emit``.
"""

from __future__ import annotations

import time
import traceback
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..errors import ConvergeError
from ..plan import Plan, Step
from ..resources._base import Resource, Skipped
from .system import System, describe_oserror

Event = Dict[str, Any]


class Engine:
    """Runs one plan against one System."""

    def __init__(
        self,
        system: System,
        *,
        mode: str = "apply",
        fail_fast: bool = False,
        emit: Optional[Callable[[Event], None]] = None,
        debug: bool = False,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if mode not in ("apply", "plan"):
            raise ValueError("mode must be 'apply' or 'plan'")
        self.system = system
        self.mode = mode
        self.fail_fast = fail_fast
        self.emit = emit or (lambda event: None)
        self.debug = debug
        self.sleep = sleep

    def run(self, plan: Plan) -> List[Event]:
        steps = {s.id: s for s in plan.steps}
        events: List[Event] = []
        delayed: List[Tuple[str, str, str]] = []
        for step in plan.steps:
            event = self._step(step)
            self._record(events, event)
            if event["status"] == "updated":
                for action, target, timing in step.notifies:
                    if timing == "immediately":
                        self._record(events, self._notify(steps, action, target, step.id))
                    elif (action, target) not in [(a, t) for a, t, _ in delayed]:
                        delayed.append((action, target, step.id))
            if event["status"] == "failed" and self.fail_fast and not step.ignore_failure:
                break
        else:
            for action, target, by in delayed:
                self._record(events, self._notify(steps, action, target, by))
        return events

    def _record(self, events: List[Event], event: Event) -> None:
        events.append(event)
        self.emit(event)

    def _step(self, step: Step, action: Optional[str] = None) -> Event:
        action = action or step.action
        event: Event = {
            "id": step.id, "type": step.type, "action": action, "status": "up_to_date",
            "changes": [], "diffs": [], "error": None, "warnings": [], "source": step.source,
        }
        started = time.monotonic()
        try:
            skip = self._skip_reason(step, action)
            if skip:
                event["status"], event["skip_reason"] = "skipped", skip
            else:
                self._converge(step.resource(action), event)
        except Skipped as exc:
            event["status"], event["skip_reason"] = "skipped", str(exc)
        except Exception as exc:  # noqa: BLE001 - a failed resource must not stop the run
            event["status"] = "failed"
            event["error"] = self._describe(exc)
            if step.ignore_failure:
                event["ignored"] = True
        event["time"] = round(time.monotonic() - started, 4)
        if step.sensitive:
            event["diffs"] = []
        return event

    def _skip_reason(self, step: Step, action: str) -> Optional[str]:
        if action == "nothing":
            return "action nothing"
        if step.only_if is not None and not self._guard(step.only_if):
            return "only_if"
        if step.not_if is not None and self._guard(step.not_if):
            return "not_if"
        return None

    def _guard(self, guard: Any) -> bool:
        if isinstance(guard, bool):
            return guard
        return self.system.run([str(a) for a in guard]).ok

    def _converge(self, resource: Resource, event: Event) -> None:
        step_retries = 0
        while True:
            try:
                changes = resource.changes(resource.current(self.system))
                event["changes"] = [c.text for c in changes]
                event["diffs"] = [c.diff for c in changes if c.diff]
                if changes:
                    event["status"] = "updated"
                    if self.mode == "apply":
                        resource.apply(self.system, changes)
                break
            except Skipped:
                raise
            except Exception:
                if step_retries >= getattr(resource.meta, "retries", 0):
                    raise
                step_retries += 1
                self.sleep(resource.meta.retry_delay)
        event["warnings"] = list(resource.warnings)

    def _notify(self, steps: Dict[str, Step], action: str, target: str, by: str) -> Event:
        step = steps[target]
        event = self._step(step, action)
        event["notified_by"] = by
        return event

    def _describe(self, exc: BaseException) -> str:
        if isinstance(exc, ConvergeError):
            text = exc.message + ("\n" + exc.hint if exc.hint else "")
        elif isinstance(exc, OSError):
            text = describe_oserror(exc)
            if exc.filename:
                text = "%s: %s" % (exc.filename, text)
        else:
            text = "internal error: %s: %s" % (type(exc).__name__, exc)
        if self.debug:
            text += "\n" + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        return text


def summarize(events: List[Event]) -> Dict[str, int]:
    """Counts by status, for the recap and the JSON report."""
    counts = {"total": 0, "updated": 0, "up_to_date": 0, "skipped": 0, "failed": 0,
              "ignored": 0}
    for event in events:
        counts["total"] += 1
        status = event["status"]
        counts["ignored" if status == "failed" and event.get("ignored") else status] += 1
    return counts
