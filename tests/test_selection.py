"""Tags, batches and run_once, compiled and run under temporary roots (the SSH side
is tests/lab/test_fleet_ops.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List

import pytest

from converge.errors import ConvergeError, RecipeError
from converge.runner import fail_budget, make_batches, run
from converge.transport.local import LocalTransport


class Named:
    def __init__(self, host: str) -> None:
        self.host = host


@pytest.mark.parametrize("serial, sizes", [
    ("2", [2, 2, 2, 2, 2]), ("30%", [3, 3, 3, 1]), ("1,2,50%", [1, 2, 5, 2]),
    ("1%", [1] * 10), (None, [10]),
], ids=["count", "share", "growing", "tiny-share", "none"])
def test_batches_follow_the_host_order(serial: Any, sizes: List[int]) -> None:
    hosts = [Named("h%d" % i) for i in range(10)]
    batches = make_batches(hosts, serial)
    assert [len(b) for b in batches] == sizes
    assert [h for b in batches for h in b] == hosts


@pytest.mark.parametrize("serial", ["0", "x", "150%", "1,,2", "-1"])
def test_a_bad_serial_is_refused(serial: str) -> None:
    with pytest.raises(ConvergeError, match="--serial"):
        make_batches([Named("a")], serial)


def test_fail_budget() -> None:
    assert fail_budget("2", 10) == 2 and fail_budget("25%", 10) == 2
    assert fail_budget("0", 10) == 0 and fail_budget(None, 10) is None
    with pytest.raises(ConvergeError, match="--max-fail x%"):
        fail_budget("x%", 3)


RECIPE = """\
from converge import execute, file, include_recipe
include_recipe("extra.py", tags="extra")
file("one", content="1\\n", tags=["web", "config"])
file("two", content="2\\n")
execute(["sh", "-c", "echo $$ > once"], creates="once", run_once=True)
execute(["sh", "-c", "exit 1"], only_if=lambda: bool(attrs.get("fail")))
"""


def _hosts(tmp_path: Path, n: int) -> List[LocalTransport]:
    out = []
    for i in range(n):
        root = tmp_path / ("root%d" % i)
        (root / "etc").mkdir(parents=True)
        (root / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\n")
        (root / "etc/group").write_text("root:x:0:\n")
        out.append(LocalTransport(str(root), host="h%d" % i))
    return out


def test_tags_include_recipe_and_run_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    (work / "recipe.py").write_text(RECIPE)
    (work / "extra.py").write_text('from converge import file\nfile("three", content="3\\n")\n')
    hosts = _hosts(tmp_path, 4)
    outcome = run(work / "recipe.py", hosts, tags=["extra"])
    assert [e["id"] for e in outcome.events["h0"]] == ["file[three]"]
    outcome = run(work / "recipe.py", hosts, skip_tags=["web"], serial="2")
    ids = [e["id"] for e in outcome.events["h1"]]
    assert "file[one]" not in ids and "file[two]" in ids
    once = {h: [e for e in outcome.events[h] if e["id"].startswith("execute[sh -c 'echo")]
            for h in outcome.events}
    assert once["h0"][0]["status"] == "updated" and once["h2"][0]["status"] == "updated"
    assert once["h1"][0]["skip_reason"] == "run_once: runs on h0"
    assert once["h3"][0]["skip_reason"] == "run_once: runs on h2"
    assert outcome.report["summary"]["batches"] == 2
    with pytest.raises(RecipeError, match="--skip-tags nope: no resource has this tag"):
        run(work / "recipe.py", hosts[:1], skip_tags=["nope"])


def test_max_fail_stops_later_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    (work / "recipe.py").write_text(RECIPE.replace('include_recipe("extra.py", tags="extra")\n',
                                                   ""))
    hosts = _hosts(tmp_path, 5)
    outcome = run(work / "recipe.py", hosts, serial="2", max_fail="0", attrs={"fail": True})
    summary = outcome.report["summary"]
    assert summary["aborted"] is True and summary["not_started_hosts"] == 3
    assert [h for h, e in outcome.report["hosts"].items() if e.get("not_started")] == [
        "h2", "h3", "h4"]
    assert not (tmp_path / "root3" / "one").exists()
    assert set(outcome.report["hosts"]["h4"]) >= {"resources", "summary", "error"}


def test_a_bad_tag_names_the_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.py").write_text('from converge import file\n\nfile("x", tags=["a b"])\n')
    with pytest.raises(ConvergeError) as caught:
        run(tmp_path / "r.py", _hosts(tmp_path, 1))
    assert str(caught.value).startswith("r.py:3: h0: file[x]: tag 'a b': use letters")
