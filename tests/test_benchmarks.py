"""The benchmark's workloads exist for all four tools, converge's compile, and the
harness plans the runs it says it does. Nothing here is timed or runs a peer."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from converge.recipe import compile_recipe

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
WORKLOADS = BENCHMARKS / "workloads"
FILES = ("converge_recipe.py", "playbook.yml", "pyinfra_deploy.py", "manifest.pp")


@pytest.fixture(scope="module")
def harness() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run", BENCHMARKS / "run.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("workload", ["w1", "w2"])
@pytest.mark.parametrize("name", FILES)
def test_each_tool_has_each_workload(workload: str, name: str) -> None:
    path = WORKLOADS / workload / name
    assert path.is_file()
    if name.endswith(".yml"):
        plays = yaml.safe_load(path.read_text())
        assert plays[0]["hosts"] == "all" and plays[0]["gather_facts"] is False
    elif name.endswith(".py"):
        compile(path.read_text(), str(path), "exec")


def test_w2_templates_exist_for_jinja_and_puppet() -> None:
    assert (WORKLOADS / "w2/templates/file.conf.j2").is_file()
    assert (WORKLOADS / "w2/modules/bench/templates/file.conf.epp").is_file()


@pytest.mark.parametrize("workload, steps", [("w1", 28), ("w2", 201)])
def test_converge_recipes_compile(workload: str, steps: int) -> None:
    plan = compile_recipe(WORKLOADS / workload / "converge_recipe.py")
    assert len(plan.steps) == steps
    assert not plan.options["facts_used"]
    if workload == "w2":
        worker = next(s for s in plan.steps if s.id == "template[/etc/bench-w2/worker-137.conf]")
        assert "port = 8137\n" in worker.props["content"]


def test_quick_plans_local_one_node_and_a_converge_only_ten(harness: ModuleType) -> None:
    args = harness.parse(["--quick", "--workloads", "w1"])
    assert args.reps == 1
    assert harness.cases(args) == [
        ("w1", 0, ["converge", "ansible", "pyinfra", "puppet"]),
        ("w1", 1, ["converge", "ansible", "pyinfra", "puppet"]),
        ("w1", 10, ["converge"]),
    ]


def test_ansible_is_limited_to_the_sizes_asked(harness: ModuleType) -> None:
    cases = harness.cases(harness.parse([]))
    ansible = [(w, n) for w, n, tools in cases if "ansible" in tools]
    assert ansible == [("w1", 0), ("w1", 1), ("w1", 10), ("w2", 0), ("w2", 1)]
    assert [(w, n) for w, n, _ in cases] == [
        ("w1", 0), ("w1", 1), ("w1", 10), ("w1", 30), ("w2", 0), ("w2", 1), ("w2", 10), ("w2", 30)]


def test_recaps_are_read_as_each_tool_writes_them(harness: ModuleType) -> None:
    recap = ("PLAY RECAP *****\nnode1 : ok=8    changed=0    unreachable=0    failed=0    "
             "skipped=0\nnode2 : ok=8    changed=1    unreachable=0    failed=0    skipped=0\n")
    assert harness.ANSIBLE_RECAP.findall(recap) == [
        ("node1", "8", "0", "0", "0"), ("node2", "8", "1", "0", "0")]
    total = harness.PYINFRA_TOTAL.search("    Grand total   27   -   -   27   \n")
    assert total and total.groups() == ("27", "-", "-", "27")


@pytest.fixture(scope="module")
def scale() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_scale", BENCHMARKS / "scale_bench.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_scale"] = module
    spec.loader.exec_module(module)
    return module


def test_scale_report_says_whether_growth_is_linear(scale: ModuleType) -> None:
    def sample(wall: float, cpu: float, rss_kb: int, nodes_cpu: float) -> object:
        return scale.Sample(wall, cpu, rss_kb, nodes_cpu, False)

    results = {
        (30, "floor", "noop"): [sample(1.0, 0.6, 50_000, 1.2)],
        (30, "converge", "first"): [sample(10.0, 1.2, 60_000, 16.0)],
        (30, "converge", "noop"): [sample(3.0, 0.6, 55_000, 3.0)],
        (200, "floor", "noop"): [sample(7.0, 4.0, 70_000, 8.0)],
        (200, "converge", "first"): [sample(80.0, 6.0, 100_000, 110.0)],
        (200, "converge", "noop"): [sample(15.0, 3.6, 90_000, 19.0)],
        (200, "pyinfra", "noop"): [sample(60.0, 50.0, 80_000, 90.0)],
    }
    text = scale.report(results, [30, 200], ["converge"], argparse.Namespace(forks=None, reps=1))
    assert "- converge first run: wall x8.00 (WORSE than linear)" in text
    assert "- converge no-op: wall x5.00 (linear or better), controller CPU per host x0.90" \
        in text
    # wall, controller and nodes' CPU per host, peak RSS, against the floor and pyinfra
    assert "| 200 | converge | no-op | 15.00 | 18 | 95 | 88 | 2.14x | 4.0x |" in text
