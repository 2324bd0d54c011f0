"""Named labs: each its own nodes, directory and address range; `converge test` in a
private lab of its own, removed also when interrupted."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from converge.lab import Lab
from tests.lab.links import ifindex, link_gone

pytestmark = pytest.mark.lab


def cli(base: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CONVERGE_LAB_DIR": str(base)}
    return subprocess.run([sys.executable, "-m", "converge", "lab", *args],
                          capture_output=True, text=True, env=env, timeout=120)


def lines(done: subprocess.CompletedProcess) -> list[list[str]]:
    assert done.returncode == 0, done.stderr
    return [line.split("\t") for line in done.stdout.splitlines()]


def test_two_named_labs_never_touch_each_other(lab: Lab, tmp_path: Path) -> None:
    base = tmp_path / "base"
    try:
        alpha = lines(cli(base, "up", "--name", "alpha", "2"))
        beta = lines(cli(base, "up", "--name", "beta", "1"))
        default = lines(cli(base, "up"))
        labs = {name: Lab(base, name=name) for name in ("alpha", "beta")}
        assert (base / "labs" / "alpha" / "state.json").exists()
        assert (base / "labs" / "beta" / "state.json").exists()
        assert [n.name for n in labs["alpha"].nodes()] == ["node1", "node2"]
        assert [n.name for n in labs["beta"].nodes()] == ["node1"]
        ranges = {}
        for name, printed in (("alpha", alpha), ("beta", beta), ("default", default)):
            state = json.loads(((base / "labs" / name) if name != "default" else base)
                               .joinpath("state.json").read_text())
            ranges[name] = ipaddress.IPv4Network(state["network"])
            for _, address in printed:
                assert ipaddress.IPv4Address(address) in ranges[name], (name, address)
        assert not ranges["alpha"].overlaps(ranges["beta"])
        assert not ranges["default"].overlaps(ranges["alpha"])
        assert not ranges["default"].overlaps(ranges["beta"])
        from converge.lab.net import lab_ranges, parse_pool

        assert ranges["alpha"] in lab_ranges(parse_pool("10.213.0.0/16")) or \
            os.environ.get("CONVERGE_LAB_NET")

        # ls: one node a line, its name first; no header
        listed = lines(cli(base, "ls", "--name", "alpha"))
        assert [row[0] for row in listed] == ["node1", "node2"]
        assert all(row[3] == "up" for row in listed)
        # every lab command takes --name
        inventory = cli(base, "inventory", "--name", "beta").stdout.strip()
        assert inventory == str(base / "labs" / "beta" / "inventory.yml")
        ssh = cli(base, "ssh", "--name", "beta", "node1", "hostname")
        assert ssh.returncode == 0 and ssh.stdout.strip() == "node1", ssh.stderr
        # down in one lab leaves the others' nodes running
        beta_node = labs["beta"].node("node1")
        assert cli(base, "down", "--name", "alpha").returncode == 0
        assert labs["alpha"].nodes() == [] and beta_node.alive
        assert Lab(base).node("node1").alive
        assert cli(base, "ls", "--name", "alpha").stderr == "no lab nodes\n"
    finally:
        for name in ("alpha", "beta", None):
            Lab(base, name=name).down()


def test_a_lab_keeps_its_range_while_it_has_nodes(lab: Lab, tmp_path: Path) -> None:
    first = Lab(tmp_path, name="keeper")
    other = Lab(tmp_path, name="other")
    try:
        one, = first.up(1)
        network = json.loads((first.directory / "state.json").read_text())["network"]
        theirs, = other.up(1)
        two, = first.up(1)
        assert ipaddress.IPv4Address(two.address) in ipaddress.IPv4Network(network)
        assert ipaddress.IPv4Address(theirs.address) not in ipaddress.IPv4Network(network)
    finally:
        first.down()
        other.down()


def test_bad_lab_name(tmp_path: Path) -> None:
    done = cli(tmp_path, "ls", "--name", "../escape")
    assert done.returncode == 1
    assert done.stderr.startswith("error: lab name '../escape': use lower-case letters")


SLOW = """\
from converge import execute
execute(["sleep", "120"])
"""


def private_labs(base: Path) -> list[Path]:
    return sorted((base / "labs").glob("test-*")) if (base / "labs").is_dir() else []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_converge_test_removes_its_private_lab_when_interrupted(
        lab: Lab, tmp_path: Path, signum: int) -> None:
    """`converge test` runs in a lab of its own (never the nodes already up), and an
    interrupted test takes that lab down."""
    base = tmp_path / "base"
    theirs, = Lab(base).up(1)
    recipe = tmp_path / "slow.py"
    recipe.write_text(SLOW)
    env = {**os.environ, "CONVERGE_LAB_DIR": str(base)}
    proc = subprocess.Popen([sys.executable, "-m", "converge", "test", str(recipe)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        nodes = []
        while not nodes:  # until its private lab's node runs the recipe
            assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
            for private in private_labs(base):
                nodes = Lab(base, name=private.name).nodes()
            nodes = [n for n in nodes if n.alive and n.run(
                ["pgrep", "-f", "[s]leep 120"]).returncode == 0]
            time.sleep(0.05)
        assert theirs.name == nodes[0].name == "node1" and theirs.pid != nodes[0].pid
        index = ifindex(nodes[0].link)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        Lab(base).down()
    assert proc.returncode == 130, out + err
    assert not nodes[0].alive
    assert link_gone(nodes[0].link, index)
    assert private_labs(base) == []
    assert theirs.alive is False  # taken down by this test's own cleanup, above


def test_private_labs_of_killed_tests_are_reaped(lab: Lab, tmp_path: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    orphan = Lab(tmp_path, name=f"test-{gone.pid}-abcdef")
    node, = orphan.up(1)
    alive = Lab(tmp_path, name=f"test-{os.getpid()}-abcdef")
    mine, = alive.up(1)
    try:
        assert Lab(tmp_path).reap_private() == [orphan.name]
        assert not node.alive and not orphan.directory.exists()
        assert mine.alive
    finally:
        alive.destroy()
        orphan.destroy()
