"""A sensitive file pushed over SSH: its content travels in the plan, over the
agent's standard input, never in a process's argv. While the agent runs (held by
an execute that waits on a fifo in the node until the test has looked), every
command line in the node and on the controller is scanned for the secret."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

from converge.lab import Lab, Node

pytestmark = pytest.mark.lab

RECIPE = """\
from converge import directory, execute, file, template
directory("/srv/app")
file("/srv/app/db.conf", content="password=%s\\n" % attrs["secret"], mode="0600",
     sensitive=True)
template("/srv/app/token.conf", source="token.j2", variables={"token": attrs["secret"]},
         sensitive=True)
# hold the agent: say it is here, then wait for the test (fixed text, no user value)
execute(["sh", "-c", "echo here > /tmp/ready && head -c 1 /tmp/gate"])
"""

# Every process's command line, as JSON: {pid: [argv...]}.
SCAN = """\
import json, os
out = {}
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as fh:
                out[pid] = fh.read().decode("utf-8", "replace").split("\\0")
        except OSError:
            pass
print(json.dumps(out))
"""


def host_cmdlines() -> List[str]:
    lines = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as fh:
                    lines.append(fh.read().decode("utf-8", "replace"))
            except OSError:
                pass
    return lines


def test_a_sensitive_plan_never_reaches_argv(lab: Lab, lab_node: Node, tmp_path: Path) -> None:
    secret = "S3CRET-%s" % os.urandom(8).hex()
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates/token.j2").write_text("token = {{ token }}\n")
    (tmp_path / "recipe.py").write_text(RECIPE)
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(json.dumps({"hosts": {lab_node.name: {
        "address": lab_node.address, "user": "root", "key": str(lab.key_path),
        "known_hosts": str(lab.known_hosts_path), "vars": {"secret": secret}}}}))
    for fifo in ("/tmp/ready", "/tmp/gate"):
        lab_node.run(["mkfifo", fifo]).check_returncode()
    argv = [sys.executable, "-m", "converge", "apply", "recipe.py", "-i", "inventory.yml"]
    controller = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    released = False
    try:
        # blocks until the agent's execute writes to the fifo: the agent is running
        ready = lab_node.run(["head", "-c", "5", "/tmp/ready"], timeout=120)
        assert ready.stdout == "here\n", ready
        scan = lab_node.run(["python3", "-c", SCAN], timeout=60)
        node_lines = [" ".join(a) for a in json.loads(scan.stdout).values()]
        controller_lines = host_cmdlines()
        # the scan saw the agent (python3 -I -S -c <loader>) and the held command
        assert any("python3" in line and "-c" in line for line in node_lines), node_lines
        assert any("head -c 1 /tmp/gate" in line for line in node_lines), node_lines
        assert any("inventory.yml" in line for line in controller_lines)
        leaked = [line for line in node_lines + controller_lines if secret in line]
        assert leaked == []
        lab_node.run(["sh", "-c", "echo go > /tmp/gate"], timeout=60).check_returncode()
        released = True
        out, err = controller.communicate(timeout=120)
    finally:
        if not released:
            lab_node.run(["sh", "-c", "echo go > /tmp/gate"], timeout=10)
        if controller.poll() is None:
            controller.kill()
            controller.wait()
    assert controller.returncode == 0, out + err
    assert secret not in out + err
    assert "update content in file /srv/app/db.conf (sensitive)" in out
    assert lab_node.read_file("/srv/app/db.conf") == ("password=%s\n" % secret).encode()
    assert lab_node.read_file("/srv/app/token.conf") == ("token = %s\n" % secret).encode()
    journals = lab_node.run(["sh", "-c", "cat /var/lib/converge/runs/*.json"])
    assert journals.returncode == 0
    [journal] = [json.loads(line) for line in journals.stdout.splitlines()]
    assert [r["id"] for r in journal["resources"] if r.get("sensitive")] == [
        "file[/srv/app/db.conf]", "template[/srv/app/token.conf]"]
    assert secret not in journals.stdout
