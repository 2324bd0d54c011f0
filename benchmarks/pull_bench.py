"""Pull mode at scale: N lab nodes pull one signed commit from a git server.

    python3 benchmarks/pull_bench.py [NODES]      (root; default 50 nodes)

A bare repository on this machine is served by `git daemon`, listening only on
the lab's own addresses (the host end of each node's link). Every node is given
the allowed-signers file and runs `converge pull` at the same moment, as timers
without splay would (the worst case for the git server). Printed: the time until
every node has applied the commit and recorded the run, the time until every node
has refused a commit signed by an unknown key, and
the load on the run store every node reports to (a throwaway PostgreSQL cluster
listening on the same addresses: connections, commits, rows, WAL bytes and server
time, from pg_stat_database), and the runs it holds at the end.
tests/lab/test_pull_fleet.py runs the same with a few nodes.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

GIT = ["git", "-c", "user.name=ops", "-c", "user.email=ops@example.com"]
RECIPE = """\
from converge import file
file("/etc/pulled", content="%s\\n")
"""


def _run(argv: Sequence[str], cwd: Path | None = None) -> str:
    done = subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(argv), done.stderr.strip()))
    return done.stdout.strip()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Postgres:
    """A throwaway PostgreSQL cluster (Debian's server, run by the `postgres` user) in a
    temporary folder, listening on the given addresses (the lab's ends of the nodes'
    links) and on a Unix socket there; trust authentication, no fsync."""

    def __init__(self, addresses: Sequence[str]) -> None:
        import glob
        import pwd

        initdb = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not initdb:
            raise RuntimeError("PostgreSQL is not installed (the postgresql package)")
        self.bindir = Path(initdb[-1]).parent
        # its own folder: the server's user must reach it (a test's tmp_path is root's)
        self.folder = folder = Path(tempfile.mkdtemp(prefix="converge-pull-pg-"))
        owner = pwd.getpwnam("postgres")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        self.port = _free_port()
        self._as_postgres(str(self.bindir / "initdb"), "-D", str(folder / "data"),
                          "--auth=trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        with open(folder / "data" / "pg_hba.conf", "a") as hba:
            hba.write("host all all 0.0.0.0/0 trust\n")
        options = ("-k %s -p %d -c listen_addresses='%s' -c fsync=off -c max_connections=%d"
                   % (folder, self.port, ",".join(addresses), max(100, 2 * len(addresses))))
        self._as_postgres(str(self.bindir / "pg_ctl"), "-D", str(folder / "data"), "-l",
                          str(folder / "log"), "-o", options, "-w", "start")
        self.local = "postgresql://postgres@/postgres?host=%s&port=%d" % (folder, self.port)
        from converge.store import connect

        connect(self.local).close()  # the schema, before nodes write at once

    def _as_postgres(self, *argv: str) -> None:
        done = subprocess.run(["runuser", "-u", "postgres", "--", *argv], capture_output=True,
                              text=True, timeout=120, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise RuntimeError("%s: %s" % (argv[0], done.stdout + done.stderr))

    def url(self, address: str) -> str:
        return "postgresql://postgres@%s:%d/postgres" % (address, self.port)

    def stats(self) -> Dict[str, float]:
        """The database's counters now (pg_stat_database), its size and the WAL position."""
        import psycopg

        with psycopg.connect(self.local, autocommit=True) as conn:
            conn.execute("SELECT pg_stat_clear_snapshot()")
            row = conn.execute(
                "SELECT sessions, xact_commit, xact_rollback, tup_inserted, tup_updated, "
                "tup_fetched, blks_read, blks_hit, session_time, active_time, "
                "pg_database_size(datname), pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0') "
                "FROM pg_stat_database WHERE datname = 'postgres'").fetchone()
        assert row is not None
        names = ("sessions", "commits", "rollbacks", "rows_inserted", "rows_updated",
                 "rows_fetched", "blocks_read", "blocks_hit", "session_ms", "active_ms",
                 "database_bytes", "wal_bytes")
        return {name: float(value) for name, value in zip(names, row, strict=True)}

    def pull_runs(self) -> List[Dict[str, Any]]:
        from converge.store import connect

        store = connect(self.local)
        try:
            return store.runs(kind="pull", limit=100000)
        finally:
            store.close()

    def close(self) -> None:
        try:
            if (self.folder / "data" / "postmaster.pid").exists():
                self._as_postgres(str(self.bindir / "pg_ctl"), "-D", str(self.folder / "data"),
                                  "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def load_line(before: Dict[str, float], after: Dict[str, float], nodes: int) -> str:
    """What one round of pulls cost the store, per node."""
    d = {key: after[key] - before[key] for key in before}
    return ("store load: %d connections, %d commits, %d rows inserted, %d rows fetched, "
            "%.0f KiB of WAL, database +%.0f KiB; per node: %.1f commits, %.1f rows, "
            "%.1f KiB WAL, %.1f ms active in the server (%.1f ms connected)"
            % (d["sessions"], d["commits"], d["rows_inserted"], d["rows_fetched"],
               d["wal_bytes"] / 1024, d["database_bytes"] / 1024, d["commits"] / nodes,
               d["rows_inserted"] / nodes, d["wal_bytes"] / 1024 / nodes,
               d["active_ms"] / nodes, d["session_ms"] / nodes))


class PullFleet:
    """A signed repository served to lab nodes over git://, and pulls on all of them."""

    def __init__(self, work: Path, nodes: Sequence[Any], store: bool = False) -> None:
        self.work = work
        self.nodes = list(nodes)
        self.source = work / "ops"
        self.bare = work / "git" / "ops.git"
        keys = work / "keys"
        keys.mkdir()
        for name in ("trusted", "stranger"):
            _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name,
                  "-f", str(keys / name)])
        self.keys = keys
        self.allowed = "ops@example.com %s" % (keys / "trusted.pub").read_text()
        _run(["git", "init", "-q", "-b", "main", str(self.source)])
        self.bare.parent.mkdir()
        _run(["git", "init", "-q", "--bare", "-b", "main", str(self.bare)])
        self.port = _free_port()
        listen = sorted({node.host_address for node in self.nodes})
        self.daemon = subprocess.Popen(
            ["git", "daemon", "--reuseaddr", "--export-all", "--informative-errors",
             "--base-path=%s" % (work / "git"), "--port=%d" % self.port,
             *["--listen=%s" % address for address in listen], str(work / "git")],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for node in self.nodes:
            node.write_file("/etc/converge/signers", self.allowed.encode(), 0o644)
        self._wait_for_daemon(listen[0])
        self.store = Postgres(listen) if store else None

    def _wait_for_daemon(self, address: str) -> None:
        for _ in range(500):
            if self.daemon.poll() is not None:
                raise RuntimeError("git daemon ended: %s" % self.daemon.stderr.read().decode())
            try:
                socket.create_connection((address, self.port), timeout=1).close()
                return
            except OSError:
                # git daemon binds within milliseconds; until then connect is refused
                time.sleep(0.01)
        raise RuntimeError("git daemon never listened on %s:%d" % (address, self.port))

    def url(self, node: Any) -> str:
        return "git://%s:%d/ops.git" % (node.host_address, self.port)

    def commit(self, version: str, key: str = "trusted") -> str:
        (self.source / "recipe.py").write_text(RECIPE % version)
        _run([*GIT, "add", "-A"], cwd=self.source)
        _run([*GIT, "-c", "gpg.format=ssh", "-c", "user.signingkey=%s" % (self.keys / key),
              "commit", "-S", "-q", "-m", version], cwd=self.source)
        _run(["git", "push", "-q", "--force", str(self.bare), "main"], cwd=self.source)
        return _run(["git", "rev-parse", "HEAD"], cwd=self.source)

    def pull_all(self) -> Tuple[float, List[Tuple[str, int, str]]]:
        """Every node pulls at once; (seconds until the last is done, results)."""
        def pull(node: Any) -> Tuple[str, int, str]:
            store = ["--store", self.store.url(node.host_address)] if self.store else []
            done = node.run([sys.executable, "-m", "converge", "pull", self.url(node),
                             "--allowed-signers", "/etc/converge/signers", *store],
                            timeout=600)
            return node.name, done.returncode, done.stdout + done.stderr

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=min(64, len(self.nodes))) as pool:
            results = list(pool.map(pull, self.nodes))
        return time.perf_counter() - started, results

    def applied(self) -> Dict[str, str]:
        return {node.name: node.run(["cat", "/etc/pulled"]).stdout.strip()
                for node in self.nodes}

    def close(self) -> None:
        if self.store:
            self.store.close()
        self.daemon.terminate()
        self.daemon.wait()
        if self.daemon.stderr:
            self.daemon.stderr.close()


