"""Static checks that belong to the suite: ruff's rules (no shell=True, layer bans)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is installed by install.sh --dev")
def test_ruff_is_clean() -> None:
    done = subprocess.run(["ruff", "check", "converge", "tests", "benchmarks", "cookbooks",
                           "examples"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
