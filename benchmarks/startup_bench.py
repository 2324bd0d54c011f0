"""Start-up and no-op cost of the converge CLI, as whole processes.

    python3 benchmarks/startup_bench.py [--runs N]

Times `converge --help` and a no-op `converge apply` of a 100-file recipe (the
second of two runs, so every file is already up to date), median and min–max of N
runs, with the median CPU seconds (user + system) and the peak memory (max RSS).
Run it with the interpreter to measure: a virtual environment that holds converge's
dependencies runs `python -m converge` (this checkout on PYTHONPATH). Targets on a 2-core machine:
--help under 100 ms; the no-op apply under 250 ms and under 60 MB. The bare
interpreter's start-up is printed too: it is the floor under both.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(argv: list, cwd: str) -> tuple:
    """Wall seconds, the process's own peak RSS (KiB) and CPU seconds, from wait4."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _, _, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = 0  # reaped by wait4
    return seconds, usage.ru_maxrss, usage.ru_utime + usage.ru_stime


def measure(label: str, argv: list, cwd: str, runs: int) -> None:
    results = [timed(argv, cwd) for _ in range(runs)]
    times = sorted(r[0] * 1000 for r in results)
    peak_mb = max(r[1] for r in results) / 1024
    cpu = statistics.median(r[2] * 1000 for r in results)
    print("%-34s median %6.1f ms  (min %6.1f, max %6.1f)  CPU %6.1f ms  peak RSS %5.1f MB"
          % (label, statistics.median(times), times[0], times[-1], cpu, peak_mb))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    # the console script next to this interpreter; else this interpreter's `-m converge`
    # (a virtual environment that holds converge's dependencies, converge on PYTHONPATH)
    found = shutil.which("converge", path=os.path.dirname(sys.executable))
    script = [found] if found else [sys.executable, "-m", "converge"]
    work = tempfile.mkdtemp(prefix="converge-bench-")
    try:
        recipe = Path(work) / "recipe.py"
        recipe.write_text(
            "from converge import directory, file\n"
            "directory(%r)\n"
            "for i in range(100):\n"
            "    file(%r %% i, content='value = %%d\\n' %% i, mode='0644')\n"
            % (work + "/out", work + "/out/f%03d.conf"))
        subprocess.run([*script, "apply", str(recipe)], cwd=work, check=True,
                       stdout=subprocess.DEVNULL)
        print("converge start-up (%d runs each, %s)"
              % (args.runs, " ".join(os.path.basename(part) for part in script)))
        measure("python3 -c pass (floor)", [sys.executable, "-c", "pass"], work, args.runs)
        measure("converge --help", [*script, "--help"], work, args.runs)
        measure("converge apply (no-op, 101 res.)", [*script, "apply", str(recipe)], work,
                args.runs)
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