def main() -> None:
    from converge.lab import Lab

    count = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    with tempfile.TemporaryDirectory(prefix="converge-pull-bench-") as scratch:
        work = Path(scratch)
        lab = Lab(work / "lab")
        lab.check_host()
        started = time.perf_counter()
        nodes = lab.up(count)
        print("%d nodes up in %.1fs" % (count, time.perf_counter() - started))
        fleet = PullFleet(work, nodes, store=True)
        assert fleet.store is not None
        try:
            fleet.commit("v1")
            before = fleet.store.stats()
            seconds, results = fleet.pull_all()
            after = fleet.store.stats()
            failed = [(name, out) for name, code, out in results if code != 0]
            assert not failed, failed[:3]
            assert set(fleet.applied().values()) == {"v1"}
            print("signed commit applied by all %d nodes and reported to the PostgreSQL "
                  "store: %.2fs (%.0f ms per node; each node's first converge compiles its "
                  "bytecode)" % (count, seconds, 1000 * seconds / count))
            print("  " + load_line(before, after, count))
            before = after
            seconds, results = fleet.pull_all()
            after = fleet.store.stats()
            print("no-op pull on all %d nodes, reported: %.2fs (%.0f ms per node)"
                  % (count, seconds, 1000 * seconds / count))
            print("  " + load_line(before, after, count))
            before = after
            sha = fleet.commit("v2", key="stranger")
            seconds, results = fleet.pull_all()
            after = fleet.store.stats()
            refused = [name for name, code, out in results
                       if code == 1 and "commit %s" % sha[:12] in out and "refused" in out]
            assert len(refused) == count, [r for r in results if r[0] not in refused][:3]
            assert set(fleet.applied().values()) == {"v1"}
            print("commit by an unknown key refused by all %d nodes and reported: %.2fs"
                  % (count, seconds))
            print("  " + load_line(before, after, count))
            runs = fleet.store.pull_runs()
            hosts = {host for run in runs for host in run["hosts"]}
            failed_runs = [run for run in runs if run["result"] == "failed"]
            assert len(runs) == 3 * count and len(hosts) == count, (len(runs), len(hosts))
            assert len(failed_runs) == count, len(failed_runs)
            print("pull runs in the shared store: %d from %d hosts (%d refusals), %.0f KiB"
                  % (len(runs), len(hosts), len(failed_runs), after["database_bytes"] / 1024))
        finally:
            fleet.close()
            lab.down()


if __name__ == "__main__":
    main()
