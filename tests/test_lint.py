"""Static checks that belong to the suite: ruff's rules (no shell=True, layer bans) and
mypy --strict on converge/ (the settings are pyproject.toml's)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is installed by install.sh --dev")
def test_ruff_is_clean() -> None:
    done = subprocess.run(["ruff", "check", "converge", "tests", "benchmarks", "cookbooks",
                           "examples"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None,
                    reason="mypy is installed by install.sh --dev")
def test_mypy_is_clean() -> None:
    # pyproject.toml's [tool.mypy] names the files and strict; the cache is .mypy_cache
    # not under coverage's subprocess measurement (pyproject.toml): it is not converge
    # running, and tracing mypy doubles its time
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    done = subprocess.run([sys.executable, "-m", "mypy"], cwd=REPO, capture_output=True,
                          text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
