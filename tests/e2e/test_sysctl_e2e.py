"""sysctl in a lab node: the node's own /proc/sys copy, real /etc/sysctl.d files."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from converge.lab import Node
from converge.lab.idempotence import (
    IdempotenceResult,
    apply_in_node,
    check_idempotence,
    place_recipe,
)

pytestmark = pytest.mark.lab

RECIPE = """\
from converge import sysctl
sysctl("vm.panic_on_oom", 1)
sysctl("net.ipv4.ip_forward", 1, conf_file="60-router.conf", comment="route for the lab")
sysctl("net.ipv4.ip_local_port_range", [20000, 40000], conf_file="60-router.conf")
"""

BROKEN = """\
from converge import sysctl
sysctl("net.ipv4.ip_forwrd", 1)
sysctl("net.ipv4.ip_local_port_range", [40000, 20000])
sysctl("fs.file-nr", "1 2 3")
sysctl("vm.swappiness", 10, persist=False)
"""


def test_sysctl_sets_and_persists(lab_node: Node, tmp_path: Path,
                                  assert_idempotent: Callable[..., IdempotenceResult]) -> None:
    host_panic = Path("/proc/sys/vm/panic_on_oom").read_text()
    recipe = tmp_path / "recipe.py"
    recipe.write_text(RECIPE)
    result = assert_idempotent(lab_node, recipe)
    first = {r["id"]: r["changes"] for r in result.first.resources()}
    assert first["sysctl[vm.panic_on_oom]"][-1] == (
        "persist vm.panic_on_oom = 1 in /etc/sysctl.d/99-converge-vm.panic_on_oom.conf")
    assert first["sysctl[net.ipv4.ip_local_port_range]"][0].startswith(
        "set net.ipv4.ip_local_port_range from ")
    assert [r["status"] for r in result.second.resources()] == ["up_to_date"] * 3
    assert lab_node.read_file("/proc/sys/vm/panic_on_oom") == b"1\n"
    assert lab_node.read_file("/proc/sys/net/ipv4/ip_forward") == b"1\n"
    assert lab_node.read_file("/proc/sys/net/ipv4/ip_local_port_range") == b"20000\t40000\n"
    assert lab_node.read_file("/etc/sysctl.d/60-router.conf") == (
        b"# route for the lab\nnet.ipv4.ip_forward = 1\n"
        b"net.ipv4.ip_local_port_range = 20000 40000\n")
    # what was persisted is what sysctl(8) itself would load at boot
    check = lab_node.run(["sysctl", "-p", "/etc/sysctl.d/60-router.conf"])
    assert check.returncode == 0, check.stderr
    assert Path("/proc/sys/vm/panic_on_oom").read_text() == host_panic


def test_sysctl_target_errors(lab_node: Node, tmp_path: Path) -> None:
    recipe = tmp_path / "broken.py"
    recipe.write_text(BROKEN)
    lab_node.run(["mkdir", "-p", "/tmp/converge-test"])
    run = apply_in_node(lab_node, place_recipe(lab_node, recipe), "/tmp/converge-test/r.json")
    assert run.returncode == 1
    results = {r["id"]: r for r in run.resources()}
    assert results["sysctl[net.ipv4.ip_forwrd]"]["error"] == (
        "no such kernel parameter net.ipv4.ip_forwrd\ndid you mean net.ipv4.ip_forward?")
    # /proc/sys/net is the kernel's own (per network namespace): a real refusal
    assert results["sysctl[net.ipv4.ip_local_port_range]"]["error"] == (
        "the kernel refused net.ipv4.ip_local_port_range = 40000 20000: "
        "Invalid argument (EINVAL); nothing was persisted")
    assert results["sysctl[fs.file-nr]"]["error"].startswith(
        "kernel parameter fs.file-nr is read-only")
    assert results["sysctl[vm.swappiness]"]["status"] == "updated"
    listing = lab_node.run(["ls", "/etc/sysctl.d"]).stdout.split()
    assert not [name for name in listing if name.startswith("99-converge-")]


def test_converge_test_cannot_bless_a_value_the_kernel_refuses(lab_node: Node,
                                                                tmp_path: Path) -> None:
    """A node's /proc/sys/kernel is a copy that takes any text; converge refuses text for
    a parameter that holds an integer there, as the kernel would (EINVAL)."""
    key = "kernel.sched_autogroup_enabled"
    proc = "/proc/sys/" + key.replace(".", "/")
    before = lab_node.read_file(proc)
    recipe = tmp_path / "recipe.py"
    recipe.write_text(f'from converge import sysctl\nsysctl("{key}", "high")\n')
    result = check_idempotence(lab_node, recipe)
    assert not result.ok and not result.first.ok
    failed, = result.first.with_status("failed")
    assert failed["error"].startswith(f"{key} takes integers (it is {before.decode().strip()} "
                                      "now); high is not one, so the kernel would refuse it")
    assert lab_node.read_file(proc) == before
    assert lab_node.run(["test", "-e", f"/etc/sysctl.d/99-converge-{key}.conf"]).returncode == 1
