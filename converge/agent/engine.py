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

Composites (converge/resources/_composite.py): a step marked ``composite`` is
followed by its inner steps (``parent``: its id). Its guards are evaluated once;
when they skip it, none of its inner steps run. Otherwise the inner steps run as
any others (each event with ``parent``), then the composite's own event:
``failed`` when an inner one failed, ``updated`` when one was, else up to date;
its notifications fire as any resource's. A group marked ``on_notify`` runs only
when that action of that composite is notified (the events it sets off in turn
are run too). A notification's target is looked up from the notifier outwards:
its own composite's inner steps first, then the recipe's.

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
        self._plan = _Layout(plan.steps)
        self._events = events
        self._delayed: List[Tuple[str, str, str, int]] = []
        self._stopped = False
        self._open: List[str] = []  # the composites whose inner steps are running
        self._span(0, len(plan.steps), None)
        index = 0
        while not self._stopped and index < len(self._delayed):  # a notified group may add
            action, target, by, where = self._delayed[index]
            self._notify(action, target, by, where)
            index += 1
        self._flush()  # what is still pending: at the end, also after a fail-fast stop

    def _span(self, start: int, stop: int, parent: Optional[str]) -> List[Event]:
        """Converge the steps from ``start`` to ``stop`` (a whole plan, or the inner
        steps of a composite, ``parent``): the events of the steps at this level."""
        steps = self._plan.steps
        level: List[Event] = []
        batched: Dict[int, Event] = {}
        index = start
        while index < stop and not self._stopped:
            step = steps[index]
            if step.unselected or (step.on_notify and parent is None):
                index = self._plan.end[index]  # runs only when notified
                continue
            if step.composite:
                event = self._group(index, parent)
                level.append(event)
                index = self._plan.end[index]
                continue
            try:
                if index not in batched:
                    if step.action != "nothing" and not step.skip:
                        self._flush(step.type, step.action)
                    batched = self._batch(steps, index, stop)
                event = batched.pop(index) if index in batched else self._step(step)
            except Interrupted as exc:
                if exc.event is not None:
                    if parent is not None:
                        exc.event["parent"] = parent
                    self._record(self._events, exc.event)
                raise
            if parent is not None:
                event["parent"] = parent
            self._finish(step, index, event)
            level.append(event)
            index += 1
        return level

    def _group(self, index: int, parent: Optional[str], notified_by: Optional[str] = None
               ) -> Event:
        """A composite: its guards once, then its inner steps; its event (after theirs)
        is failed when one failed, updated when one was, else up to date."""
        step = self._plan.steps[index]
        event: Event = {
            "id": step.id, "type": step.type, "action": step.action, "status": "up_to_date",
            "changes": [], "diffs": [], "error": None, "warnings": [], "source": step.source,
            "composite": True,
        }
        started = time.monotonic()
        try:
            skip = self._skip_reason(step, step.action)
        except Exception as exc:  # noqa: BLE001 - a guard that cannot run fails the group
            skip = None
            event["status"], event["error"] = "failed", self._describe(exc)
        if skip:
            event["status"], event["skip_reason"] = "skipped", skip
        elif event["status"] != "failed":
            self._open.append(step.id)
            try:
                inner = self._span(index + 1, self._plan.end[index], step.id)
            finally:
                self._open.pop()
            failed = [e["id"] for e in inner if e["status"] == "failed" and not e.get("ignored")]
            if failed:
                event["status"] = "failed"
                event["error"] = "%s failed" % ", ".join(failed)
            elif any(e["status"] == "updated" for e in inner):
                event["status"] = "updated"
        if event["status"] == "failed" and step.ignore_failure:
            event["ignored"] = True
        event["time"] = round(time.monotonic() - started, 4)
        if parent is not None:
            event["parent"] = parent
        if notified_by is not None:
            event["notified_by"] = notified_by
        self._finish(step, index, event)
        return event

    def _finish(self, step: Step, index: int, event: Event) -> None:
        """Record an event, then what it sets off: its notifications when it
        updated, the end of the run when it failed under fail_fast."""
        self._record(self._events, event)
        if event["status"] == "updated":
            for action, target, timing in step.notifies:
                if timing == "immediately":
                    self._notify(action, target, step.id, index)
                elif self._meant(action, target, index) not in [
                        self._meant(a, t, w) for a, t, _, w in self._delayed]:
                    self._delayed.append((action, target, step.id, index))
        if event["status"] == "failed" and self.fail_fast and not step.ignore_failure:
            self._stopped = True

    def _leave(self, step: Step, resource: Resource, current: Any, changes: List[Any]) -> None:
        """Keep the work this resource's changes leave for later (one of each)."""
        for work in resource.leaves(self.system, current, changes):
            key = work.resource.identity
            if key not in self.pending:
                work.resource.meta.source = work.resource.meta.source or step.source
                self.pending[key] = (work, [])
            self.pending[key][1].append(step.id)

    def _flush(self, type_name: Optional[str] = None, action: str = "") -> None:
        """Converge the pending work a step of this type and action needs (all of
        it when no type is given: the end of the run), each as its own event."""
        for key in list(self.pending):
            work, by = self.pending[key]
            if type_name is not None and not work.needed_by(type_name, action):
                continue
            del self.pending[key]
            event = self._step(Step.from_resource(work.resource), resource=work.resource)
            event["notified_by"] = ", ".join(by)
            self._record(self._events, event)

    def _record(self, events: List[Event], event: Event) -> None:
        events.append(event)
        if self.journal is not None:
            self.journal.event(event)
        self.emit(event)

    def _batch(self, steps: List[Step], start: int, stop: int) -> Dict[int, Event]:
        """The batching hook (see the module docstring): the events of the run of
        steps from ``start``, by index, converged together; {} when the type does
        not batch or its prefetch failed (each step then converges alone)."""
        cls = REGISTRY.get(steps[start].type)
        prefetch = getattr(cls, "prefetch", None)
        if cls is None or prefetch is None:
            return {}
        indexes: List[int] = []
        while (start + len(indexes) < stop
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

    def _meant(self, action: str, target: str, where: int) -> Tuple[str, Any]:
        """What a notification from the step at ``where`` runs: one delayed run of
        each, though a composite's resource and the recipe's may share a name."""
        if (target, action) in self._plan.groups:
            return action, target
        return action, self._plan.find(target, where)

    def _notify(self, action: str, target: str, by: str, where: int) -> None:
        """Run ``action`` of ``target`` as the step at ``where`` asked: a composite's
        group expanded for that action, or the resource the name means from there
        (its own composite's inner resources first, then those around it)."""
        group = self._plan.groups.get((target, action))
        if group is not None:
            parent = self._plan.steps[group].parent
            self._group(group, parent if parent in self._open else None, notified_by=by)
            return
        index = self._plan.find(target, where)
        step = self._plan.steps[index]
        self._flush(step.type, action)
        event = self._step(step, action)
        event["notified_by"] = by
        if step.parent is not None and step.parent in self._open:
            event["parent"] = step.parent  # an immediate notification within its composite
        if step.unselected:
            event["warnings"].append("not selected by --tags/--skip-tags; run because "
                                     "%s notified it" % by)
        self._record(self._events, event)

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
            and not step.unselected and not step.skip and not step.composite
            and not step.on_notify)


