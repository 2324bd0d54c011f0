"""The engine: converge a plan on one machine, one event per resource.

For each step: guards → current state → changes → apply (or, in plan mode, only
report) → event. Delayed notifications run once each at the end. A failed resource
does not stop the others (unless ``fail_fast``); the resources it would have
notified are not run. The engine prints nothing: events go to ``emit``.

Batching: a resource type may define two classmethods, ``prefetch(system,
resources)`` and ``apply_batch(system, batch)``. For a run of consecutive
unguarded steps of that type, the engine builds their resources and calls
``prefetch`` once: it reads the state of all of them (read-only, in every mode)
and returns each one's current state (None: the resource reads its own). Each
step then computes its changes as usual. In apply mode the engine journals every
member that has changes (``journal.begin``, on disk) and only then calls
``apply_batch`` with their (resource, changes), which acts on all of them in one
transaction (package: one ``apt-get install`` for twenty packages) and returns
each one's error or None; then ``journal.applied`` for each. So an agent killed
during the transaction leaves a journal naming every member of the batch. Each
step still reports on its own.

Journal: given a journal (converge/agent/journal.py), the engine hands it, in
apply mode, each resource about to change (``journal.begin``: the resource's
optional ``before`` hook records the prior state, and the journal is on disk
before ``apply`` runs), then ``journal.applied`` after it, and every event.

Pending work: a resource's ``leaves(system, current, changes)`` may return work
its changes leave for later (resources/_base.py Pending: ``systemctl
daemon-reload`` after a unit file changed). The engine keeps one of each (by the
identity of the resource doing it) and converges it once, as its own event
notified by every resource that left it, before the first later step that needs
it (a ``service``, a unit's start...) and otherwise at the end of the run, also
after a fail-fast stop. In plan mode it is shown the same way, as what would
run. Members of one batch are converged together, so work left by one member is
done after the whole batch.

Interruption (SIGINT, SIGTERM: converge/agent/interrupt.py): the resource being
converged is recorded as failed, ``interrupted by SIGINT``, and the run stops.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..errors import ConvergeError
from ..plan import Plan, Step
from ..resources._base import REGISTRY, Pending, Resource, Skipped
from .interrupt import Interrupted, as_interrupted
from .system import System, describe_oserror

Event = Dict[str, Any]
#: a batch member whose apply waits for the batch: (step, resource, current, changes, event)
Deferred = Tuple[Step, Resource, Any, List[Any], Event]


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
        journal: Optional[Any] = None,
    ) -> None:
        if mode not in ("apply", "plan"):
            raise ValueError("mode must be 'apply' or 'plan'")
        self.system = system
        self.mode = mode
        self.fail_fast = fail_fast
        self.emit = emit or (lambda event: None)
        self.debug = debug
        self.sleep = sleep
        self.journal = journal if mode == "apply" else None

    def run(self, plan: Plan) -> List[Event]:
        """Converge every step; the events, in order. The directories written into
        are made durable once, at the end (System.sync), however the run ends."""
        events: List[Event] = []
        self.events = events  # what was recorded so far, also when interrupted
        #: pending work by the identity of what does it: (the work, who left it)
        self.pending: Dict[str, Tuple[Pending, List[str]]] = {}
        self.system.scans().clear()  # a run sees the processes of its own time
        try:
            self._run(plan, events)
        finally:
            self.system.sync()
        return events

    def _run(self, plan: Plan, events: List[Event]) -> None:
        steps = {s.id: s for s in plan.steps}
        delayed: List[Tuple[str, str, str]] = []
        batched: Dict[int, Event] = {}
        for index, step in enumerate(plan.steps):
            if step.unselected:  # left out by --tags: runs only when notified
                continue
            try:
                if index not in batched:
                    if step.action != "nothing" and not step.skip:
                        self._flush(events, step.type, step.action)
                    batched = self._batch(plan.steps, index)
                event = batched.pop(index, None) or self._step(step)
            except Interrupted as exc:
                if exc.event is not None:
                    self._record(events, exc.event)
                raise
            self._record(events, event)
            if event["status"] == "updated":
                for action, target, timing in step.notifies:
                    if timing == "immediately":
                        self._flush(events, steps[target].type, action)
                        self._record(events, self._notify(steps, action, target, step.id))
                    elif (action, target) not in [(a, t) for a, t, _ in delayed]:
                        delayed.append((action, target, step.id))
            if event["status"] == "failed" and self.fail_fast and not step.ignore_failure:
                break
        else:
            for action, target, by in delayed:
                self._flush(events, steps[target].type, action)
                self._record(events, self._notify(steps, action, target, by))
        self._flush(events)

    def _leave(self, step: Step, resource: Resource, current: Any, changes: List[Any]) -> None:
        """Keep the work this resource's changes leave for later (one of each)."""
        for work in resource.leaves(self.system, current, changes):
            key = work.resource.identity
            if key not in self.pending:
                work.resource.meta.source = work.resource.meta.source or step.source
                self.pending[key] = (work, [])
            self.pending[key][1].append(step.id)

    def _flush(self, events: List[Event], type_name: Optional[str] = None,
               action: str = "") -> None:
        """Converge the pending work a step of this type and action needs (all of
        it when no type is given: the end of the run), each as its own event."""
        for key in list(self.pending):
            work, by = self.pending[key]
            if type_name is not None and not work.needed_by(type_name, action):
                continue
            del self.pending[key]
            event = self._step(Step.from_resource(work.resource), resource=work.resource)
            event["notified_by"] = ", ".join(by)
            self._record(events, event)

    def _record(self, events: List[Event], event: Event) -> None:
        events.append(event)
        if self.journal is not None:
            self.journal.event(event)
        self.emit(event)

    def _batch(self, steps: List[Step], start: int) -> Dict[int, Event]:
        """The batching hook (see the module docstring): the events of the run of
        steps from ``start``, by index, converged together; {} when the type does
        not batch or its prefetch failed (each step then converges alone)."""
        cls = REGISTRY.get(steps[start].type)
        prefetch = getattr(cls, "prefetch", None)
        if cls is None or prefetch is None:
            return {}
        indexes: List[int] = []
        while (start + len(indexes) < len(steps)
               and steps[start + len(indexes)].type == steps[start].type
               and _batchable(steps[start + len(indexes)])):
            indexes.append(start + len(indexes))
        if not indexes:
            return {}
        resources = [steps[i].resource() for i in indexes]
        try:
            currents = prefetch(self.system, resources)
        except Exception:  # noqa: BLE001 - fresh resources then read and act alone
            return {}
        pending: List[Deferred] = []
        if len(currents) != len(resources):
            return {}
        events = {i: self._step(steps[i], resource=resources[n], current=currents[n],
                                deferred=pending) for n, i in enumerate(indexes)}
        if pending:
            self._apply_batch(cls, pending)
        return events

    def _apply_batch(self, cls: Any, pending: List[Deferred]) -> None:
        """Journal every member, then one transaction, then each member's outcome."""
        if self.journal is not None:
            for _, resource, current, changes, event in pending:
                self.journal.begin(event, resource, current, changes)
        try:
            errors = cls.apply_batch(self.system, [(p[1], p[3]) for p in pending])
        except KeyboardInterrupt as exc:  # the journal names every member already
            interrupted = as_interrupted(exc)
            interrupted.during = ", ".join(p[4]["id"] for p in pending)
            raise interrupted from None
        except Exception as exc:  # noqa: BLE001 - the batch fails, the run goes on
            errors = [exc] * len(pending)
        if len(errors) != len(pending):
            errors = [RuntimeError("%s.apply_batch returned %d results for %d resources"
                                   % (cls.__name__, len(errors), len(pending)))] * len(pending)
        for n, (step, resource, current, changes, event) in enumerate(pending):
            error = errors[n]
            if self.journal is not None:
                self.journal.applied(event)
            if error is None:
                try:
                    self._leave(step, resource, current, changes)
                except Exception as exc:  # noqa: BLE001 - this member fails, not the run
                    error = exc
            if error is not None:
                event["status"], event["error"] = "failed", self._describe(error)
                if step.ignore_failure:
                    event["ignored"] = True

    def _step(self, step: Step, action: Optional[str] = None,
              resource: Optional[Resource] = None, current: Any = None,
              deferred: Optional[List[Deferred]] = None) -> Event:
        """Converge one step. In a batch (see _batch), ``current`` is what prefetch
        read (None: read it here) and the apply is left to the batch (``deferred``)."""
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
                self._converge(step, resource or step.resource(action), event, current,
                               deferred)
        except Skipped as exc:
            event["status"], event["skip_reason"] = "skipped", str(exc)
        except KeyboardInterrupt as exc:  # SIGINT or SIGTERM: journal it, then stop
            interrupted = as_interrupted(exc)
            event["status"], event["error"] = "failed", interrupted.reason()
            event["interrupted"] = True
            event["time"] = round(time.monotonic() - started, 4)
            interrupted.during, interrupted.event = step.id, event
            raise interrupted from None
        except Exception as exc:  # noqa: BLE001 - a failed resource must not stop the run
            event["status"] = "failed"
            event["error"] = self._describe(exc)
            if step.ignore_failure:
                event["ignored"] = True
        event["time"] = round(time.monotonic() - started, 4)
        if step.sensitive or step.secret_file:  # a diff would show a sensitive value
            event["diffs"] = []
        return event

    def _skip_reason(self, step: Step, action: str) -> Optional[str]:
        if step.skip:
            return step.skip
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

    def _converge(self, step: Step, resource: Resource, event: Event, prefetched: Any = None,
                  deferred: Optional[List[Deferred]] = None) -> None:
        step_retries = 0
        while True:
            try:
                current = resource.current(self.system) if prefetched is None else prefetched
                prefetched = None  # a retry reads again
                changes = resource.changes(current)
                event["changes"] = [c.text for c in changes]
                event["diffs"] = [c.diff for c in changes if c.diff]
                if changes:
                    event["status"] = "updated"
                    if self.mode == "apply" and deferred is not None:
                        deferred.append((step, resource, current, changes, event))
                    else:
                        if self.mode == "apply":
                            self._apply(resource, current, changes, event)
                        self._leave(step, resource, current, changes)
                break
            except Skipped:
                raise
            except Exception:
                if step_retries >= getattr(resource.meta, "retries", 0):
                    raise
                step_retries += 1
                self.sleep(resource.meta.retry_delay)
        event["warnings"] = list(resource.warnings)

    def _apply(self, resource: Resource, current: Any, changes: List[Any], event: Event
               ) -> None:
        if self.journal is None:
            resource.apply(self.system, changes)
            return
        self.journal.begin(event, resource, current, changes)
        try:
            resource.apply(self.system, changes)
        finally:
            self.journal.applied(event)

    def _notify(self, steps: Dict[str, Step], action: str, target: str, by: str) -> Event:
        step = steps[target]
        event = self._step(step, action)
        event["notified_by"] = by
        if step.unselected:
            event["warnings"].append("not selected by --tags/--skip-tags; run because "
                                     "%s notified it" % by)
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
            import traceback

            text += "\n" + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        return text


def _batchable(step: Step) -> bool:
    """Guards are evaluated step by step, so a guarded step is never batched."""
    return (step.only_if is None and step.not_if is None and step.action != "nothing"
            and not step.unselected and not step.skip)


def summarize(events: List[Event]) -> Dict[str, int]:
    """Counts by status, for the recap and the JSON report."""
    counts = {"total": 0, "updated": 0, "up_to_date": 0, "skipped": 0, "failed": 0,
              "ignored": 0}
    for event in events:
        counts["total"] += 1
        status = event["status"]
        counts["ignored" if status == "failed" and event.get("ignored") else status] += 1
    return counts
