"""SSH push against lab nodes: a no-op push beside the floor, controller and agent memory.

    python3 benchmarks/ssh_bench.py            (root; brings lab nodes up and down)

For 10 and 30 nodes: the floor (parallel paramiko connections running
``python3 -c pass``, 20 at a time, as --forks), then converge's push of a
30-resource recipe, the first run (agent shipped, everything changed) and the
no-op run (agent cached, nothing changed), timed in-process from compile to
the last host's recap. Then the controller's peak RSS pushing the no-op recipe to
100 hosts at once (--forks 100; 100 inventory entries over the 30 nodes, so
each node serves 3-4 connections), and the agent's peak RSS on a target (as it
reports it). Targets: no-op within 2x of the floor, controller < 300 MB for 100
hosts, agent < 30 MB.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run import floor as run_floor  # benchmarks/run.py, beside this script

from converge.inventory import Host
from converge.lab import Lab
from converge.runner import run
from converge.transport.ssh import SSHTransport

FORKS = 20
RECIPE = """\
from converge import directory, file
directory("/srv/bench")
for i in range(29):
    file("/srv/bench/f%02d" % i, content="line %d\\n" % i, mode="0644")
"""
MEMORY_CHILD = """\
import json, resource, sys
from converge.inventory import Host
from converge.runner import run
from converge.transport.ssh import SSHTransport
spec = json.loads(sys.stdin.read())
hosts = [Host(**h) for h in spec["hosts"]]
outcome = run(spec["recipe"], [SSHTransport(h) for h in hosts], remote=True, forks=100)
assert not outcome.failed, outcome.report["summary"]
print(json.dumps({"maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "seconds": outcome.report["summary"]["seconds"]}))
"""


def hosts_for(lab: Lab, nodes: list, count: int) -> list:
    return [Host(name="h%03d" % i, address=nodes[i % len(nodes)].address, user="root",
                 key=str(lab.key_path), known_hosts=str(lab.known_hosts_path))
            for i in range(count)]


def floor(lab: Lab, nodes: list) -> float:
    """The paramiko floor of run.py, ``FORKS`` connections at a time."""
    return run_floor(lab, nodes, workers=FORKS)


def push(recipe: Path, hosts: list) -> tuple:
    transports = [SSHTransport(h) for h in hosts]
    started = time.monotonic()
    outcome = run(recipe, transports, remote=True, forks=FORKS)
    seconds = time.monotonic() - started
    assert not outcome.failed, outcome.report["summary"]
    return seconds, outcome.report["summary"], max(t.maxrss_kb for t in transports)


def best(fn, times: int = 3):  # type: ignore[no-untyped-def]
    return min((fn() for _ in range(times)), key=lambda r: r if isinstance(r, float) else r[0])


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="converge-ssh-bench-"))
    recipe = workdir / "recipe.py"
    recipe.write_text(RECIPE)
    lab = Lab(workdir / "lab")
    nodes = lab.up(30)
    agent_kb = 0
    try:
        print("no-op push of a 30-resource recipe, --forks %d (best of 3 where repeated)" % FORKS)
        for count in (10, 30):
            chosen = nodes[:count]
            hosts = hosts_for(lab, chosen, count)
            floor_s = best(lambda c=chosen: floor(lab, c))
            for node in chosen:  # a fresh agent cache and fresh state: a real first run
                node.run(["rm", "-rf", "/var/lib/converge", "/srv/bench"])
            first_s, summary, _ = push(recipe, hosts)
            assert summary["updated"] == 30 * count
            noop_s, summary, agent = best(lambda h=hosts: push(recipe, h))
            assert summary["updated"] == 0 and summary["up_to_date"] == 30 * count
            agent_kb = max(agent_kb, agent)
            print("  %2d nodes: floor %.3fs  first run %.3fs (%.2fx)  no-op %.3fs (%.2fx)"
                  % (count, floor_s, first_s, first_s / floor_s, noop_s, noop_s / floor_s))
        spec = {"recipe": str(recipe), "hosts": [h.__dict__ for h in hosts_for(lab, nodes, 100)]}
        child = subprocess.run([sys.executable, "-c", MEMORY_CHILD], input=json.dumps(spec),
                               capture_output=True, text=True, check=True)
        memory = json.loads(child.stdout)
        print("controller, 100 hosts at once (--forks 100, over 30 nodes): peak RSS %.1f MB"
              " (target < 300 MB), %.2fs" % (memory["maxrss_kb"] / 1024, memory["seconds"]))
        print("agent on a target: peak RSS %.1f MB (target < 30 MB)" % (agent_kb / 1024))
        print("controller itself (this process): peak RSS %.1f MB"
              % (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
    finally:
        lab.down()


if __name__ == "__main__":
    main()
