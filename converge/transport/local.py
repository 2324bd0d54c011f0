"""Run the agent in this process, on this machine (or under a root directory)."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

from ..agent.engine import Engine, Event
from ..agent.facts import gather
from ..agent.system import System
from ..plan import Plan


class LocalTransport:
    """The agent, in-process. ``root`` converges a directory tree instead of /."""

    def __init__(self, root: str = "/", host: str = "localhost", debug: bool = False) -> None:
        self.host = host
        self.system = System(root)
        self.debug = debug

    def facts(self) -> Dict[str, Any]:
        return gather(self.system)

    def run(self, plan: Plan, *, mode: str = "apply", fail_fast: bool = False,
            emit: Optional[Callable[[Event], None]] = None) -> List[Event]:
        engine = Engine(self.system, mode=mode, fail_fast=fail_fast, emit=emit,
                        debug=self.debug)
        return engine.run(plan)