class _Layout:
    """Where each step sits among the composites of a plan: ``end[i]`` is the index
    after step i and, for a composite, after its inner steps; ``groups`` the
    composites' groups that run when notified, by (composite id, action)."""

    def __init__(self, steps: List[Step]) -> None:
        self.steps = steps
        self.end = [i + 1 for i in range(len(steps))]
        self.headers: List[Optional[int]] = [None] * len(steps)
        self.groups: Dict[Tuple[str, str], int] = {}
        open_: List[int] = []
        for index, step in enumerate(steps):
            while open_ and step.parent != steps[open_[-1]].id:
                open_.pop()
            self.headers[index] = open_[-1] if open_ else None
            for header in open_:
                self.end[header] = index + 1
            if step.composite:
                open_.append(index)
                if step.on_notify and step.on_notify[1] == step.id:
                    self.groups.setdefault((step.id, step.on_notify[0]), index)

    def find(self, target: str, where: int) -> int:
        """The step a notification from the step at ``where`` names: in the same
        composite action first, then around it, then among the recipe's own."""
        scope = self.headers[where]
        while True:
            start = 0 if scope is None else scope + 1
            stop = len(self.steps) if scope is None else self.end[scope]
            found = None
            index = start
            while index < stop:
                step = self.steps[index]
                if step.id == target and not step.composite and (scope is not None
                                                                 or not step.on_notify):
                    found = index  # the last one, as a plan of service's two actions
                index = self.end[index] if step.composite else index + 1
            if found is not None or scope is None:
                if found is None:
                    raise KeyError("no step %s in the plan" % target)
                return found
            scope = self.headers[scope]


def summarize(events: List[Event]) -> Dict[str, int]:
    """Counts by status, for the recap and the JSON report."""
    counts = {"total": 0, "updated": 0, "up_to_date": 0, "skipped": 0, "failed": 0,
              "ignored": 0}
    for event in events:
        counts["total"] += 1
        status = event["status"]
        counts["ignored" if status == "failed" and event.get("ignored") else status] += 1
    return counts
