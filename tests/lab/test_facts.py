"""Facts of a real lab node, read over SSH: its address (no default route in a node,
so Ohai's fallback: the first global IPv4 address), interfaces, mounts, that it is
a container, and custom facts from /etc/converge/facts.d (JSON, YAML, a program;
a file another user can write is refused)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict

import pytest

from converge.lab import Lab, Node

pytestmark = pytest.mark.lab

SETUP = """\
set -e
mkdir -p /etc/converge/facts.d
cd /etc/converge/facts.d
echo '{"role": "db", "replicas": 2}' > app.json
printf 'row: 4\\nracks: [a, b]\\n' > rack.yaml
printf '#!/bin/sh\\necho "{\\\\"version\\\\": \\\\"1.2.3\\\\"}"\\n' > release
chmod 0755 release
printf '#!/bin/sh\\necho broken >&2\\nexit 3\\n' > failing
chmod 0755 failing
useradd -m alice
echo '{"role": "root-owned? no"}' > planted.json
chown alice planted.json
chmod 0644 app.json rack.yaml planted.json
"""

RECIPE = """\
from converge import file
file("/etc/node-facts", content="%s %s %s\\n" % (node.ipaddress, node.local.app.role,
                                                 node.local.rack.row))
"""


def converge(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "converge", *args], cwd=cwd, text=True,
                          capture_output=True, timeout=120, stdin=subprocess.DEVNULL,
                          env=dict(os.environ))


def _inventory(lab: Lab, node: Node, path: Path) -> None:
    path.write_text(json.dumps({"hosts": {node.name: {
        "address": node.address, "user": "root", "key": str(lab.key_path),
        "known_hosts": str(lab.known_hosts_path)}}}))


def test_facts_of_a_node(lab: Lab, lab_node: Node, tmp_path: Path) -> None:
    done = lab_node.run(["sh", "-c", SETUP])
    assert done.returncode == 0, done.stderr
    _inventory(lab, lab_node, tmp_path / "inventory.yml")
    shown = converge("facts", "-i", "inventory.yml", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    facts: Dict[str, Any] = json.loads(shown.stdout)[lab_node.name]
    assert facts["ipaddress"] == lab_node.address
    assert facts["default_route"] is None
    [name] = [n for n, e in facts["interfaces"].items()
              if any(a["address"] == lab_node.address for a in e["ipv4"])]
    link = facts["interfaces"][name]
    assert link["mac"] == facts["macaddress"] and len(link["mac"].split(":")) == 6
    assert link["ipv4"][0]["prefix"] == 30
    assert facts["interfaces"]["lo"]["ipv4"][0]["address"] == "127.0.0.1"
    assert any(m["mount_point"] == "/proc" and m["fstype"] == "proc"
               for m in facts["mounts"])
    assert facts["container"] is False or facts["virtualization"]["container"]
    local = facts["local"]
    assert local["app"] == {"role": "db", "replicas": 2}
    assert local["rack"] == {"row": 4, "racks": ["a", "b"]}
    assert local["release"] == {"version": "1.2.3"}
    assert local["failing"]["error"].startswith(
        "/etc/converge/facts.d/failing exited 3: broken")
    assert "not owned by root" in local["planted"]["error"]

    (tmp_path / "recipe.py").write_text(RECIPE)
    pushed = converge("apply", "recipe.py", "-i", "inventory.yml", cwd=tmp_path)
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    assert lab_node.read_file("/etc/node-facts") == ("%s db 4\n" % lab_node.address).encode()


def test_an_unreachable_host_is_an_error_entry(tmp_path: Path) -> None:
    (tmp_path / "inventory.yml").write_text(json.dumps({"hosts": {"gone": {
        "address": "127.0.0.1", "port": 1}}}))
    shown = converge("facts", "-i", "inventory.yml", cwd=tmp_path)
    assert shown.returncode == 1
    assert "Connection refused" in json.loads(shown.stdout)["gone"]["error"]
