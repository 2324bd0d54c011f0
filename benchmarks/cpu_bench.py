"""CPU seconds per host of a no-op W1 push: the controller, sshd and the agent.

    python3 benchmarks/cpu_bench.py [--nodes 10] [--reps 5] [--compare OLD_CHECKOUT]
                                                                (root; lab nodes)

Brings up lab nodes (a lab of its own, under benchmarks/.peers/), reads the lab
repository's package list on each (untimed), pushes W1 once (the first run), then
measures ``--reps`` no-op pushes of W1 to every node at once (``--forks`` = nodes),
each connecting afresh (CONVERGE_SSH_PERSIST=no: cold; benchmarks/warm_bench.py
measures warm runs).

For each no-op push, CPU comes from the kernel's accounting, not from timers:

- the controller: ``converge apply`` as a child process, its user + system time
  from ``wait4`` (threads and all);
- each node: the user + system time of the node's PID 1 (its sshd listener) and of
  every descendant it has reaped (``cutime``/``cstime`` in /proc/PID/stat): the
  sshd session processes, the shell, the agent and whatever it ran (dpkg-query...).
  The harness reads it before the push, and after it once the node has no process
  left but its listener (every descendant reaped, so counted).

It prints the floor beside it: the same accounting for ``--reps`` rounds of
parallel paramiko connections running ``python3 -c pass`` (run.py's floor, in this
process, so its controller CPU is this process's own, from getrusage). Per-host
figures are the totals divided by the node count: median (min-max) over the reps.
The machine's CPUs are shared: compare figures from one session only; ``--compare``
measures another checkout (``git archive COMMIT | tar -x -C DIR``) in turn with this
one, on the same nodes, so both see the same load.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

from run import BenchError, build_package, floor, fresh_nodes, host_env, verify  # noqa: E402

from converge.lab import Lab, Node  # noqa: E402

LAB_DIR = HERE / ".peers" / "cpu-lab"
RECIPE = HERE / "workloads" / "w1" / "converge_recipe.py"
TICK = os.sysconf("SC_CLK_TCK")


def node_cpu(node: Node) -> float:
    """CPU seconds of the node's PID 1 and of every descendant it has reaped."""
    with open("/proc/%d/stat" % node.pid) as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    # after the command name: state is fields[0]; utime, stime, cutime, cstime: 11..14
    return sum(int(f) for f in fields[11:15]) / TICK


def settled(nodes: List[Node], limit: float = 30.0) -> None:
    """Wait until every node's listener has reaped all its children (so their CPU is
    in cutime/cstime), at most ``limit`` seconds."""
    deadline = time.monotonic() + limit
    for node in nodes:
        path = "/proc/%d/task/%d/children" % (node.pid, node.pid)
        while True:
            with open(path) as fh:
                if not fh.read().split():
                    break
            if time.monotonic() > deadline:
                raise BenchError("%s still has processes after the run" % node.name)
            time.sleep(0.01)


def measured(nodes: List[Node], work: Callable[[], float]) -> Tuple[float, float, float]:
    """(wall seconds, controller CPU, nodes' CPU) of ``work``, which returns its
    controller CPU seconds."""
    settled(nodes)
    before = sum(node_cpu(n) for n in nodes)
    started = time.monotonic()
    controller = work()
    wall = time.monotonic() - started
    settled(nodes)
    return wall, controller, sum(node_cpu(n) for n in nodes) - before


def push(lab: Lab, count: int, expect_changes: bool, checkout: Path = REPO) -> float:
    """One ``converge apply`` of W1 to every node by the converge of ``checkout``;
    its CPU seconds (wait4)."""
    argv = [sys.executable, "-m", "converge", "apply", str(RECIPE), "-i",
            str(lab.inventory_path()), "--forks", str(count), "--detailed-exitcode"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            # cold: every run connects (a warm connection's sshd would
                            # stay, and its CPU would never be reaped and counted)
                            env=host_env(PYTHONPATH=str(checkout), CONVERGE_SSH_PERSIST="no"),
                            cwd=str(HERE))
    assert proc.stdout is not None
    output = proc.stdout.read().decode("utf-8", "replace")
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    want = 2 if expect_changes else 0
    if proc.returncode != want:
        raise BenchError("converge exited %d (wanted %d):\n%s"
                         % (proc.returncode, want, output[-3000:]))
    return usage.ru_utime + usage.ru_stime


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def floor_cpu(lab: Lab, nodes: List[Node]) -> float:
    started = own_cpu()
    floor(lab, nodes)
    return own_cpu() - started


def line(label: str, samples: List[Tuple[float, float, float]], count: int) -> str:
    def cell(values: List[float], scale: float = 1000.0) -> str:
        return "%.0f (%.0f-%.0f)" % (statistics.median(values) * scale,
                                     min(values) * scale, max(values) * scale)

    per = [(c / count, n / count, (c + n) / count) for _, c, n in samples]
    return ("%-16s wall %s ms | per host, CPU ms: controller %s, sshd+agent %s, total %s"
            % (label, cell([s[0] for s in samples]), cell([p[0] for p in per]),
               cell([p[1] for p in per]), cell([p[2] for p in per])))


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--compare", type=Path, metavar="CHECKOUT",
                        help="another converge checkout (an older commit), measured in "
                        "turn with this one on the same nodes")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("benchmarks/cpu_bench.py needs root (lab nodes)", file=sys.stderr)
        return 1
    lab = Lab(LAB_DIR)
    if lab.nodes():
        lab.down()  # a run that was interrupted
    # bytecode as an installed package has it (else each run compiles converge again)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "converge")],
                   check=True)
    build_package(lab)
    import paramiko  # noqa: F401 - imported before the floor's first measurement

    nodes = fresh_nodes(lab, args.nodes, [])
    checkouts = {"no-op": REPO}
    if args.compare:
        checkouts["no-op, " + args.compare.name] = args.compare.resolve()
        subprocess.run([sys.executable, "-m", "compileall", "-q",
                        str(args.compare / "converge")], check=True)
    results: Dict[str, List[Tuple[float, float, float]]] = {"floor": []}
    results.update({label: [] for label in checkouts})
    try:
        push(lab, args.nodes, expect_changes=True)
        verify("w1", nodes[0], "converge")
        for checkout in checkouts.values():  # each one's agent is in the nodes' cache
            push(lab, args.nodes, False, checkout)
        for _ in range(args.reps):
            results["floor"].append(measured(nodes, lambda: floor_cpu(lab, nodes)))
            for label, checkout in checkouts.items():
                results[label].append(measured(
                    nodes, lambda c=checkout: push(lab, args.nodes, False, c)))
    except BenchError as exc:
        print("FAILED: %s" % exc, file=sys.stderr)
        return 1
    finally:
        lab.down()
    print("W1 pushed to %d nodes (--forks %d), %d repetitions; median (min-max)"
          % (args.nodes, args.nodes, args.reps))
    for label, samples in results.items():
        print(line(label, samples, args.nodes))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
