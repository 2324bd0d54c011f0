"""The package manager alone: W1's package installed on N lab nodes at once.

    python3 benchmarks/apt_bench.py [--nodes 10,30] [--reps 1]      (root; lab nodes)

Issue 24's first-run target is "within 1.25x of the floor plus the time the
package manager alone takes for that package on every node". This measures that
time: on fresh nodes (run.py's: the lab repository's package list read, untimed),
``apt-get install -y bench-tool`` runs in every node at the same moment, started
inside the node (no SSH, no tool), and the wall time until the last one ended is
printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import List

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

from run import PACKAGE, BenchError, build_package, fresh_nodes  # noqa: E402

from converge.lab import Lab, Node  # noqa: E402

LAB_DIR = HERE / ".peers" / "apt-lab"


def install_everywhere(nodes: List[Node]) -> float:
    """Wall seconds for ``apt-get install`` of the package in every node at once."""
    failures: List[str] = []
    ready = threading.Barrier(len(nodes) + 1)

    def one(node: Node) -> None:
        ready.wait()
        done = node.run(["apt-get", "install", "-y", "-qq", PACKAGE], timeout=600,
                        env={"DEBIAN_FRONTEND": "noninteractive",
                             "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        if done.returncode != 0:
            failures.append("%s: %s" % (node.name, done.stderr[-300:]))

    threads = [threading.Thread(target=one, args=(n,)) for n in nodes]
    for thread in threads:
        thread.start()
    ready.wait()
    started = time.monotonic()
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - started
    if failures:
        raise BenchError("apt-get install failed: %s" % failures[0])
    return seconds


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", default="10,30")
    parser.add_argument("--reps", type=int, default=1)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("benchmarks/apt_bench.py needs root (lab nodes)", file=sys.stderr)
        return 1
    lab = Lab(LAB_DIR)
    if lab.nodes():
        lab.down()
    build_package(lab)
    try:
        for count in [int(n) for n in args.nodes.split(",") if n]:
            walls = []
            for _ in range(args.reps):
                nodes = fresh_nodes(lab, count, [])
                try:
                    walls.append(install_everywhere(nodes))
                finally:
                    lab.down([n.name for n in nodes])
            print("%3d nodes: apt-get install %s alone, in every node at once: %.2f s (%s)"
                  % (count, PACKAGE, statistics.median(walls),
                     " ".join("%.2f" % w for w in walls)), flush=True)
    except BenchError as exc:
        print("FAILED: %s" % exc, file=sys.stderr)
        return 1
    finally:
        if lab.nodes():
            lab.down()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
