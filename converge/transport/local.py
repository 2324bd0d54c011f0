"""Run the agent in this process, on this machine (or under a root directory)."""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional

from ..agent import runs
from ..agent.engine import Event
from ..agent.facts import gather
from ..agent.journal import DEFAULT_KEEP
from ..agent.lock import DEFAULT_TIMEOUT
from ..agent.system import System
from ..plan import Plan


class LocalTransport:
    """The agent, in-process. ``root`` converges a directory tree instead of /.

    ``keep_runs`` and ``lock_timeout`` go to the run journal and the run lock;
    ``on_notice(text)`` hears what the agent says besides events (waiting for the
    lock, which run a rollback restores)."""

    def __init__(self, root: str = "/", host: str = "localhost", debug: bool = False, *,
                 keep_runs: int = DEFAULT_KEEP, lock_timeout: float = DEFAULT_TIMEOUT,
                 on_notice: Optional[Callable[[str], None]] = None) -> None:
        self.host = host
        self.system = System(root)
        self.debug = debug
        self.keep_runs = keep_runs
        self.lock_timeout = lock_timeout
        self.on_notice = on_notice
        self.profile: Dict[str, Any] = {"run_started": None}  # see runner.py (--profile)

    def _options(self, fail_fast: bool = False,
                 emit: Optional[Callable[[Event], None]] = None) -> runs.Options:
        return runs.Options(fail_fast=fail_fast, debug=self.debug, keep_runs=self.keep_runs,
                            lock_timeout=self.lock_timeout, emit=emit, notice=self.on_notice)

    def facts(self) -> Dict[str, Any]:
        return gather(self.system)

    def warm(self) -> None:
        """Nothing to get ready: the agent runs in this process."""

    def close(self) -> None:
        """Nothing to let go of."""

    def run(self, plan: Plan, *, mode: str = "apply", fail_fast: bool = False,
            emit: Optional[Callable[[Event], None]] = None) -> List[Event]:
        self.profile["run_started"] = time.monotonic()
        return runs.apply_plan(self.system, plan, mode, self._options(fail_fast, emit))

    def history(self) -> List[Dict[str, Any]]:
        return runs.history(self.system)

    def preview_rollback(self, run_id: Optional[str] = None) -> Dict[str, Any]:
        return runs.preview(self.system, run_id)

    def rollback(self, run_id: Optional[str] = None, *, force: bool = False, yes: bool = False,
                 emit: Optional[Callable[[Event], None]] = None) -> List[Event]:
        return runs.rollback(self.system, run_id, force=force, yes=yes,
                             options=self._options(False, emit))
