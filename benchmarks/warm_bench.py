"""W1 no-op pushed to lab nodes, cold and warm (issue 24 item 1: warm connections).

    python3 benchmarks/warm_bench.py [--nodes 1] [--reps 5]      (root; lab nodes)

Brings up fresh nodes (a lab of its own, under benchmarks/.peers/), reads the lab
repository's package list on each (untimed), pushes W1 once (the first run), then
alternates, ``--reps`` times:

- **cold**: `converge disconnect` (untimed), then the no-op `converge apply`: the
  broker starts, connects, authenticates and relays, as the first run in a while
  does;
- **warm**: the same no-op `converge apply` right after: the connection is reused
  (no key exchange, no authentication; paramiko is not even imported by the run);
- **direct**: the same with `--no-persist` (no broker: the run connects itself, as
  converge did before warm connections).

converge runs from the virtual environment run.py makes (its dependencies only,
this checkout on PYTHONPATH). Each figure is the wall time of the whole
`converge apply` process, start-up
included, as a user sees it: median (min-max), with the median CPU seconds of
that process (user + system, from wait4: the broker's and the nodes' are not in
it; a figure that a loaded machine inflates less than wall time). The paramiko floor (connect,
authenticate, `python3 -c pass`, in this process) is printed beside it. Target:
warm at most 0.15 s at one node; cold within 1.2x of the floor.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

from run import (  # noqa: E402
    CONVERGE_PY,
    CONVERGE_VENV,
    BenchError,
    build_package,
    converge_requirements,
    floor,
    fresh_nodes,
    host_env,
    setup_venv,
    verify,
)

from converge.lab import Lab, Node  # noqa: E402

LAB_DIR = HERE / ".peers" / "warm-lab"
SSH_DIR = HERE / ".peers" / "warm-ssh"  # this benchmark's broker, not the user's
RECIPE = HERE / "workloads" / "w1" / "converge_recipe.py"


CPU: Dict[str, List[float]] = {}  # the controller's CPU seconds, by what was run


def converge(lab: Lab, nodes: List[Node], *args: str, label: str = "") -> float:
    """One `converge ...` against the nodes; its wall seconds (its CPU seconds, from
    wait4, go to CPU[label])."""
    env = host_env(PYTHONPATH=str(REPO), CONVERGE_SSH_DIR=str(SSH_DIR))
    env.pop("CONVERGE_SSH_PERSIST", None)  # the users' default: on, 60 s
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # bytecode as an installed package has it
    argv = [str(CONVERGE_PY), "-m", "converge", *args]
    if args[0] == "apply":
        argv += [str(RECIPE), "-i", str(lab.inventory_path()), "--forks", str(len(nodes)),
                 "--detailed-exitcode"]
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=env, cwd=str(HERE))
    assert proc.stdout is not None
    output = proc.stdout.read().decode("utf-8", "replace")
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stdout.close()
    if label:
        CPU.setdefault(label, []).append(usage.ru_utime + usage.ru_stime)
    done = subprocess.CompletedProcess(argv, proc.returncode, output, "")
    if done.returncode not in (0, 2) or (args[0] == "apply" and len(args) > 1
                                         and done.returncode != 0):
        raise BenchError("converge %s: exit %d\n%s%s" % (" ".join(args), done.returncode,
                                                         done.stdout[-2000:], done.stderr))
    return seconds


def cell(samples: List[float]) -> str:
    return "%.3f s (%.3f-%.3f)" % (statistics.median(samples), min(samples), max(samples))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("benchmarks/warm_bench.py needs root (lab nodes)", file=sys.stderr)
        return 1
    os.environ["CONVERGE_SSH_DIR"] = str(SSH_DIR)  # lab.down() closes what it kept
    # converge's dependencies in a virtual environment, as run.py runs it (this
    # interpreter's site-packages may hold start-up hooks a user's would not); bytecode
    # as an installed package has it (without it every run compiles its modules)
    setup_venv(CONVERGE_VENV, converge_requirements())
    subprocess.run([str(CONVERGE_PY), "-m", "compileall", "-q", str(REPO / "converge")],
                   check=True)
    lab = Lab(LAB_DIR)
    if lab.nodes():
        lab.down()
    build_package(lab)
    nodes = fresh_nodes(lab, args.nodes, [])
    times: Dict[str, List[float]] = {"floor": [], "cold": [], "warm": [], "direct": []}
    try:
        first = converge(lab, nodes, "apply")
        verify("w1", nodes[0], "converge")
        for _ in range(args.reps):
            times["floor"].append(floor(lab, nodes))
            converge(lab, nodes, "disconnect")
            times["cold"].append(converge(lab, nodes, "apply", "--persist", "60s",
                                          label="cold"))
            times["warm"].append(converge(lab, nodes, "apply", "--persist", "60s",
                                          label="warm"))
            times["direct"].append(converge(lab, nodes, "apply", "--no-persist",
                                            label="direct"))
        converge(lab, nodes, "disconnect")
    except BenchError as exc:
        print("FAILED: %s" % exc, file=sys.stderr)
        return 1
    finally:
        lab.down()
    print("W1 pushed to %d node(s), %d reps, %d CPUs, load %.1f" % (
        args.nodes, args.reps, os.cpu_count() or 0, os.getloadavg()[0]))
    print("  first run              %.3f s" % first)
    print("  floor (paramiko)       %s" % cell(times["floor"]))
    for name, what in (("cold", "no-op, cold (broker starts, connects)"),
                       ("warm", "no-op, warm (connection reused)"),
                       ("direct", "no-op, --no-persist (no broker)")):
        ratio = statistics.median(times[name]) / statistics.median(times["floor"])
        print("  %-38s %s  %.2fx floor; controller CPU %.3f s" % (
            what, cell(times[name]), ratio, statistics.median(CPU[name])))
    warm = statistics.median(times["warm"])
    print("  target: warm <= 0.15 s at one node: %.3f s %s"
          % (warm, "met" if warm <= 0.15 else "NOT met"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
