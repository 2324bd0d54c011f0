"""Fleet operations over SSH in lab nodes: rolling batches with a failure budget
(later batches never start, exit 3, the recap says so), --limit @failed from the
run store, run_once per batch, and tags."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

from converge.lab import Lab, Node

pytestmark = pytest.mark.lab

RECIPE = """\
from converge import execute, file
file("/etc/app.conf", content="v1\\n", tags="config")
execute(["sh", "-c", "echo broken >&2; exit 1"], only_if=lambda: bool(attrs.broken),
        tags="config")
execute(["sh", "-c", "hostname > /etc/migrated"], creates="/etc/migrated", run_once=True)
file("/etc/web.conf", content="web\\n", tags=["web"])
"""


@pytest.fixture
def four(lab: Lab) -> Iterator[List[Node]]:
    nodes = lab.up(4)
    try:
        yield nodes
    finally:
        lab.down([n.name for n in nodes])


def migrated(nodes: List[Node]) -> List[str]:
    return [n.name for n in nodes if n.run(["test", "-e", "/etc/migrated"]).returncode == 0]


def converge(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "converge", *args], cwd=cwd, text=True,
                          capture_output=True, timeout=300, stdin=subprocess.DEVNULL,
                          env=dict(os.environ))


def test_batches_budget_failed_hosts_run_once_and_tags(lab: Lab, four: List[Node],
                                                      tmp_path: Path) -> None:
    names = [n.name for n in four]
    hosts: Dict[str, Any] = {n.name: {"address": n.address, "vars": {"broken": i < 2}}
                             for i, n in enumerate(four)}
    (tmp_path / "inventory.yml").write_text(json.dumps({
        "vars": {"user": "root", "key": str(lab.key_path),
                 "known_hosts": str(lab.known_hosts_path)}, "hosts": hosts}))
    (tmp_path / "recipe.py").write_text(RECIPE)
    inv = ["-i", "inventory.yml"]

    first = converge("apply", "recipe.py", *inv, "--serial", "1", "--max-fail", "1",
                     cwd=tmp_path)
    assert first.returncode == 3, first.stdout + first.stderr
    out = first.stdout
    assert "BATCH 1/4: %s" % names[0] in out and "BATCH 2/4: %s" % names[1] in out
    assert "BATCH 3/4" not in out
    for name in names[2:]:
        assert "%s  not started (the run was aborted by --max-fail)" % name in out
    assert "ABORTED" in out.splitlines()[-1]
    for node in four[2:]:  # never touched
        assert node.run(["test", "-e", "/etc/app.conf"]).returncode == 1
    assert migrated(four) == names[:2]  # batches of one: run_once ran in each
    for node in four:
        node.run(["rm", "-f", "/etc/migrated"]).check_returncode()

    retry = converge("apply", "recipe.py", *inv, "--limit", "@failed", "-a", "broken=",
                     "--serial", "2", cwd=tmp_path)
    assert retry.returncode == 0, retry.stdout + retry.stderr
    assert "BATCH 1/2: %s, %s" % (names[0], names[1]) in retry.stdout
    assert "BATCH 2/2: %s, %s" % (names[2], names[3]) in retry.stdout
    assert migrated(four) == [names[0], names[2]]  # the first host of each batch
    assert "skipped due to run_once: runs on %s" % names[0] in retry.stdout

    nothing = converge("apply", "recipe.py", *inv, "--limit", "@failed", cwd=tmp_path)
    assert nothing.returncode == 1
    assert "had no failed, unreachable or never started host" in nothing.stderr

    for node in four:
        node.run(["rm", "-f", "/etc/web.conf", "/etc/app.conf"]).check_returncode()
    tagged = converge("apply", "recipe.py", *inv, "--tags", "web", "-a", "broken=",
                      cwd=tmp_path)
    assert tagged.returncode == 0, tagged.stdout + tagged.stderr
    for node in four:
        assert node.read_file("/etc/web.conf") == b"web\n"
        assert node.run(["test", "-e", "/etc/app.conf"]).returncode == 1
    listed = converge("plan", "recipe.py", *inv, "--list-tags", cwd=tmp_path)
    assert listed.stdout.split() == ["config", "web"]
    unknown = converge("plan", "recipe.py", *inv, "--tags", "dbs", cwd=tmp_path)
    assert unknown.returncode == 1
    assert "--tags dbs: no resource has this tag (tags in this recipe: config, web)" in \
        unknown.stderr
