"""How soon an execute resource gives up after its timeout, children killed.

    python3 benchmarks/execute_bench.py [--runs N]

Runs `execute("sleep 30 & sleep 30", shell=True, timeout=0.3)` under a temporary
root N times and prints the resource's time (median, min-max): the timeout, the
kill of its process group and the readers' end. Target on a 2-core machine: under
1 s over the timeout (the functional test, tests/resources/test_execute.py, checks
that the command and its children are killed, not how fast).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from converge.agent.engine import Engine
from converge.agent.system import System
from converge.recipe import compile_recipe

TIMEOUT = 0.3
TARGET = TIMEOUT + 1.0
RECIPE = ('from converge import execute\n'
          'execute("sleep 30 & sleep 30", shell=True, cwd="/", timeout=%s)\n' % TIMEOUT)
FACTS = {"hostname": "bench", "os": "linux", "platform": "debian",
         "platform_family": "debian", "init": "sysvinit"}


def once(work: Path) -> float:
    recipe = work / "recipe.py"
    recipe.write_text(RECIPE)
    plan = compile_recipe(recipe, facts=lambda: FACTS)
    [event] = Engine(System(str(work / "root"), cwd="/")).run(plan)
    assert event["status"] == "failed" and "timed out" in event["error"], event
    return float(event["time"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "root").mkdir()
        for _ in range(runs):
            times.append(once(work))
    median = statistics.median(times)
    print("execute timeout=%ss gives up in %.2fs median (%.2f-%.2f, %d runs); target < %.1fs: %s"
          % (TIMEOUT, median, min(times), max(times), runs, TARGET,
             "met" if median < TARGET else "missed"))
    sys.exit(0 if median < TARGET else 1)


if __name__ == "__main__":
    main()
