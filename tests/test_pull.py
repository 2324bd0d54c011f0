"""converge pull's settings, refused before anything is fetched, and the timer it
installs (the pulls themselves run in lab nodes: tests/lab/test_pull.py)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from converge.cli_pull import _check_importable, _cron_schedule, timer_units
from converge.pull import PullError, Settings, duration


@pytest.fixture
def signers(tmp_path: Path) -> str:
    path = tmp_path / "allowed"
    path.write_text("ops@example.com ssh-ed25519 AAAA\n")
    return str(path)


@pytest.mark.parametrize(("change", "message"), [
    ({"allowed_signers": None}, "applies signed commits only"),
    ({"repo": "--upload-pack=touch /tmp/x"}, "is not a git URL or path"),
    ({"repo": "ext::sh -c touch% /tmp/x"}, "uses a git remote helper"),
    ({"branch": "-f"}, "is not a branch name"),
    ({"branch": "a/../b"}, "is not a branch name"),
    ({"recipe": "../etc/recipe.py"}, "must be a path inside the repository"),
    ({"inventory": "/etc/inventory.yaml"}, "must be a path inside the repository"),
    ({"allowed_signers": "/nonexistent/allowed"}, "no such file"),
    ({"check_every": "soon"}, "is not a duration"),
])
def test_settings_that_would_run_something_else_are_refused(
        signers: str, change: dict, message: str) -> None:
    settings = Settings(repo="https://git.example.com/ops.git", allowed_signers=signers)
    for key, value in change.items():
        setattr(settings, key, value)
    with pytest.raises(PullError, match=re.escape(message)):
        settings.check()


def test_settings_load_refuses_unknown_keys(tmp_path: Path) -> None:
    path = tmp_path / "pull.json"
    path.write_text('{"repo": "/srv/ops", "verify": false}')
    with pytest.raises(PullError, match="unknown settings: verify"):
        Settings.load(str(path))


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("90s", 90), ("15m", 900),
                                               ("6h", 21600), ("1d", 86400)])
def test_durations(text: str, seconds: int) -> None:
    assert duration(text) == seconds


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze comes with systemd")
def test_the_timer_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    units = timer_units('https://git.example.com/o%20"ps".git',
                        [sys.executable, "-m", "converge", "pull", "--config", "/x $HOME"],
                        1800, 300)
    for name, text in units.items():
        (tmp_path / name).write_text(text)
    done = subprocess.run(["systemd-analyze", "verify", "--man=no", *sorted(units)],
                          cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    service = units["converge-pull.service"]
    assert 'ExecStart="%s" "-m" "converge" "pull" "--config" "/x $$HOME"\n' % (
        sys.executable) in service
    assert "o%%20\"ps\".git" in service  # specifiers kept literal
    assert "RandomizedDelaySec=300s" in units["converge-pull.timer"]


@pytest.mark.parametrize(("every", "pattern"), [
    (900, r"^([0-9]|1[0-4])-59/15 \* \* \* \*$"),
    (7200, r"^[0-4]?[0-9] \*/2 \* \* \*$"),
    (86400, r"^[0-9]+ [0-9]+ \* \* \*$"),
])
def test_cron_schedules(every: int, pattern: str) -> None:
    for _ in range(20):
        assert re.match(pattern, _cron_schedule(every, 300))


def test_install_refuses_a_python3_that_cannot_import_converge(tmp_path: Path) -> None:
    """The timer runs python3 with no PYTHONPATH: --install checks that it imports
    converge so, before writing any timer."""
    python = tmp_path / "python3"
    python.write_text("#!/bin/sh\necho \"ModuleNotFoundError: No module named 'converge'\" "
                      ">&2\nexit 1\n")
    python.chmod(0o755)
    with pytest.raises(PullError, match="cannot import converge without PYTHONPATH, so the "
                       "timer could not run it: ModuleNotFoundError") as caught:
        _check_importable(str(python))
    assert "--wheels DIR" in (caught.value.hint or "")
    _check_importable(sys.executable)  # this one imports converge without help
