"""One converge run across its targets: compile the recipe for each host, send the
plan through the host's transport, collect events into the report.

Hosts run in parallel, at most ``forks`` at a time. One host failing (unreachable,
credentials refused, no python3, the agent breaking, the connection dropping)
never stops the others: it is recorded in its report entry (``error``, and
``unreachable`` when no connection could be made). A compile error, though,
stops everything before any host is changed.

The CLI is a thin layer over :func:`run`; tests call it directly with fake or
local transports.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from .agent.engine import Event
from .errors import AuthError, ConnectError, ConvergeError, HostKeyError, TransportError
from .forks import default_forks
from .plan import Plan
from .recipe import Attrs, compile_recipe
from .report import host_report, json_report
from .transport import Transport

#: what is done on each host: work(transport, emit) -> its events
Work = Callable[[Transport, Callable[[Event], None]], List[Event]]


class Outcome:
    """What a run did: the JSON-able report and whether it changed or failed."""

    def __init__(self, report: Dict[str, Any], events: Dict[str, List[Event]]) -> None:
        self.report = report
        self.events = events

    @property
    def summary(self) -> Dict[str, Any]:
        return dict(self.report["summary"])

    @property
    def changed(self) -> bool:
        return bool(self.summary["updated"] > 0)

    @property
    def failed(self) -> bool:
        return bool(self.summary["failed"] > 0 or self.summary["failed_hosts"] > 0)


def unreachable(exc: BaseException) -> bool:
    """No connection could be made (as opposed to failing once connected)."""
    default = isinstance(exc, (ConnectError, AuthError, HostKeyError))
    return bool(getattr(exc, "unreachable", default))


def run(
    recipe: Union[str, Path],
    transports: Sequence[Transport],
    *,
    mode: str = "apply",
    attrs: Optional[Dict[str, Any]] = None,
    host_vars: Optional[Dict[str, Dict[str, Any]]] = None,
    cookbook_path: Sequence[Union[str, Path]] = (),
    fail_fast: bool = False,
    on_event: Optional[Callable[[str, Event], None]] = None,
    remote: bool = False,
    forks: Optional[int] = None,
    on_host: Optional[Callable[[str, Dict[str, Any]], None]] = None,
    recorder: Optional[Any] = None,
    tags: Sequence[str] = (),
    skip_tags: Sequence[str] = (),
    serial: Optional[str] = None,
    max_fail: Optional[str] = None,
    on_batch: Optional[Callable[[int, int, List[str]], None]] = None,
    profile: bool = False,
) -> Outcome:
    """Compile and converge ``recipe`` on every transport's host, ``forks`` at a time.

    ``serial`` ("5", "25%", "1,5,25%") runs the hosts in batches, in order, each
    finished before the next starts; ``max_fail`` ("2", "10%") aborts the run when
    more hosts than that have failed or were unreachable: later batches never start.
    A ``run_once`` step runs on the first host of each batch only. ``profile``
    adds to each host's report entry where its time went (see :func:`profile_of`).
    No ``forks``: :func:`default_forks` chooses from the machine and the hosts.

    A compile error for any host is raised before anything runs anywhere (the
    recipe is compiled for every host first), so bad input changes nothing.
    ``on_event(host, event)`` and ``on_host(host, report_entry)`` are called from
    one thread at a time.
    """
    forks = _forks(forks, len(transports))
    started = time.monotonic()
    # The first ``forks`` hosts connect and start their agent while the recipe
    # compiles (daemon threads: a compile error does not wait for a slow host).
    for transport in transports[:forks]:
        threading.Thread(target=transport.warm, name="converge-warm-" + transport.host,
                         daemon=True).start()
    try:
        batches = make_batches(transports, serial)
        budget = fail_budget(max_fail, len(transports))
        compiled: Dict[str, float] = {}
        plans, failures = _compile_all(recipe, transports, attrs, host_vars or {},
                                       cookbook_path, remote, forks, tags, skip_tags,
                                       compiled)
    except BaseException:
        for transport in transports:
            transport.close()
        ssh = sys.modules.get(__package__ + ".transport.ssh")
        if ssh is not None:  # no warm thread is left importing paramiko at exit
            ssh.wait_for_imports()
        raise

    failed_compile = {t.host for t, _ in failures}
    for batch in batches:
        _run_once(plans, [t.host for t in batch if t.host not in failed_compile])

    def work(transport: Transport, emit: Callable[[Event], None]) -> List[Event]:
        return list(transport.run(plans[transport.host], mode=mode, fail_fast=fail_fast,
                                  emit=emit))

    return _each_host(transports, work, mode=mode, started=started, forks=forks,
                      failures=failures, on_event=on_event, on_host=on_host,
                      recorder=recorder, batches=batches, budget=budget, on_batch=on_batch,
                      compiled=compiled if profile else None)


def profile_of(transport: Any, events: List[Event], *, started: float, compiled: float,
               first_event: Optional[float], last_event: Optional[float], ended: float
               ) -> Dict[str, Any]:
    """Where one host's time went, in seconds (``--profile``; docs/operations.md):
    connecting (TCP, key exchange, host key), authenticating and starting the agent
    (its exec until its handshake, and the bundle when it was sent) as the SSH
    transport measured them (None for a local run); compiling its plan (0 when it
    shares another host's); ``run``, from the run request to the last resource's
    event, of which ``resources`` is the resources' own time (``slowest``: the five
    slowest); ``report``, from that event to the host's report entry (the agent
    finishing its journal, the recap's entry and the run store's record); ``setup``,
    the part of ``run`` before the first resource began (the agent importing what it
    needs, decoding the plan, taking the run lock, opening its journal; from the
    events' arrival, so at most ``run`` less ``resources``); ``total``,
    from the start of the run to that entry. Connecting overlaps the compile.
    ``agent_cpu``: the CPU seconds the agent (and what it ran) used on the target."""
    measured = dict(getattr(transport, "profile", None) or {})
    begun = measured.get("run_started")
    last = last_event if last_event is not None else ended
    timed = sorted((e for e in events if isinstance(e.get("time"), (int, float))),
                   key=lambda e: -float(e["time"]))
    remote = "connect" in measured
    resources = sum(float(e["time"]) for e in timed)
    setup = None
    if begun is not None and first_event is not None and events:
        setup = first_event - begun - float(events[0].get("time") or 0.0)
        # Arrival times are the controller's: one busy moment can make the first
        # event arrive with later ones, so setup is at most what the resources left.
        setup = min(setup, last - begun - resources)

    def seconds(value: Optional[float]) -> Optional[float]:
        return None if value is None else round(max(0.0, value), 4)

    return {
        "connect": seconds(measured.get("connect")) if remote else None,
        "auth": seconds(measured.get("auth")) if remote else None,
        "agent_start": seconds(measured.get("agent_start")) if remote else None,
        "bundle_sent": bool(measured.get("bundle_sent")) if remote else None,
        "agent_cpu": seconds(measured.get("agent_cpu")) if remote else None,
        "compile": seconds(compiled),
        "run": seconds(last - begun) if begun is not None else None,
        "setup": seconds(setup),
        "resources": seconds(resources),
        "slowest": [{"id": e["id"], "action": e.get("action"), "seconds": seconds(e["time"])}
                    for e in timed[:5]],
        "report": seconds(ended - last),
        "total": seconds(ended - started),
    }


def make_batches(transports: Sequence[Transport], serial: Optional[str]
                 ) -> List[List[Transport]]:
    """The hosts in batches, in inventory order: ``serial`` is a size ("5"), a share
    ("25%"), or a list of them ("1,5,25%") whose last entry repeats."""
    hosts = list(transports)
    if not serial:
        return [hosts] if hosts else []
    sizes = []
    for part in str(serial).split(","):
        sizes.append(_count(part.strip(), len(hosts), "--serial", at_least_one=True))
    batches: List[List[Transport]] = []
    index = 0
    while index < len(hosts):
        size = sizes[min(len(batches), len(sizes) - 1)]
        batches.append(hosts[index:index + size])
        index += size
    return batches


def fail_budget(max_fail: Optional[str], total: int) -> Optional[int]:
    """How many hosts may fail or be unreachable before no further batch starts."""
    if max_fail is None or max_fail == "":
        return None
    return _count(str(max_fail).strip(), total, "--max-fail", at_least_one=False)


def _count(text: str, total: int, option: str, at_least_one: bool) -> int:
    share = text.endswith("%")
    number = text[:-1] if share else text
    if not number.isdigit() or (share and int(number) > 100):
        raise ConvergeError("%s %s: expected a number of hosts such as 5, or a share such "
                            "as 25%%%s" % (option, text, " (a list: 1,5,25%)"
                                           if option == "--serial" else ""))
    value = int(number) * total // 100 if share else int(number)
    if at_least_one:
        if value == 0 and not share:
            raise ConvergeError("%s 0: a batch needs at least one host" % option)
        value = max(1, value)
    return value


def _run_once(plans: Dict[str, Plan], batch: List[str]) -> None:
    """run_once steps run on the batch's first host; the others skip them (each of
    them gets its own copy of a plan that several hosts share)."""
    if not batch or not any(s.run_once for s in plans[batch[0]].steps):
        return
    first = batch[0]
    for host in batch[1:]:
        own = Plan.from_dict(plans[host].to_dict())
        for step in own.steps:
            if step.run_once:
                step.skip = "run_once: runs on %s" % first
        plans[host] = own


def rollback(
    transports: Sequence[Transport],
    run_id: Optional[str] = None,
    *,
    force: bool = False,
    yes: bool = False,
    forks: Optional[int] = None,
    on_event: Optional[Callable[[str, Event], None]] = None,
    on_host: Optional[Callable[[str, Dict[str, Any]], None]] = None,
    recorder: Optional[Any] = None,
) -> Outcome:
    """Roll back ``run_id`` (default: each host's last apply that changed anything)
    on every transport's host, ``forks`` at a time; the report is a run's."""
    forks = _forks(forks, len(transports))

    def work(transport: Transport, emit: Callable[[Event], None]) -> List[Event]:
        return list(transport.rollback(run_id, force=force, yes=yes, emit=emit))

    return _each_host(transports, work, mode="rollback", started=time.monotonic(),
                      forks=forks, failures=[], on_event=on_event, on_host=on_host,
                      recorder=recorder)


def _forks(forks: Optional[int], hosts: int) -> int:
    if forks is None:
        return default_forks(hosts)
    if forks < 1:
        raise ValueError("forks must be 1 or more")
    return forks


def _each_host(
    transports: Sequence[Transport], work: Work,
    *, mode: str, started: float, forks: int, failures: List[Tuple[Transport, TransportError]],
    on_event: Optional[Callable[[str, Event], None]],
    on_host: Optional[Callable[[str, Dict[str, Any]], None]],
    recorder: Optional[Any] = None,
    batches: Optional[List[List[Transport]]] = None,
    budget: Optional[int] = None,
    on_batch: Optional[Callable[[int, int, List[str]], None]] = None,
    compiled: Optional[Dict[str, float]] = None,
) -> Outcome:
    """``work(transport, emit)`` on every host but the ``failures``, ``forks`` at a
    time, batch after batch; one host's failure is recorded in its report entry,
    never raised. A ``recorder`` (converge/store.py) is fed the same events and host
    entries. ``compiled`` (host -> compile seconds): profile each host (profile_of)."""
    if batches is None:
        batches = [list(transports)] if transports else []
    if recorder is None:
        return _batches(transports, work, mode=mode, started=started, forks=forks,
                        failures=failures, on_event=on_event, on_host=on_host,
                        batches=batches, budget=budget, on_batch=on_batch, compiled=compiled)
    recorder.begin()
    shown_event, shown_host = on_event, on_host

    def record_event(host: str, event: Event) -> None:
        recorder.event(host, event)
        if shown_event:
            shown_event(host, event)

    def record_host(host: str, entry: Dict[str, Any]) -> None:
        recorder.host(host, entry)
        if shown_host:
            shown_host(host, entry)

    try:
        outcome = _batches(transports, work, mode=mode, started=started, forks=forks,
                           failures=failures, on_event=record_event, on_host=record_host,
                           batches=batches, budget=budget, on_batch=on_batch,
                           compiled=compiled)
    except BaseException:
        recorder.finish(None, interrupted=True)
        raise
    recorder.finish(outcome.report)
    return outcome


def _batches(
    transports: Sequence[Transport], work: Work,
    *, mode: str, started: float, forks: int, failures: List[Tuple[Transport, TransportError]],
    on_event: Optional[Callable[[str, Event], None]],
    on_host: Optional[Callable[[str, Dict[str, Any]], None]],
    batches: List[List[Transport]], budget: Optional[int],
    on_batch: Optional[Callable[[int, int, List[str]], None]],
    compiled: Optional[Dict[str, float]] = None,
) -> Outcome:
    hosts: Dict[str, Dict[str, Any]] = {}
    all_events: Dict[str, List[Event]] = {}
    aborted = False
    for number, batch in enumerate(batches, 1):
        names = {t.host for t in batch}
        if aborted:
            for transport in batch:
                entry = host_report([], "not started: the run was aborted (--max-fail)")
                entry["not_started"] = True
                hosts[transport.host], all_events[transport.host] = entry, []
                transport.close()
                if on_host:
                    on_host(transport.host, entry)
            continue
        if on_batch and len(batches) > 1:
            on_batch(number, len(batches), [t.host for t in batch])
        _hosts(batch, work, forks=forks, failures=[f for f in failures if f[0].host in names],
               on_event=on_event, on_host=on_host, hosts=hosts, all_events=all_events,
               started=started, compiled=compiled)
        bad = sum(1 for entry in hosts.values() if entry.get("error")
                  or entry["summary"]["failed"])
        if budget is not None and bad > budget and number < len(batches):
            aborted = True
    ordered = {t.host: hosts[t.host] for t in transports}
    report = json_report(ordered, time.monotonic() - started, mode)
    if len(batches) > 1:
        report["summary"]["batches"] = len(batches)
    if aborted:
        report["summary"]["aborted"] = True
        report["summary"]["not_started_hosts"] = sum(
            1 for e in ordered.values() if e.get("not_started"))
    return Outcome(report, all_events)


def _hosts(
    transports: Sequence[Transport], work: Work,
    *, forks: int, failures: List[Tuple[Transport, TransportError]],
    on_event: Optional[Callable[[str, Event], None]],
    on_host: Optional[Callable[[str, Dict[str, Any]], None]],
    hosts: Dict[str, Dict[str, Any]], all_events: Dict[str, List[Event]],
    started: float = 0.0, compiled: Optional[Dict[str, float]] = None,
) -> None:
    lock = threading.Lock()
    first_event: Dict[str, float] = {}  # host -> when its first event arrived
    last_event: Dict[str, float] = {}  # host -> when its last event arrived

    def finish(transport: Transport, events: List[Event], error: Optional[BaseException]) -> None:
        entry = host_report(events, None if error is None else str(error))
        if error is not None and unreachable(error):
            entry["unreachable"] = True
        transport.close()
        with lock:
            hosts[transport.host] = entry
            all_events[transport.host] = events
            if on_host:
                on_host(transport.host, entry)
            if compiled is not None:
                entry["profile"] = profile_of(
                    transport, events, started=started,
                    compiled=compiled.get(transport.host, 0.0),
                    first_event=first_event.get(transport.host),
                    last_event=last_event.get(transport.host), ended=time.monotonic())

    for transport, exc in failures:
        finish(transport, [], exc)

    def converge(transport: Transport) -> None:
        received: List[Event] = []  # what arrived before a failure, for the report

        def emit(event: Event) -> None:
            received.append(event)
            last_event[transport.host] = time.monotonic()
            first_event.setdefault(transport.host, last_event[transport.host])
            if on_event:
                with lock:
                    on_event(transport.host, event)

        events: List[Event] = received
        error: Optional[BaseException] = None
        try:
            events = work(transport, emit)
        except ConvergeError as exc:
            error = exc
        except Exception as exc:  # noqa: BLE001 - one host's bug must not stop the fleet
            if len(transports) == 1:
                raise
            error = TransportError("internal error: %s: %s" % (type(exc).__name__, exc),
                                   host=transport.host)
        finish(transport, events, error)

    failed = {t.host for t, _ in failures}
    todo = [t for t in transports if t.host not in failed]
    if len(todo) <= 1 or forks == 1:
        for transport in todo:
            converge(transport)
    else:
        from concurrent.futures import ThreadPoolExecutor  # (and logging): fleets only

        with ThreadPoolExecutor(max_workers=min(forks, len(todo)),
                                thread_name_prefix="converge-host") as pool:
            for future in [pool.submit(converge, t) for t in todo]:
                future.result()


def _compile_all(
    recipe: Union[str, Path], transports: Sequence[Transport], attrs: Optional[Dict[str, Any]],
    host_vars: Dict[str, Dict[str, Any]], cookbook_path: Sequence[Union[str, Path]],
    remote: bool, forks: int, tags: Sequence[str] = (), skip_tags: Sequence[str] = (),
    compiled: Optional[Dict[str, float]] = None,
) -> Tuple[Dict[str, Plan], List[Tuple[Transport, TransportError]]]:
    """The plan of every host. A recipe that reads no facts is compiled once per
    distinct set of host vars; one that does is compiled on ``forks`` threads, since
    facts come from the hosts. A host whose facts cannot be gathered is a failure
    of that host; any other compile error is raised. ``compiled`` gets each host's
    compile seconds (0 for a host that shares another's plan)."""
    cache: Dict[str, Plan] = {}
    cache_lock = threading.Lock()

    def compile_one(transport: Transport) -> Plan:
        own = dict(host_vars.get(transport.host, {}))
        key = json.dumps(own, sort_keys=True, default=repr)
        with cache_lock:
            if key in cache:
                return cache[key]
        layered = Attrs(own)
        layered.merge(attrs or {})
        plan = compile_recipe(recipe, attrs=layered, facts=transport.facts,
                              cookbook_path=cookbook_path, host=transport.host, remote=remote,
                              tags=tags, skip_tags=skip_tags)
        if not plan.options.get("facts_used"):
            with cache_lock:
                cache.setdefault(key, plan)
        return plan

    plans: Dict[str, Plan] = {}
    failures: List[Tuple[Transport, TransportError]] = []
    errors: List[Optional[ConvergeError]] = [None] * len(transports)

    def attempt(index: int) -> None:
        transport = transports[index]
        began = time.monotonic()
        try:
            plans[transport.host] = compile_one(transport)
            if compiled is not None:
                compiled[transport.host] = time.monotonic() - began
        except TransportError as exc:
            failures.append((transport, exc))
        except ConvergeError as exc:
            errors[index] = exc

    if transports:
        attempt(0)
        if errors[0] is not None:
            raise errors[0]
        first = plans.get(transports[0].host)
        rest = range(1, len(transports))
        if first is not None and not first.options.get("facts_used") or forks == 1:
            for index in rest:
                attempt(index)
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=max(1, min(forks, len(transports))),
                                    thread_name_prefix="converge-compile") as pool:
                list(pool.map(attempt, rest))
    for error in errors:
        if error is not None:
            raise error
    return plans, failures
