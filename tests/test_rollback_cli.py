"""converge history and converge rollback as a user runs them (subprocess, --root)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

RECIPE = """\
from converge import file
file("/etc/motd", content="Hello Tunnelix\\n", mode="0644")
file("/etc/app.conf", content="port = 80\\n")
"""


def converge(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "converge", *args], cwd=cwd,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)


def setup(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/motd").write_text("old\n")
    os.chmod(root / "etc/motd", 0o600)
    (tmp_path / "recipe.py").write_text(RECIPE)
    assert converge("apply", "--root", str(root), "recipe.py", cwd=tmp_path).returncode == 0
    return root


def test_history_lists_runs_and_what_they_changed(tmp_path: Path) -> None:
    root = setup(tmp_path)
    shown = converge("history", "--root", str(root), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].split()[2:] == ["apply", "2", "changed,", "0", "failed", "recipe.py"]
    assert lines[1:3] == ["    file[/etc/motd]", "      - update content in file /etc/motd "
                          "from 01d09d19 to 43428120"]
    data = json.loads(converge("history", "--root", str(root), "--json", cwd=tmp_path).stdout)
    assert [r["kind"] for r in data] == ["apply"]
    assert [c["id"] for c in data[0]["changed"]] == ["file[/etc/motd]", "file[/etc/app.conf]"]


def test_rollback_then_again_up_to_date(tmp_path: Path) -> None:
    root = setup(tmp_path)
    first = converge("rollback", "--root", str(root), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        "* file[/etc/app.conf] action delete",
        "  - delete file /etc/app.conf",
        "* file[/etc/motd] action create",
        "  - update content in file /etc/motd from 43428120 to 01d09d19",
        "  - change mode from '0644' to '0600'",
    ] + first.stdout.splitlines()[5:]
    assert "Converged 2 resources: 2 updated, 0 up to date, 0 failed" in first.stdout
    assert first.stderr.startswith("rolling back run ")
    assert (root / "etc/motd").read_text() == "old\n"
    assert not (root / "etc/app.conf").exists()
    second = converge("rollback", "--root", str(root), "--json", "-", cwd=tmp_path)
    assert second.returncode == 0
    assert second.stderr.count("(up to date)") == 2  # the console, beside the report
    assert json.loads(second.stdout)["summary"]["up_to_date"] == 2
    history = json.loads(converge("history", "--root", str(root), "--json", cwd=tmp_path).stdout)
    assert [(r["kind"], r["of"]) for r in history] == [
        ("apply", None), ("rollback", history[0]["id"]), ("rollback", history[0]["id"])]


def test_rollback_refused_when_a_file_changed_since_and_forced(tmp_path: Path) -> None:
    root = setup(tmp_path)
    (root / "etc/app.conf").write_text("port = 8080\n")
    refused = converge("rollback", "--root", str(root), cwd=tmp_path)
    assert refused.returncode == 1
    assert "1 file was changed since that run:\n  /etc/app.conf: content is now" in \
        refused.stderr
    assert "run again with --force" in refused.stderr
    assert (root / "etc/motd").read_text() == "Hello Tunnelix\n"
    forced = converge("rollback", "--root", str(root), "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert not (root / "etc/app.conf").exists()


def test_rollback_of_a_named_run_by_prefix(tmp_path: Path) -> None:
    root = setup(tmp_path)
    (tmp_path / "recipe.py").write_text(RECIPE.replace("80", "81"))
    assert converge("apply", "--root", str(root), "recipe.py", cwd=tmp_path).returncode == 0
    first = json.loads(converge("history", "--root", str(root), "--json",
                                cwd=tmp_path).stdout)[0]["id"]
    # the first run, by a unique prefix; the second run changed app.conf since
    done = converge("rollback", first[:-2], "--root", str(root), cwd=tmp_path)
    assert done.returncode == 1 and "/etc/app.conf: content is now" in done.stderr
    unknown = converge("rollback", "19990101", "--root", str(root), cwd=tmp_path)
    assert unknown.returncode == 1
    assert "no run 19990101 in the journal of this machine" in unknown.stderr
