"""One run on the target, the same locally and over SSH: the run lock, the journal
and the engine together.

:func:`apply_plan` converges a plan (apply: under the lock, journaled; plan mode:
neither), :func:`rollback` restores what a journaled run changed, as a run of its
own (kind ``rollback``), and :func:`history` lists the journal. The transports
call these; nothing here prints. Standard library only, Python 3.8.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence

from ..plan import Plan, secret_files
from . import journal as jn
from .engine import Engine, Event, summarize
from .interrupt import Interrupted, signals
from .lock import DEFAULT_TIMEOUT, RunLock

Notice = Optional[Callable[[str], None]]


class Options:
    """How a run behaves on the target (the CLI's options, sent with the request)."""

    def __init__(self, *, fail_fast: bool = False, debug: bool = False,
                 keep_runs: int = jn.DEFAULT_KEEP, lock_timeout: float = DEFAULT_TIMEOUT,
                 emit: Optional[Callable[[Event], None]] = None, notice: Notice = None
                 ) -> None:
        self.fail_fast, self.debug = fail_fast, debug
        self.keep_runs, self.lock_timeout = int(keep_runs), float(lock_timeout)
        self.emit = emit or (lambda event: None)
        self.notice = notice or (lambda text: None)

    @classmethod
    def from_request(cls, request: Dict[str, Any], emit: Callable[[Event], None],
                     notice: Notice) -> "Options":
        return cls(fail_fast=bool(request.get("fail_fast")), debug=bool(request.get("debug")),
                   keep_runs=int(request.get("keep_runs") or jn.DEFAULT_KEEP),
                   lock_timeout=float(request.get("lock_timeout", DEFAULT_TIMEOUT)),
                   emit=emit, notice=notice)


def _engine(system: Any, mode: str, options: Options, journal: Any = None) -> Engine:
    return Engine(system, mode=mode, fail_fast=options.fail_fast, emit=options.emit,
                  debug=options.debug, journal=journal)


def _journaled(engine: Engine, journal: jn.Journal, plan: Plan, before: Sequence[Event] = ()
               ) -> List[Event]:
    """Run the engine, then finish the journal, whatever happened."""
    events: List[Event] = list(before)
    interrupted = True
    try:
        with signals():
            events += engine.run(plan)
        interrupted = False
    except Interrupted as exc:
        events += getattr(engine, "events", [])
        exc.run_id = journal.id
        raise
    finally:
        journal.finish(summarize(events), interrupted=interrupted)
    return events


def apply_plan(system: Any, plan: Plan, mode: str = "apply",
               options: Optional[Options] = None) -> List[Event]:
    """Converge a plan: in apply mode under the run lock, journaled."""
    from .extensions import install

    options = options or Options()
    install(plan.options.get("extensions"))
    if mode != "apply":
        return _engine(system, mode, options).run(plan)
    with RunLock(system, options.lock_timeout, options.notice):
        journal = jn.Journal(system, kind="apply", recipe=plan.recipe,
                             recipe_hash=plan.digest(), keep=options.keep_runs,
                             extensions=plan.options.get("extensions"))
        # what a rollback of this run must not show the diffs of
        journal.data["secret_files"] = secret_files(plan.steps)
        return _journaled(_engine(system, mode, options, journal), journal, plan)


def rollback(system: Any, run_id: Optional[str] = None, *, force: bool = False,
             yes: bool = False, options: Optional[Options] = None) -> List[Event]:
    """Restore what run ``run_id`` (default: the last apply that changed anything)
    changed. Refused (RunError, nothing changed) when a file changed since that run
    and not ``force``, or when it would remove packages and not ``yes``."""
    from . import rollback as rb
    from .extensions import install

    options = options or Options()
    with RunLock(system, options.lock_timeout, options.notice):
        run = jn.load(system, run_id) if run_id else jn.last_changed(system)
        install(run.get("extensions"))
        restore = rb.build(system, run)
        if not force:
            rb.refuse_conflicts(restore)
        if not yes:
            rb.refuse_removals(restore)
        options.notice("rolling back run %s (%s of %s, started %s)" % (
            run["id"], run.get("kind"), run.get("recipe") or "?", run.get("started")))
        journal = jn.Journal(system, kind="rollback", of=run["id"], recipe=run.get("recipe", ""),
                             keep=options.keep_runs)
        journal.data["secret_files"] = restore.secret_files
        for event in restore.skipped:
            journal.event(event)
            options.emit(event)
        return _journaled(_engine(system, "apply", options, journal), journal, restore.plan,
                          restore.skipped)


def preview(system: Any, run_id: Optional[str] = None) -> Dict[str, Any]:
    """What a rollback would do, without the lock and without changing anything:
    the run, the packages it would remove, the files changed since."""
    from . import rollback as rb
    from .extensions import install

    run = jn.load(system, run_id) if run_id else jn.last_changed(system)
    install(run.get("extensions"))
    return rb.build(system, run).preview()


def history(system: Any) -> List[Dict[str, Any]]:
    return jn.history(system)
