"""The JSON report against docs/operations.md: every field a real report carries is
documented (in the example or by name in the text), every field of the example is
in a real report, and the fields scripts rely on hold what the page says."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, Set, Tuple

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs/operations.md"
RECIPE = """\
from converge import execute, file
file("/etc/motd", content="new\\n")
file("/etc/same", content="same\\n")
reload = execute(["echo", "reloaded"], action="nothing")
file("/etc/app.conf", content="a\\n", notifies=reload.run)
execute(["false"], ignore_failure=True)
execute(["echo", "guarded"], only_if=["false"])
"""


def section() -> str:
    text = DOC.read_text()
    start = text.index("## JSON report")
    return text[start:text.index("\n## ", start + 1)]


def documented_example() -> Dict[str, Any]:
    block = re.search(r"```json\n(.*?)```", section(), re.S)
    assert block, "docs/operations.md: no json example under '## JSON report'"
    example: Dict[str, Any] = json.loads(block.group(1))
    return example


def named_in_text(key: str) -> bool:
    """The key is named in the page's text, outside the example."""
    prose = re.sub(r"```json\n.*?```", "", section(), flags=re.S)
    return "`%s`" % key in prose or '`"%s"' % key in prose


def levels(report: Dict[str, Any]) -> Iterator[Tuple[str, Set[str]]]:
    """(level, keys found there) for each level of a report."""
    hosts = report["hosts"].values()
    yield "report", set(report)
    yield "host", {k for h in hosts for k in h}
    yield "resource", {k for h in hosts for r in h.get("resources", []) for k in r}
    yield "host summary", {k for h in hosts for k in h.get("summary", {})}
    yield "host profile", {k for h in hosts for k in h.get("profile", {})}
    yield "summary", set(report["summary"])


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Any]:
    """A real apply with every kind of resource outcome: updated with a diff, up to
    date, skipped (action nothing, only_if), notified, failed but ignored; with
    --profile."""
    work = tmp_path_factory.mktemp("schema")
    (work / "root/etc").mkdir(parents=True)
    (work / "root/etc/motd").write_text("old\n")
    (work / "root/etc/same").write_text("same\n")
    (work / "recipe.py").write_text(RECIPE)
    done = subprocess.run([sys.executable, "-m", "converge", "apply", "--root",
                           str(work / "root"), "--diff", "--json", str(work / "report.json"),
                           "--profile", "recipe.py"], cwd=work, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "\nPROFILE (seconds" in done.stdout
    data: Dict[str, Any] = json.loads((work / "report.json").read_text())
    return data


def test_every_field_of_a_real_report_is_documented(report: Dict[str, Any]) -> None:
    example = dict(levels(documented_example()))
    missing = {level: sorted(k for k in keys - example[level] if not named_in_text(k))
               for level, keys in levels(report)}
    assert not any(missing.values()), "not in docs/operations.md: %s" % missing


def test_every_field_of_the_example_is_in_a_real_report(report: Dict[str, Any]) -> None:
    real = dict(levels(report))
    extra = {level: sorted(keys - real.get(level, set()))
             for level, keys in levels(documented_example())}
    assert not any(extra.values()), "documented but not in a report: %s" % extra


def resources(report: Dict[str, Any]) -> Dict[Tuple[str, str], Dict[str, Any]]:
    return {(r["id"], r["action"]): r for r in report["hosts"]["localhost"]["resources"]}


def resource(rep: Dict[str, Any], ident: str, action: str = "run") -> Dict[str, Any]:
    return resources(rep)[(ident, action)]


def profile_adds_up(profile: Dict[str, Any], times: list) -> bool:
    """A local run's profile: no connection phases, every figure a non-negative
    number, the resources' own times summed, the slowest five in order, and the
    sequential phases within the total."""
    assert [profile[k] for k in ("connect", "auth", "agent_start", "bundle_sent", "agent_cpu")
            ] == [None] * 5
    numbers = ("compile", "run", "setup", "resources", "report", "total")
    assert all(isinstance(profile[k], float) and profile[k] >= 0 for k in numbers), profile
    assert abs(profile["resources"] - sum(times)) < 0.001 * len(times) + 0.001
    slowest = [s["seconds"] for s in profile["slowest"]]
    assert slowest == sorted(times, reverse=True)[:5] and len(slowest) == 5
    assert profile["setup"] + profile["resources"] <= profile["run"] + 0.002
    assert profile["compile"] + profile["run"] + profile["report"] <= profile["total"] + 0.002
    return True


def test_without_profile_there_is_none(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    (tmp_path / "recipe.py").write_text("from converge import file\nfile('/x', content='x')\n")
    done = subprocess.run([sys.executable, "-m", "converge", "apply", "--root",
                           str(tmp_path / "root"), "--json", "-", "recipe.py"], cwd=tmp_path,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "profile" not in json.loads(done.stdout)["hosts"]["localhost"]
    assert "PROFILE" not in done.stderr


@pytest.mark.parametrize("level, field, check", [
    pytest.param("report", "mode", lambda rep: rep["mode"] == "apply", id="mode"),
    pytest.param("resource", "source", lambda rep: [
        r["source"] for r in rep["hosts"]["localhost"]["resources"]
    ] == ["recipe.py:%d" % n for n in (2, 3, 4, 5, 6, 7, 4)], id="source"),
    pytest.param("resource", "time", lambda rep: all(
        isinstance(r["time"], float) and r["time"] >= 0 for r in resources(rep).values()),
        id="time"),
    pytest.param("resource", "diff", lambda rep: (
        resource(rep, "file[/etc/motd]", "create")["diff"]
        == "--- /etc/motd\n+++ /etc/motd (new)\n@@ -1 +1 @@\n-old\n+new\n"
        and "diff" not in resource(rep, "file[/etc/same]", "create")), id="diff"),
    pytest.param("resource", "skip_reason", lambda rep: (
        resource(rep, "execute[echo guarded]")["skip_reason"],
        resource(rep, "execute[echo reloaded]", "nothing")["skip_reason"])
        == ("only_if", "action nothing"), id="skip_reason"),
    pytest.param("resource", "notified_by", lambda rep: resource(
        rep, "execute[echo reloaded]")["notified_by"] == "file[/etc/app.conf]",
        id="notified_by"),
    pytest.param("resource", "ignored", lambda rep: (
        [r["id"] for r in resources(rep).values() if r.get("ignored")] == ["execute[false]"]
        and resource(rep, "execute[false]")["status"] == "failed"), id="ignored"),
    pytest.param("host", "profile", lambda rep: profile_adds_up(
        rep["hosts"]["localhost"]["profile"], [r["time"] for r in resources(rep).values()]),
        id="profile"),
    pytest.param("summary", "hosts", lambda rep: rep["summary"]["hosts"] == 1,
                 id="summary.hosts"),
    pytest.param("summary", "skipped", lambda rep: rep["summary"]["skipped"] == 2
                 == rep["hosts"]["localhost"]["summary"]["skipped"], id="summary.skipped"),
    pytest.param("summary", "ignored", lambda rep: rep["summary"]["ignored"] == 1
                 == rep["hosts"]["localhost"]["summary"]["ignored"], id="summary.ignored"),
])
def test_documented_field_holds_what_the_page_says(report: Dict[str, Any], level: str,
                                                    field: str, check: Any) -> None:
    documented = dict(levels(documented_example()))[level]
    assert field in documented or named_in_text(field), \
        "docs/operations.md does not document the %s's %s" % (level, field)
    assert check(report), json.dumps(report, indent=1)


def test_setup_is_never_more_than_the_run_leaves_when_events_arrive_together() -> None:
    """A busy controller can read the first event only with the last: setup, read from
    arrival times, must not then claim time the resources used."""
    from types import SimpleNamespace

    from converge.runner import profile_of

    events = [{"id": "file[/a]", "time": 0.2}, {"id": "file[/b]", "time": 0.3}]
    local = SimpleNamespace(profile={"run_started": 0.0})
    profile = profile_of(local, events, started=0.0, compiled=0.01, first_event=1.5,
                         last_event=1.5, ended=1.6)
    assert profile["run"] == 1.5 and profile["resources"] == 0.5
    assert profile["setup"] == 1.0
    assert profile["setup"] + profile["resources"] <= profile["run"]
