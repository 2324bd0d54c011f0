"""One converge run across its targets: compile the recipe for each host, send the
plan through the host's transport, collect events into the report.

The CLI is a thin layer over :func:`run`; tests call it directly with fake or
local transports.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

from .agent.engine import Event
from .errors import ConvergeError
from .recipe import Attrs, compile_recipe
from .report import host_report, json_report


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
        return self.summary["updated"] > 0

    @property
    def failed(self) -> bool:
        return self.summary["failed"] > 0 or self.summary["failed_hosts"] > 0


def run(
    recipe: Union[str, Path],
    transports: Sequence[Any],
    *,
    mode: str = "apply",
    attrs: Optional[Dict[str, Any]] = None,
    host_vars: Optional[Dict[str, Dict[str, Any]]] = None,
    cookbook_path: Sequence[Union[str, Path]] = (),
    fail_fast: bool = False,
    on_event: Optional[Callable[[str, Event], None]] = None,
    remote: bool = False,
) -> Outcome:
    """Compile and converge ``recipe`` on every transport's host, one after another.

    A compile error for any host is raised before anything runs anywhere (the
    recipe is compiled for every host first), so bad input changes nothing.
    """
    started = time.monotonic()
    plans = []
    for transport in transports:
        layered = Attrs(dict((host_vars or {}).get(transport.host, {})))
        layered.merge(attrs or {})
        plans.append(compile_recipe(recipe, attrs=layered, facts=transport.facts,
                                    cookbook_path=cookbook_path, host=transport.host,
                                    remote=remote))
    hosts: Dict[str, Dict[str, Any]] = {}
    all_events: Dict[str, List[Event]] = {}
    for transport, plan in zip(transports, plans, strict=True):
        emit = (lambda e, h=transport.host: on_event(h, e)) if on_event else None
        error = None
        try:
            events = transport.run(plan, mode=mode, fail_fast=fail_fast, emit=emit)
        except ConvergeError as exc:
            events, error = [], str(exc)
        hosts[transport.host] = host_report(events, error)
        all_events[transport.host] = events
    return Outcome(json_report(hosts, time.monotonic() - started, mode), all_events)
