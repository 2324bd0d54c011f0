"""Pull mode at scale: N lab nodes pull one signed commit from a git server.

    python3 benchmarks/pull_bench.py [NODES]      (root; default 50 nodes)

A bare repository on this machine is served by `git daemon`, listening only on
the lab's own addresses (the host end of each node's link). Every node is given
the allowed-signers file and runs `converge pull` at the same moment, as timers
without splay would (the worst case for the git server). Printed: the time until
every node has applied the commit and recorded the run, the time until every node
has refused a commit signed by an unknown key, the git server's CPU seconds, and
the run rows written. tests/lab/test_pull_fleet.py runs the same with a few nodes.
"""

from __future__ import annotations

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


class PullFleet:
    """A signed repository served to lab nodes over git://, and pulls on all of them."""

    def __init__(self, work: Path, nodes: Sequence[Any]) -> None:
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
            done = node.run([sys.executable, "-m", "converge", "pull", self.url(node),
                             "--allowed-signers", "/etc/converge/signers"], timeout=600)
            return node.name, done.returncode, done.stdout + done.stderr

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=min(64, len(self.nodes))) as pool:
            results = list(pool.map(pull, self.nodes))
        return time.perf_counter() - started, results

    def applied(self) -> Dict[str, str]:
        return {node.name: node.run(["cat", "/etc/pulled"]).stdout.strip()
                for node in self.nodes}

    def close(self) -> None:
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
        fleet = PullFleet(work, nodes)
        try:
            fleet.commit("v1")
            seconds, results = fleet.pull_all()
            failed = [(name, out) for name, code, out in results if code != 0]
            assert not failed, failed[:3]
            assert set(fleet.applied().values()) == {"v1"}
            print("signed commit applied and recorded by all %d nodes: %.2fs "
                  "(%.0f ms per node; each node's first converge compiles its bytecode)"
                  % (count, seconds, 1000 * seconds / count))
            seconds, results = fleet.pull_all()
            print("no-op pull on all %d nodes: %.2fs (%.0f ms per node)"
                  % (count, seconds, 1000 * seconds / count))
            sha = fleet.commit("v2", key="stranger")
            seconds, results = fleet.pull_all()
            refused = [name for name, code, out in results
                       if code == 1 and "commit %s" % sha[:12] in out and "refused" in out]
            assert len(refused) == count, [r for r in results if r[0] not in refused][:3]
            assert set(fleet.applied().values()) == {"v1"}
            print("commit by an unknown key refused and recorded by all %d nodes: %.2fs"
                  % (count, seconds))
            rows = sum(int(node.run([sys.executable, "-m", "converge", "runs", "--json"],
                                    env={"PYTHONDONTWRITEBYTECODE": "1"}).stdout.count(
                                        '"kind": "pull"')) for node in nodes[:1])
            print("run rows on the first node: %d (3 pulls)" % rows)
        finally:
            fleet.close()
            lab.down()


if __name__ == "__main__":
    main()
