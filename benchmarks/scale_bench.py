"""W1 pushed to many lab nodes: converge against pyinfra and the paramiko floor.

    python3 benchmarks/scale_bench.py [--nodes 30,100,200] [--reps 1]
                                      [--tools converge,pyinfra] [--forks N]
                                                                (root; lab nodes)

For each fleet size, on fresh lab nodes (run.py's: the lab repository's package
list read on each, untimed): the floor (parallel paramiko connections running
``python3 -c pass``, one thread per node, in a process of its own), then each
tool's first run and no-op run of W1, every node at once (converge ``--forks N``,
pyinfra ``--parallel N``; ``--forks default`` lets converge choose), each tool on
nodes of its own. The harness checks as run.py does: the first run changes
something, the no-op run nothing, the first and last node end in W1's state.

For every run it reads from the kernel, not from timers: the controller's CPU
seconds (user + system of the tool's process, all its threads, from ``wait4``) and
its peak RSS; and the nodes' CPU (each node's sshd listener with every descendant
it reaped: the sshd sessions, the agent or pyinfra's commands; see cpu_bench.py).
Prints wall seconds, CPU milliseconds per host (controller, nodes) and peak RSS,
the ratios to the floor and to pyinfra, and the growth from the smallest size to
the largest: wall and CPU per host should grow linearly or better (per-host CPU
flat, wall no faster than the node count). converge's runs are cold
(CONVERGE_SSH_PERSIST=no: each connects afresh; benchmarks/warm_bench.py
measures warm runs at one node); then, converge only, a no-op that keeps its
connections (untimed) and the **warm** no-op after it, as users run by default:
connections, ready agents and the ready controller kept (the nodes' CPU of a warm
run is undercounted: kept sshd sessions have not been reaped).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

from cpu_bench import node_cpu, settled  # noqa: E402
from run import (  # noqa: E402
    CONVERGE_PY,
    VENV,
    WORK,
    WORKLOADS,
    BenchError,
    _exit_coded,
    _pyinfra_result,
    fresh_nodes,
    host_env,
    setup,
    tail,
    verify,
)

from converge.lab import Lab, Node  # noqa: E402

LAB_DIR = HERE / ".peers" / "scale-lab"
WARM_DIR = HERE / ".peers" / "scale-ssh"  # the warm runs' broker and ready controller
RECIPE = WORKLOADS / "w1" / "converge_recipe.py"
DEPLOY = WORKLOADS / "w1" / "pyinfra_deploy.py"
TIMEOUT = 1800.0
PHASES = ("first", "noop", "warm")  # warm: converge only

FLOOR_CHILD = """\
import json, sys
sys.path.insert(0, sys.argv[1])
from run import floor
from converge.lab import Lab
lab = Lab(sys.argv[2])
names = set(sys.argv[3].split(","))
nodes = [n for n in lab.nodes() if n.name in names]
print(json.dumps({"seconds": floor(lab, nodes)}))
"""


class Sample:
    """One process's run: wall seconds, its CPU seconds and peak RSS (kB), the nodes'
    CPU seconds, whether it changed anything."""

    def __init__(self, wall: float, cpu: float, rss_kb: int, nodes_cpu: float,
                 changed: bool) -> None:
        self.wall, self.cpu, self.rss_kb = wall, cpu, rss_kb
        self.nodes_cpu, self.changed = nodes_cpu, changed


def accounted(argv: List[str], nodes: List[Node], env: Dict[str, str], settle: bool = True
              ) -> Tuple[subprocess.CompletedProcess, float, float, int, float]:
    """Run ``argv``: (its result, wall seconds, its CPU seconds, its peak RSS in kB,
    the nodes' CPU seconds meanwhile: what they reaped; not ``settle``: kept sessions
    are not waited for)."""
    if settle:
        settled(nodes)
    before = sum(node_cpu(n) for n in nodes)
    started = time.monotonic()
    proc = _Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(WORK),
                  env=env)
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise BenchError("%s took more than %.0f s" % (argv[0], TIMEOUT)) from None
    wall = time.monotonic() - started
    usage = proc_usage(proc)
    if settle:
        settled(nodes)
    done = subprocess.CompletedProcess(argv, proc.returncode, out.decode("utf-8", "replace"),
                                       err.decode("utf-8", "replace"))
    return done, wall, usage[0], usage[1], sum(node_cpu(n) for n in nodes) - before


_reaped: Dict[int, Tuple[float, int]] = {}


class _Popen(subprocess.Popen):  # type: ignore[type-arg]
    """A Popen that reaps its child with wait4, keeping the child's rusage (CPU
    seconds of all its threads, peak RSS) for :func:`proc_usage`."""

    def _try_wait(self, wait_flags: int) -> Tuple[int, int]:
        try:
            pid, status, usage = os.wait4(self.pid, wait_flags)
        except ChildProcessError:
            return self.pid, 0
        if pid == self.pid:
            _reaped[pid] = (usage.ru_utime + usage.ru_stime, usage.ru_maxrss)
        return pid, status


def proc_usage(proc: subprocess.Popen) -> Tuple[float, int]:  # type: ignore[type-arg]
    return _reaped.pop(proc.pid, (0.0, 0))


def converge_run(lab: Lab, nodes: List[Node], forks: Optional[str], warm: bool = False
                 ) -> Sample:
    argv = [str(CONVERGE_PY), "-m", "converge", "apply", str(RECIPE), "-i",
            str(lab.inventory_path()), "--detailed-exitcode"]
    if forks != "default":
        argv += ["--forks", forks or str(len(nodes))]
    # cold (CONVERGE_SSH_PERSIST=no): every run connects, as pyinfra's do, and no kept
    # sshd session hides its CPU from the nodes' accounting; warm: connections, ready
    # agents and the ready controller kept (this benchmark's own folder), as users run
    env = host_env(PYTHONPATH=str(REPO), CONVERGE_SSH_PERSIST="no")
    if warm:
        env.pop("CONVERGE_SSH_PERSIST")
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["CONVERGE_SSH_DIR"] = str(WARM_DIR)
    done, wall, cpu, rss, nodes_cpu = accounted(argv, nodes, env, settle=not warm)
    run = _exit_coded("converge", done, wall)
    return Sample(wall, cpu, rss, nodes_cpu, run.changed)


def pyinfra_run(lab: Lab, nodes: List[Node], forks: Optional[str]) -> Sample:
    data = {"ssh_user": "root", "ssh_key": str(lab.key_path),
            "ssh_known_hosts_file": str(lab.known_hosts_path),
            "ssh_strict_host_key_checking": "yes"}
    inventory = WORK / "pyinfra_scale_inventory.py"
    inventory.write_text("nodes = %r\n" % [(n.address, data) for n in nodes])
    argv = [str(VENV / "bin" / "pyinfra"), str(inventory), str(DEPLOY), "-y",
            "--parallel", str(len(nodes))]
    done, wall, cpu, rss, nodes_cpu = accounted(argv, nodes, host_env())
    run = _pyinfra_result(done, wall)
    return Sample(wall, cpu, rss, nodes_cpu, run.changed)


def floor_run(lab: Lab, nodes: List[Node]) -> Sample:
    argv = [str(CONVERGE_PY), "-c", FLOOR_CHILD, str(HERE), str(LAB_DIR),
            ",".join(n.name for n in nodes)]
    done, wall, cpu, rss, nodes_cpu = accounted(argv, nodes, host_env(PYTHONPATH=str(REPO)))
    if done.returncode != 0:
        raise BenchError("the floor failed:\n%s" % tail(done.stdout + done.stderr))
    return Sample(json.loads(done.stdout)["seconds"], cpu, rss, nodes_cpu, False)


RUNNERS = {"converge": converge_run, "pyinfra": pyinfra_run}
Results = Dict[Tuple[int, str, str], List[Sample]]


def measure(lab: Lab, count: int, tool: str, forks: Optional[str], results: Results) -> None:
    nodes = fresh_nodes(lab, count, [])
    try:
        if tool == "converge":
            floor = floor_run(lab, nodes)
            results.setdefault((count, "floor", "noop"), []).append(floor)
            show(count, "floor", floor)
        first = RUNNERS[tool](lab, nodes, forks)
        noop = RUNNERS[tool](lab, nodes, forks)
        samples = [first, noop]
        if tool == "converge":  # a no-op that keeps everything (untimed), then warm
            try:
                converge_run(lab, nodes, forks, warm=True)
                samples.append(converge_run(lab, nodes, forks, warm=True))
            finally:
                subprocess.run([str(CONVERGE_PY), "-m", "converge", "disconnect"],
                               env=host_env(PYTHONPATH=str(REPO),
                                            CONVERGE_SSH_DIR=str(WARM_DIR)),
                               capture_output=True, check=False)
        if not first.changed:
            raise BenchError("%s on %d nodes: the first run changed nothing" % (tool, count))
        if any(s.changed for s in samples[1:]):
            raise BenchError("%s on %d nodes: a no-op run changed something" % (tool, count))
        for node in {nodes[0], nodes[-1]}:
            verify("w1", node, tool)
    finally:
        lab.down([n.name for n in nodes])
    for phase, sample in zip(PHASES, samples, strict=False):
        results.setdefault((count, tool, phase), []).append(sample)
        show(count, "%-8s %-5s" % (tool, phase), sample)


def show(count: int, label: str, sample: Sample) -> None:
    print("  %3d nodes %-14s wall %6.2fs  controller %6.2f CPU-s (%4.0f ms/host), "
          "peak RSS %4.0f MB; nodes %6.2f CPU-s (%4.0f ms/host)"
          % (count, label, sample.wall, sample.cpu, 1000 * sample.cpu / count,
             sample.rss_kb / 1024, sample.nodes_cpu, 1000 * sample.nodes_cpu / count),
          flush=True)


def mid(samples: List[Sample], attr: str) -> float:
    return float(statistics.median(getattr(s, attr) for s in samples))


def report(results: Results, sizes: List[int], tools: List[str], args: argparse.Namespace
           ) -> str:
    out = ["W1 pushed to N lab nodes at once (converge --forks %s), medians of %d "
           "repetition(s); wall seconds; CPU ms per host (controller / nodes: sshd, agent "
           "and commands); controller peak RSS" % (args.forks or "N", args.reps), "",
           "| nodes | tool | run | wall s | controller CPU ms/host | nodes CPU ms/host "
           "| peak RSS MB | wall / floor | pyinfra / converge |",
           "|---|---|---|---|---|---|---|---|---|"]
    for count in sizes:
        floor = results.get((count, "floor", "noop"))
        rows = [("floor", "noop")] if floor else []
        rows += [(t, p) for t in tools for p in PHASES]
        for tool, phase in rows:
            samples = results.get((count, tool, phase))
            if not samples:
                continue
            wall = mid(samples, "wall")
            versus_floor = "%.2fx" % (wall / mid(floor, "wall")) if floor and tool != "floor" \
                else "–"
            peer = results.get((count, "pyinfra", "noop" if phase == "warm" else phase))
            versus_peer = "%.1fx" % (mid(peer, "wall") / wall) \
                if peer and tool == "converge" else "–"
            out.append("| %d | %s | %s | %.2f | %.0f | %.0f | %.0f | %s | %s |" % (
                count, tool, "–" if tool == "floor" else "first" if phase == "first"
                else "no-op, warm" if phase == "warm" else "no-op", wall,
                1000 * mid(samples, "cpu") / count,
                1000 * mid(samples, "nodes_cpu") / count, mid(samples, "rss_kb") / 1024,
                versus_floor, versus_peer))
    if len(sizes) > 1:
        low, high = sizes[0], sizes[-1]
        out += ["", "Growth from %d to %d nodes (x%.2f the nodes): wall, and controller "
                "CPU per host (flat is linear in total)" % (low, high, high / low), ""]
        for tool in ["floor"] + tools:
            for phase in (("noop",) if tool == "floor" else PHASES):
                a, b = results.get((low, tool, phase)), results.get((high, tool, phase))
                if not a or not b:
                    continue
                wall = mid(b, "wall") / mid(a, "wall")
                cpu = (mid(b, "cpu") / high) / (mid(a, "cpu") / low)
                out.append("- %s %s: wall x%.2f (%s), controller CPU per host x%.2f; peak "
                           "RSS %.0f -> %.0f MB" % (
                               tool, {"first": "first run", "noop": "no-op", "warm": "no-op, "
                                  "warm"}[phase], wall,
                               "linear or better" if wall <= high / low else "WORSE than "
                               "linear", cpu, mid(a, "rss_kb") / 1024,
                               mid(b, "rss_kb") / 1024))
    return "\n".join(out) + "\n"


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", default="30,100,200", help="fleet sizes (30,100,200)")
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--tools", default="converge,pyinfra")
    parser.add_argument("--forks", default=None, help="converge's --forks: a number, "
                        "'default' (converge chooses), or the node count (unset)")
    args = parser.parse_args(argv)
    sizes = [int(n) for n in args.nodes.split(",") if n]
    tools = [t for t in args.tools.split(",") if t]
    if os.geteuid() != 0:
        print("benchmarks/scale_bench.py needs root (lab nodes)", file=sys.stderr)
        return 1
    lab = Lab(LAB_DIR)
    if lab.nodes():
        lab.down()  # a run that was interrupted
    setup(lab, tools)
    results: Results = {}
    try:
        for count in sizes:
            for _ in range(args.reps):
                for tool in tools:
                    measure(lab, count, tool, args.forks, results)
    except BenchError as exc:
        print("FAILED: %s" % exc, file=sys.stderr)
        return 1
    finally:
        if lab.nodes():
            lab.down()
    print()
    print(report(results, sizes, tools, args))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
