"""Pull mode for a fleet (benchmarks/pull_bench.py with a few nodes): a git server
(git daemon on the lab's own addresses) serves one repository; a commit signed by
the trusted key is applied by every node, one signed by an unknown key is refused
by every node, which keep what they had; every pull is reported to a shared
PostgreSQL run store (a throwaway cluster on the same addresses)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.lab

BENCH = Path(__file__).resolve().parent.parent.parent / "benchmarks" / "pull_bench.py"


def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pull_bench", BENCH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["pull_bench"] = module
    spec.loader.exec_module(module)
    return module


def test_every_node_applies_the_signed_commit_and_refuses_the_stranger(
        lab, tmp_path: Path) -> None:
    nodes = lab.up(4)
    fleet = bench().PullFleet(tmp_path, nodes, store=True)
    try:
        good = fleet.commit("v1")
        before = fleet.store.stats()
        _, results = fleet.pull_all()
        assert [code for _, code, _ in results] == [0] * 4, results
        load = {k: v - before[k] for k, v in fleet.store.stats().items()}
        # one connection per node (and the one reading these figures), runs rows written
        assert load["sessions"] == 4 + 1 and load["rows_inserted"] >= 4 * 3, load
        assert set(fleet.applied().values()) == {"v1"}
        sha = fleet.commit("v2", key="stranger")
        _, results = fleet.pull_all()
        for name, code, out in results:
            assert code == 1 and "commit %s of git://" % sha[:12] in out, (name, out)
            assert "is refused: it is signed by a key the allowed signers do not list" in out
        assert set(fleet.applied().values()) == {"v1"}
        # every node reported both pulls to the shared PostgreSQL store
        runs = fleet.store.pull_runs()
        by_host = {node.name: [run for run in runs if node.name in run["hosts"]]
                   for node in nodes}
        for name, found in by_host.items():
            assert [run["result"] for run in found] == ["failed", "changed"], (name, found)
            assert "is refused" in found[0]["hosts"][name]["error"]
            assert found[1]["git_commit"] == good
    finally:
        fleet.close()
        lab.down([node.name for node in nodes])
