"""A fleet push to lab nodes is recorded in the run store (SQLite and PostgreSQL
alike), listed by `converge runs`, and its HTML report, opened in a real headless
Chromium (Debian's package, driven through chromedriver), shows every host with
the failed ones first, and a resource's diff when it is clicked. A screenshot is
kept with the test results."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

from converge.lab import Lab, Node

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("CONVERGE_TEST_ARTIFACTS") or REPO / "test-results")

RECIPE = """\
from converge import execute, file
file("/etc/motd", content="welcome to %s\\n" % attrs.get("name", "a node"))
file("/etc/issue.net", content="authorised use only\\n")
if attrs.get("broken"):
    execute(["sh", "-c", "echo 'disk <full> & \\033[31mred' >&2; exit 3"])
"""


@pytest.fixture
def fleet(lab: Lab, tmp_path: Path) -> Iterator[List[Node]]:
    nodes = lab.up(2)
    try:
        yield nodes
    finally:
        lab.down([n.name for n in nodes])


def _inventory(lab: Lab, nodes: List[Node], path: Path) -> None:
    hosts: Dict[str, Any] = {}
    for index, node in enumerate(nodes):
        hosts[node.name] = {"address": node.address, "vars": {"name": node.name,
                                                              "broken": index == 1}}
    hosts["gone"] = {"address": "127.0.0.1", "port": 1}  # nothing listens: unreachable
    path.write_text(json.dumps({"vars": {"user": "root", "key": str(lab.key_path),
                                         "known_hosts": str(lab.known_hosts_path)},
                                "hosts": hosts}))


def converge(*args: str, cwd: Path, env: Dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "converge", *args], cwd=cwd, text=True,
                          capture_output=True, timeout=300, stdin=subprocess.DEVNULL,
                          env={**os.environ, **env})


def test_a_fleet_push_is_recorded_and_reported(lab: Lab, fleet: List[Node], tmp_path: Path,
                                               store_url: str) -> None:
    (tmp_path / "recipe.py").write_text(RECIPE)
    _inventory(lab, fleet, tmp_path / "inventory.yml")
    env = {"CONVERGE_STORE": store_url}
    pushed = converge("apply", "recipe.py", "-i", "inventory.yml", cwd=tmp_path, env=env)
    assert pushed.returncode == 1, pushed.stdout + pushed.stderr  # one failed, one gone
    ok, broken = fleet[0].name, fleet[1].name

    [run] = json.loads(converge("runs", "--json", cwd=tmp_path, env=env).stdout)
    assert run["kind"] == "apply" and run["result"] == "failed"
    assert {h: e["status"] for h, e in run["hosts"].items()} == {
        ok: "changed", broken: "failed", "gone": "unreachable"}
    shown = converge("runs", "show", run["id"], cwd=tmp_path, env=env).stdout
    assert "* file[/etc/motd] action create" in shown
    assert "\\x1b[31mred" in shown  # what the target printed, escaped

    again = converge("apply", "recipe.py", "-i", "inventory.yml", "-l", ok, cwd=tmp_path,
                     env=env)
    assert again.returncode == 0, again.stderr
    fleet[0].run(["sh", "-c", "echo changed by hand > /etc/motd"]).check_returncode()
    drift = converge("check", "recipe.py", "-i", "inventory.yml", "-l", ok, cwd=tmp_path,
                     env=env)
    assert drift.returncode == 2, drift.stdout + drift.stderr

    report = tmp_path / "report.html"
    made = converge("report", run["id"], "-o", str(report), "--host", ok, cwd=tmp_path,
                    env=env)
    assert made.returncode == 0, made.stderr
    html = report.read_text()
    assert "<script" not in html and "http://" not in html and "https://" not in html
    assert 'data-host="%s" data-status="failed"' % broken in html
    assert "disk &lt;full&gt; &amp; \\x1b[31mred" in html
    timeline = html[html.index('data-timeline="%s"' % ok):]
    assert timeline.count("<tr data-run=") == 3
    assert 'data-drift="yes"' in timeline
    _browse(report, [broken, "gone", ok])


def _browse(report: Path, order: List[str]) -> None:
    """Open the report in headless Chromium: every host, failed ones first, a click
    shows a diff, no console errors; keep a screenshot."""
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver_path:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium and chromedriver are missing: scripts/install.sh --dev")
        pytest.skip("chromium is not installed (scripts/install.sh --dev installs it)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1200,1600",
                 "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        driver.get(report.as_uri())
        sections = driver.find_elements(By.CSS_SELECTOR, "section.host")
        assert [s.get_attribute("data-host") for s in sections] == order
        assert [s.get_attribute("data-status") for s in sections] == [
            "failed", "unreachable", "changed"]
        changed = sections[2]
        motd = changed.find_element(By.CSS_SELECTOR, 'details[data-resource="file[/etc/motd]"]')
        diff = motd.find_element(By.CSS_SELECTOR, "pre.diff")
        assert not diff.is_displayed()
        motd.find_element(By.TAG_NAME, "summary").click()
        assert diff.is_displayed()
        assert "+welcome to" in diff.text
        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        assert errors == []
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(ARTIFACTS / "report.png"))
    finally:
        driver.quit()
