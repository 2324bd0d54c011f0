"""Lab benchmark: bring-up (every sshd answering) and teardown of 10 and 50 nodes,
and memory per idle node (PSS of every process in the node); then the same bring-up
from a lab image (debian-12, built first if this machine has not built it).

Run as root on Linux: `python3 benchmarks/lab_bench.py [SIZES...] [--image NAME]`.
Prints figures; not a test. Targets: 10 nodes up in < 1 s, 50 in < 4 s, < 3 MB per
idle node; from a built image, as fast as from this machine's root.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

from converge.lab import Lab, Node


def pss_kib(pid: int) -> int:
    """Proportional set size of one process, in KiB."""
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def node_pss_kib(node: Node) -> int:
    """PSS of every process in the node's pid namespace."""
    target = os.stat(f"/proc/{node.pid}/ns/pid").st_ino
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}/ns/pid").st_ino == target:
                total += pss_kib(int(entry))
        except OSError:
            continue
    return total


def tmpfs_kib(node: Node) -> int:
    """Memory held by the node's private tmpfs mounts (layers, /run, /dev, sysctl copies)."""
    done = node.run(["df", "-k", "--output=used", "-t", "tmpfs"])
    return sum(int(v) for v in done.stdout.split()[1:])


def measure(size: int, image: str | None = None) -> None:
    with tempfile.TemporaryDirectory(prefix="converge-lab-bench-") as directory:
        lab = Lab(directory)
        lab.up(1, image=image)  # the lab key, the repository index, the image: once
        lab.down()
        start = time.perf_counter()
        nodes = lab.up(size, image=image)
        up = time.perf_counter() - start
        pss = [node_pss_kib(node) for node in nodes]
        tmpfs = tmpfs_kib(nodes[0])
        start = time.perf_counter()
        lab.down()
        down = time.perf_counter() - start
    mean = sum(pss) / len(pss) / 1024
    print(f"{size:3d} nodes{' from ' + image if image else ''}: up {up:5.2f} s (every sshd "
          f"answering), down {down:5.2f} s, "
          f"idle node PSS {mean:4.2f} MiB (max {max(pss) / 1024:4.2f}), "
          f"node tmpfs {tmpfs / 1024:4.2f} MiB")


def main() -> None:
    args = sys.argv[1:]
    image = "debian-12"
    if "--image" in args:
        image = args.pop(args.index("--image") + 1)
        args.remove("--image")
    sizes = [int(arg) for arg in args] or [10, 50]
    for size in sizes:
        measure(size)
    for size in sizes:
        measure(size, image)


if __name__ == "__main__":
    main()
