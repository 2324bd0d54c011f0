"""--profile over SSH to a lab node: every phase of a real push measured, non-negative
and adding up; the table after the recap; the same figures in --json; plan and
check take it too."""

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

RECIPE = """\
from converge import directory, file, sysctl
directory("/srv/prof")
for i in range(6):
    file("/srv/prof/f%d" % i, content="%d\\n" % i)
sysctl("vm.swappiness", 23)
"""
EPSILON = 0.005  # rounding of each figure to 0.1 ms


def converge(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "converge", *args], capture_output=True,
                          text=True, cwd=tmp_path, timeout=120, stdin=subprocess.DEVNULL,
                          env={**os.environ, "COLUMNS": "200"})


def check_phases(profile: Dict[str, Any], report: Dict[str, Any]) -> None:
    for key in ("connect", "auth", "agent_start", "compile", "run", "setup", "resources",
                "report", "total"):
        assert isinstance(profile[key], float) and profile[key] >= 0, (key, profile)
    assert profile["connect"] > 0 and profile["auth"] > 0 and profile["agent_start"] > 0
    assert isinstance(profile["agent_cpu"], float) and 0 < profile["agent_cpu"] < 10
    times = [r["time"] for r in report["resources"]]
    assert abs(profile["resources"] - sum(times)) <= EPSILON
    assert [s["id"] for s in profile["slowest"]] == [
        r["id"] for r in sorted(report["resources"], key=lambda r: -r["time"])][:5]
    assert profile["setup"] + profile["resources"] <= profile["run"] + EPSILON
    start = profile["connect"] + profile["auth"] + profile["agent_start"]
    assert start + profile["run"] + profile["report"] <= profile["total"] + EPSILON
    assert profile["compile"] + profile["run"] + profile["report"] <= profile["total"] + EPSILON


def test_apply_profile_over_ssh(lab: Lab, lab_node: Node, tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(json.dumps({"hosts": {"web1": {
        "address": lab_node.address, "user": "root", "key": str(lab.key_path),
        "known_hosts": str(lab.known_hosts_path)}}}))
    (tmp_path / "recipe.py").write_text(RECIPE)
    bundles = []
    for run in ("first", "second"):
        done = converge(tmp_path, "apply", "recipe.py", "-i", str(inventory), "--profile",
                        "--json", "report-%s.json" % run)
        assert done.returncode == 0, done.stdout + done.stderr
        report = json.loads((tmp_path / ("report-%s.json" % run)).read_text())
        entry = report["hosts"]["web1"]
        check_phases(entry["profile"], entry)
        bundles.append(entry["profile"]["bundle_sent"])
        # the table comes after the recap: a head, then the host's row and its slowest
        out = done.stdout
        assert out.index("RECAP") < out.index("\nPROFILE (seconds")
        table = out[out.index("\nPROFILE (seconds"):].splitlines()[1:]
        assert table[1].split()[0] == "host" and table[2].split()[0] == "web1"
        shown = [float(x) for x in table[2].split()[1:]]
        prof = entry["profile"]
        assert shown == pytest.approx([prof[k] for k in (
            "connect", "auth", "agent_start", "compile", "setup", "resources", "report",
            "total")], abs=0.0011)
        assert table[3].startswith("  slowest: " + prof["slowest"][0]["id"])
    assert bundles == [True, False]  # the first run shipped the agent, the second found it


def test_plan_and_check_take_profile(lab: Lab, lab_node: Node, tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(json.dumps({"hosts": {"web1": {
        "address": lab_node.address, "user": "root", "key": str(lab.key_path),
        "known_hosts": str(lab.known_hosts_path)}}}))
    (tmp_path / "recipe.py").write_text(RECIPE)
    for command, code in (("plan", 0), ("check", 2)):
        done = converge(tmp_path, command, "recipe.py", "-i", str(inventory), "--profile",
                        "--json", "-")
        assert done.returncode == code, done.stderr
        entry = json.loads(done.stdout)["hosts"]["web1"]
        check_phases(entry["profile"], entry)
        assert "\nPROFILE (seconds" in done.stderr  # --json -: the console is stderr
