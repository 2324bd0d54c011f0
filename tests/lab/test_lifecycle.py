"""Nodes come up answering SSH, are found by other processes, and go leaving nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import pytest
import yaml

from converge.lab import Lab, LabError, Node
from tests.lab.links import ifindex, link_gone

pytestmark = pytest.mark.lab


def cli(lab: Lab, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CONVERGE_LAB_DIR": str(lab.directory)}
    return subprocess.run([sys.executable, "-m", "converge", "lab", *args],
                          capture_output=True, text=True, env=env)


def mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as info:
        return [line.split()[4] for line in info if line.split()[4].startswith(str(path))]


def assert_gone(lab: Lab, node: Node, index: Optional[int]) -> None:
    """Nothing of NODE is left; INDEX: its link's interface index while it ran."""
    assert not node.alive
    assert link_gone(node.link, index)
    assert mounts_under(lab.directory) == []
    assert not (lab.directory / "nodes" / node.name).exists()
    assert node.name not in [n.name for n in lab.nodes()]
    assert node.address not in lab.known_hosts_path.read_text()
    assert node.name not in lab.inventory_path().read_text()


def wait_until(predicate, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_down_leaves_nothing_behind(lab: Lab) -> None:
    nodes = lab.up(2)
    assert all(node.alive for node in nodes)
    indexes = [ifindex(node.link) for node in nodes]
    assert None not in indexes
    assert lab.down([node.name for node in nodes]) == [node.name for node in nodes]
    for node, index in zip(nodes, indexes, strict=True):
        assert_gone(lab, node, index)


def test_down_after_node_processes_were_killed(lab: Lab) -> None:
    node = lab.up(1)[0]
    index = ifindex(node.link)
    os.kill(node.pid, signal.SIGKILL)
    assert wait_until(lambda: not node.alive)
    with pytest.raises(LabError, match=f"lab node {node.name} died"):
        node.run(["true"])
    assert [n.alive for n in lab.nodes() if n.name == node.name] == [False]
    lab.down([node.name])
    assert_gone(lab, node, index)


def test_separate_processes_find_the_nodes(lab: Lab) -> None:
    node = lab.up(1)[0]
    index = ifindex(node.link)
    listed = cli(lab, "ls")
    assert listed.returncode == 0
    assert f"{node.name}\t{node.address}\t{node.pid}\tup" in listed.stdout
    removed = cli(lab, "down", node.name)
    assert removed.returncode == 0, removed.stderr
    assert_gone(lab, node, index)


def test_inventory_describes_running_nodes(lab: Lab, lab_node: Node) -> None:
    printed = cli(lab, "inventory")
    assert printed.returncode == 0
    inventory = yaml.safe_load(Path(printed.stdout.strip()).read_text())
    host = inventory["hosts"][lab_node.name]
    assert host == {"address": lab_node.address, "port": 22, "user": "root",
                    "key": str(lab.key_path), "known_hosts": str(lab.known_hosts_path)}
    assert inventory["vars"]["known_hosts"] == str(lab.known_hosts_path)


def test_ssh_with_lab_key_verifies_host_key(lab: Lab, lab_node: Node) -> None:
    done = subprocess.run(lab.ssh_command(lab_node, ["hostname"]), capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == lab_node.name
    via_cli = cli(lab, "ssh", lab_node.name, "cat", "/etc/hostname")
    assert via_cli.stdout.strip() == lab_node.name


def test_ssh_refuses_a_wrong_host_key(lab: Lab, lab_node: Node, tmp_path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")],
                   check=True)
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"{lab_node.address} {(tmp_path / 'k.pub').read_text()}")
    argv = [a.replace(str(lab.known_hosts_path), str(wrong))
            for a in lab.ssh_command(lab_node, ["true"])]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert done.returncode == 255
    assert "Host key verification failed" in done.stderr


def test_sshd_accepts_only_the_lab_key(lab: Lab, lab_node: Node, tmp_path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")],
                   check=True)
    argv = [a.replace(str(lab.key_path), str(tmp_path / "k"))
            for a in lab.ssh_command(lab_node, ["true"])]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert done.returncode == 255
    assert "Permission denied" in done.stderr


def test_nodes_get_distinct_names_and_slots(lab: Lab) -> None:
    nodes = lab.up(3)
    try:
        assert len({n.name for n in nodes}) == 3
        assert len({n.address for n in nodes}) == 3
        for node in nodes:
            assert node.run(["hostname"]).stdout.strip() == node.name
    finally:
        lab.down([n.name for n in nodes])


def test_many_nodes_under_a_low_open_file_limit(lab: Lab) -> None:
    """Each node starting takes open files (ssh-keygen's pipe, a probe of its sshd, a
    go pipe in the spawner): the lab raises its soft limit to what N nodes need."""
    import resource

    soft = 24  # below the 20 nodes' needs; the hard limit is left as it is

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE,
                           (soft, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    before = {n.name for n in lab.nodes()}
    env = {**os.environ, "CONVERGE_LAB_DIR": str(lab.directory)}
    try:
        done = subprocess.run([sys.executable, "-m", "converge", "lab", "up", "20"],
                              capture_output=True, text=True, env=env, preexec_fn=low_limit,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        started = [line.split("\t")[0] for line in done.stdout.splitlines()]
        assert len(started) == 20
    finally:
        lab.down([n.name for n in lab.nodes() if n.name not in before])


def test_a_hard_open_file_limit_too_low_is_said(lab: Lab) -> None:
    import resource

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (24, 24))

    env = {**os.environ, "CONVERGE_LAB_DIR": str(lab.directory)}
    done = subprocess.run([sys.executable, "-m", "converge", "lab", "up", "20"],
                          capture_output=True, text=True, env=env, preexec_fn=low_limit,
                          timeout=120)
    assert done.returncode == 1
    assert "starting 20 nodes takes about 104 open files, and this process may open 24 " \
           "(ulimit -Hn)" in done.stderr, done.stderr
