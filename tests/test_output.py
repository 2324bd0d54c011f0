"""What a newcomer reads: whole transcripts of converge runs (subprocess, real files
under a --root tree), with the timings made constant. Each pins a text the way a
user sees it: console lines, summary, errors, help."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def converge(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "converge", *args], cwd=cwd,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=120, env={**os.environ, **(env or {})})


def steady(text: str) -> str:
    """Timings (`in 0.12s`) and run ids made constant."""
    text = re.sub(r" in \d+\.\d\ds\b", " in 0.00s", text)
    return re.sub(r"\b\d{8}T\d{6}-\d{6}\b", "RUN_ID", text)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/motd").write_text("old\n")
    return root


def recipe(tmp_path: Path, text: str, name: str = "recipe.py") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


MOTD = 'from converge import file\nfile("/etc/motd", content="new\\n")\n'


# -- 3. JSON on standard output ----------------------------------------------------------

@pytest.mark.parametrize("command", ["apply", "plan", "check"])
def test_json_to_stdout_sends_the_console_to_stderr(command: str, tmp_path: Path,
                                                    root: Path) -> None:
    recipe(tmp_path, MOTD)
    proc = converge(command, "--root", str(root), "recipe.py", "--json", "-", cwd=tmp_path)
    report = json.loads(proc.stdout)  # standard output is the report, and only that
    assert report["hosts"]["localhost"]["resources"][0]["id"] == "file[/etc/motd]"
    if command != "check":
        assert "* file[/etc/motd] action create\n" in proc.stderr
    assert re.search(r"^(Converged|Plan for) 1 resource: ", proc.stderr, re.M), proc.stderr


def test_rollback_json_to_stdout_sends_the_console_to_stderr(tmp_path: Path,
                                                             root: Path) -> None:
    recipe(tmp_path, MOTD)
    assert converge("apply", "--root", str(root), "recipe.py", cwd=tmp_path).returncode == 0
    proc = converge("rollback", "--root", str(root), "--json", "-", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["mode"] == "rollback"
    assert "* file[/etc/motd] action create\n" in proc.stderr
