"""tests/strict.py: under CI=true a skip is a failure; elsewhere it stays a skip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PROBE = '''
import pytest

@pytest.fixture
def lab():
    pytest.skip("lab nodes need root")

def test_lab_tier(lab):
    pass

@pytest.mark.skipif(True, reason="ruff is not installed")
def test_checker():
    pass

@pytest.mark.xfail(reason="known", strict=True)
def test_known():
    assert False
'''


@pytest.mark.parametrize("ci, code, outcome", [
    pytest.param("true", 1, "1 xfailed, 2 errors", id="ci"),
    pytest.param("", 0, "2 skipped, 1 xfailed", id="not-ci"),
])
def test_a_skip_fails_under_ci(tmp_path: Path, ci: str, code: int, outcome: str) -> None:
    (tmp_path / "test_probe.py").write_text(PROBE)
    env = {**os.environ, "CI": ci, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "tests.strict",
                           "-p", "no:randomly", "-p", "no:cacheprovider", "-rfEs",
                           "test_probe.py"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == code, done.stdout + done.stderr
    assert done.stdout.rstrip().splitlines()[-1].startswith(outcome), done.stdout
    if ci:
        assert ("skipped under CI=true, where every tier and checker must run: "
                "ruff is not installed") in done.stdout
        assert "lab nodes need root" in done.stdout
