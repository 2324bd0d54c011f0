"""--forks when not given: chosen from the CPUs, the open-file limit and the fleet."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from converge import cli
from converge.forks import FILES_PER_HOST, FORKS_PER_CPU, MAX_FORKS, default_forks
from converge.runner import run

from .test_fleet import RECIPE, FakeTransport


@pytest.mark.parametrize("hosts, cpus, open_files, forks", [
    pytest.param(1000, 2, 20000, 100, id="per-cpu"),
    pytest.param(1000, 1, 20000, 50, id="one-cpu"),
    pytest.param(1000, 64, 1 << 20, 500, id="at-most-500"),
    pytest.param(30, 8, 20000, 30, id="no-more-than-the-hosts"),
    pytest.param(1, 2, 20000, 1, id="one-host"),
    pytest.param(0, 2, 20000, 1, id="no-host"),
    pytest.param(1000, 16, 1024, 240, id="open-file-limit"),
    pytest.param(1000, 2, 256, 48, id="small-open-file-limit"),
    pytest.param(1000, 2, 64, 1, id="no-room-still-one"),
    pytest.param(1000, 0, 20000, 50, id="cpus-unknown"),
])
def test_the_rule(hosts: int, cpus: int, open_files: int, forks: int) -> None:
    assert default_forks(hosts, cpus=cpus, open_files=open_files) == forks


def test_this_machine_gives_a_number_in_range() -> None:
    chosen = default_forks(10_000)
    assert 1 <= chosen <= MAX_FORKS


def test_a_run_without_forks_takes_more_than_the_old_default_at_once(tmp_path: Path) -> None:
    if default_forks(30) < 30:  # a machine whose open-file limit is tiny
        pytest.skip("this machine's default is below 30 hosts")
    recipe = tmp_path / "recipe.py"
    recipe.write_text(RECIPE)
    barrier = threading.Barrier(30)  # the old default, 20, could never fill it
    fleet = [FakeTransport("n%d" % i, barrier=barrier) for i in range(30)]
    outcome = run(recipe, fleet, attrs={"who": "x"}, remote=True)
    assert not outcome.failed, outcome.report
    assert all(len(t.ran) == 1 for t in fleet)


def test_help_states_the_rule_the_code_applies() -> None:
    done = CliRunner().invoke(cli.app, ["apply", "--help"], env={"COLUMNS": "200"})
    assert done.exit_code == 0
    text = " ".join(done.output.split())
    assert ("default: %d per CPU, at most %d, %d open files a host within the open-file "
            "limit, at most the hosts" % (FORKS_PER_CPU, MAX_FORKS, FILES_PER_HOST)) in text
