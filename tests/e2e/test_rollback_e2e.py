"""Rollback of real system state in lab nodes, through the real CLI: sysctls at
runtime and persisted, root's crontab through crontab(1), a cron.d file, the
oom_score_adj of a running process, a package installed with apt-get; and over
SSH with ``converge rollback -i``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Dict, List

import pytest

from converge.lab import Lab, Node
from converge.lab.idempotence import WORKDIR, apply_in_node, place_recipe

pytestmark = pytest.mark.lab

RECIPE = """\
from converge import cron, oom_protect, package, sysctl
package("cvg-rollback")
sysctl("vm.panic_on_oom", 1)
sysctl("net.ipv4.ip_forward", 1, conf_file="60-router.conf")
cron("collect", minute="*/10", command="/usr/lib/sysstat/sa1 1 1")
cron("tick", minute="*/5", command="/bin/true", cron_file="ticks")
oom_protect("sleepers", pattern="^sleep 4242[.]7$", score_adj=300)
"""


def sh(node: Node, script: str) -> str:
    done = node.run(["sh", "-c", script])
    assert done.returncode == 0, done.stderr
    return done.stdout


def state(node: Node, sleeper: str) -> Dict[str, str]:
    """Everything RECIPE touches, as the node shows it."""
    return {
        "panic_on_oom": sh(node, "cat /proc/sys/vm/panic_on_oom"),
        "ip_forward": sh(node, "cat /proc/sys/net/ipv4/ip_forward"),
        "sysctl.d": sh(node, "ls /etc/sysctl.d; cat /etc/sysctl.d/60-router.conf"),
        "crontab": sh(node, "crontab -u root -l 2>/dev/null || true"),
        "cron.d": sh(node, "ls /etc/cron.d"),
        "oom": sh(node, "cat /proc/%s/oom_score_adj" % sleeper),
        "package": sh(node, "dpkg-query -W -f='${db:Status-Abbrev}' cvg-rollback 2>/dev/null "
                            "| grep -q '^ii' && echo installed || echo absent").strip(),
    }


def converge_in(node: Node, *args: str) -> subprocess.CompletedProcess:
    return node.run([sys.executable, "-m", "converge", *args],
                    env={"PYTHONDONTWRITEBYTECODE": "1"}, timeout=300)


def test_rollback_of_real_state_in_a_node(lab: Lab, lab_node: Node, tmp_path: Path) -> None:
    lab.repo.ensure()
    lab.repo.build_deb("cvg-rollback", "1.0", files={"/usr/share/cvg/rollback": b"r\n"})
    lab.repo.index()
    sh(lab_node, "apt-get update -qq")
    sh(lab_node, "printf '# router\\n' > /etc/sysctl.d/60-router.conf")
    sh(lab_node, "printf '0 1 * * * /bin/echo keep\\n' | crontab -u root -")
    sh(lab_node, "sleep 4242.7 >/dev/null 2>&1 </dev/null &")
    sleeper = sh(lab_node, "pgrep -x -f 'sleep 4242.7'").strip()
    before = state(lab_node, sleeper)
    assert before["package"] == "absent"

    recipe = tmp_path / "recipe.py"
    recipe.write_text(RECIPE)
    lab_node.run(["mkdir", "-p", WORKDIR])
    first = apply_in_node(lab_node, place_recipe(lab_node, recipe), WORKDIR + "/first.json")
    assert first.ok and len(first.with_status("updated")) == 6, first.stdout + first.stderr
    applied = state(lab_node, sleeper)
    assert applied["oom"] == "300\n" and applied["package"] == "installed"
    assert "converge-oom-sleepers" in applied["cron.d"]

    # packages it installed are removed only when confirmed (no terminal here)
    refused = converge_in(lab_node, "rollback")
    assert refused.returncode == 1
    assert "would remove packages: cvg-rollback; nothing was changed" in refused.stderr
    assert "confirm with --yes" in refused.stderr
    assert state(lab_node, sleeper) == applied

    done = converge_in(lab_node, "rollback", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "  - set vm.panic_on_oom from 1 to 0" in done.stdout
    assert "* package[cvg-rollback] action remove" in done.stdout
    assert "  - set oom_score_adj of pid %s (sleep 4242.7; user root) from 300 to %s" % (
        sleeper, before["oom"].strip()) in done.stdout
    assert state(lab_node, sleeper) == before

    again = converge_in(lab_node, "rollback", "--yes")
    assert again.returncode == 0
    assert "action" in again.stdout and "  - " not in again.stdout, again.stdout
    runs = json.loads(converge_in(lab_node, "history", "--json").stdout)
    assert [(r["kind"], r["of"]) for r in runs] == [
        ("apply", None), ("rollback", runs[0]["id"]), ("rollback", runs[0]["id"])]
    modes = sh(lab_node, "stat -c '%a %n' /var/lib/converge/runs /var/lib/converge/backup "
                         "/var/lib/converge/runs/*.json")
    assert {line.split()[0] for line in modes.splitlines()} == {"700", "600"}, modes


SSH_RECIPE = """\
from converge import directory, file, sysctl
directory("/srv/app")
file("/srv/app/config", content="who = ssh\\n", mode="0640")
file("/etc/motd", content="pushed\\n")
sysctl("vm.swappiness", 17)
"""


def push(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "converge", *args], capture_output=True,
                          text=True, cwd=tmp_path, timeout=120, stdin=subprocess.DEVNULL,
                          env={**os.environ, "COLUMNS": "200"})


def test_rollback_over_ssh(lab: Lab, lab_node: Node, tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(json.dumps({"hosts": {lab_node.name: {
        "address": lab_node.address, "user": "root", "key": str(lab.key_path),
        "known_hosts": str(lab.known_hosts_path)}}}))
    (tmp_path / "recipe.py").write_text(textwrap.dedent(SSH_RECIPE))
    lab_node.write_file("/etc/motd", b"welcome\n", 0o600)
    swappiness = lab_node.read_file("/proc/sys/vm/swappiness")
    applied = push(tmp_path, "apply", "recipe.py", "-i", str(inventory))
    assert applied.returncode == 0, applied.stdout + applied.stderr

    history = push(tmp_path, "history", "-i", str(inventory))
    assert history.returncode == 0, history.stderr
    lines: List[str] = history.stdout.splitlines()
    assert lines[0] == lab_node.name and " apply  4 changed, 0 failed  recipe.py" in lines[1]

    lab_node.write_file("/srv/app/config", b"edited on the node\n", 0o640)
    refused = push(tmp_path, "rollback", "-i", str(inventory))
    assert refused.returncode == 1
    assert "/srv/app/config: content is now" in refused.stdout + refused.stderr
    assert lab_node.read_file("/etc/motd") == b"pushed\n"

    forced = push(tmp_path, "rollback", "--force", "-i", str(inventory))
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert "- delete file /srv/app/config" in forced.stdout
    assert "- delete directory /srv/app" in forced.stdout
    assert lab_node.read_file("/etc/motd") == b"welcome\n"
    assert lab_node.run(["stat", "-c", "%a", "/etc/motd"]).stdout == "600\n"
    assert lab_node.read_file("/proc/sys/vm/swappiness") == swappiness
    assert lab_node.run(["test", "-e", "/srv/app"]).returncode == 1

    again = push(tmp_path, "rollback", "-i", str(inventory))
    assert again.returncode == 0, again.stdout + again.stderr
    assert re.search(r"^\S+ +ok  0 updated, \d+ up to date, 0 failed", again.stdout, re.M), \
        again.stdout
