"""The run store and the HTML report at fleet size: record a run of HOSTS hosts with
RESOURCES resources each (a share of them changed, with diffs; a few hosts failed),
then read it back and render the report. Prints the time of each step and the
report's size.

    python3 benchmarks/report_bench.py                 # 1,000 hosts x 200 resources
    python3 benchmarks/report_bench.py --hosts 200 --store postgresql://...
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from converge import store as run_store  # noqa: E402
from converge.html_report import render  # noqa: E402


def event(host: int, index: int, changed: bool, failed: bool) -> dict:
    ident = "file[/etc/app/conf-%03d.conf]" % index
    if failed:
        return {"id": ident, "action": "create", "status": "failed", "changes": [],
                "diffs": [], "error": "Permission denied", "time": 0.004}
    if changed:
        diff = "--- a\n+++ b\n@@ -1 +1 @@\n-old %d\n+new %d\n" % (host, host)
        return {"id": ident, "action": "create", "status": "updated",
                "changes": ["update content in file /etc/app/conf-%03d.conf" % index],
                "diffs": [diff], "time": 0.003}
    return {"id": ident, "action": "create", "status": "up_to_date", "changes": [],
            "diffs": [], "time": 0.001}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--resources", type=int, default=200)
    parser.add_argument("--changed", type=float, default=0.05,
                        help="share of resources that changed (with a diff)")
    parser.add_argument("--store", default=None, help="a store URL (default: a temporary "
                        "SQLite file)")
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="converge-report-bench-")
    url = args.store or "sqlite:///%s/store.db" % folder
    store = run_store.connect(url)
    recorder = run_store.Recorder(store, "apply", "site.py", ["apply", "site.py"], warn=print)
    step = max(1, int(1 / args.changed)) if args.changed else 0

    started = time.perf_counter()
    recorder.begin()
    for host in range(args.hosts):
        name = "web%04d" % host
        failed = host % 97 == 0
        events = [event(host, i, bool(step) and i % step == 0, failed and i == 0)
                  for i in range(args.resources)]
        for item in events:
            recorder.event(name, item)
        updated = sum(e["status"] == "updated" for e in events)
        recorder.host(name, {"summary": {"updated": updated, "failed": int(failed),
                                         "up_to_date": args.resources - updated - failed,
                                         "skipped": 0, "total": args.resources}})
    recorder.finish({"hosts": {}, "summary": {"seconds": 1.0}})
    recorded = time.perf_counter() - started

    started = time.perf_counter()
    run = store.run(recorder.id)
    read = time.perf_counter() - started
    started = time.perf_counter()
    text = render([run])
    rendered = time.perf_counter() - started
    store.close()
    out = Path(folder) / "report.html"
    out.write_text(text)
    print("%d hosts x %d resources (%.0f%% changed), store %s" % (
        args.hosts, args.resources, args.changed * 100, url.split("?")[0]))
    print("  record (one transaction per host): %6.2f s" % recorded)
    print("  read the run back:                 %6.2f s" % read)
    print("  render the HTML report:            %6.2f s" % rendered)
    print("  report size:                       %6.1f MiB (%s)" % (
        len(text.encode()) / 2**20, out))
    if not args.store:
        print("  store size:                        %6.1f MiB" % (
            os.path.getsize(Path(folder) / "store.db") / 2**20))


if __name__ == "__main__":
    main()
