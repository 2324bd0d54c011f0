"""The benchmark's workloads exist for all four tools, converge's compile, and the
harness plans the runs it says it does. Nothing here is timed or runs a peer."""

from __future__ import annotations

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
