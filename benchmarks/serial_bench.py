"""Rolling batches: a push to 30 lab nodes with --serial 10 against one batch of 10.

    python3 benchmarks/serial_bench.py         (root; brings 30 lab nodes up and down)

The workload is ssh_bench.py's 30-resource recipe. For each: the first run (agent
shipped, everything changed) and the no-op run, timed in-process from compile to
the last host's recap, best of 3. Target (the fleet-operations issue): 30 nodes in
batches of 10 cost at most 3.3x one batch of 10, and the report has the same shape
with and without batches.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from ssh_bench import FORKS, RECIPE, hosts_for  # beside this script

from converge.lab import Lab
from converge.runner import run
from converge.transport.ssh import SSHTransport

REPS = 3


def push(recipe: Path, hosts: list, serial: str | None) -> tuple[float, dict]:
    started = time.perf_counter()
    outcome = run(recipe, [SSHTransport(h) for h in hosts], remote=True, forks=FORKS,
                  serial=serial)
    assert not outcome.failed, outcome.report["summary"]
    return time.perf_counter() - started, outcome.report


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="converge-serial-bench-") as work:
        lab = Lab(Path(work) / "lab")
        lab.check_host()
        nodes = lab.up(30)
        try:
            recipe = Path(work) / "recipe.py"
            recipe.write_text(RECIPE)
            ten, thirty = hosts_for(lab, nodes[:10], 10), hosts_for(lab, nodes, 30)
            figures = {}
            for label, hosts, serial in (("one batch of 10", ten, None),
                                         ("30 in batches of 10", thirty, "10")):
                first, report = push(recipe, hosts, serial)
                noop = min(push(recipe, hosts, serial)[0] for _ in range(REPS))
                figures[label] = (first, noop, report)
                print("%-22s first %6.2f s   no-op %6.2f s" % (label, first, noop))
            (a_first, a_noop, a_report), (b_first, b_noop, b_report) = figures.values()
            print("ratio, 30 in batches of 10 / one batch of 10: first %.2fx, no-op %.2fx "
                  "(target at most 3.3x)" % (b_first / a_first, b_noop / a_noop))
            same = (set(a_report) == set(b_report)
                    and set(a_report["summary"]) <= set(b_report["summary"])
                    and set(b_report["summary"]) - set(a_report["summary"]) == {"batches"})
            print("report shape: %s" % ("the same (plus summary.batches)" if same
                                        else "DIFFERENT"))
        finally:
            lab.down()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
