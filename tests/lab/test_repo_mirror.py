"""Mirroring names every package a node needs, whatever this machine's apt cache holds."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from converge.lab.repo import missing_packages


@pytest.mark.parametrize("names", [["apache2"]])
def test_mirror_lists_what_apt_would_install(names: list) -> None:
    """`apt-get --print-uris` leaves out what the machine's archive cache holds already
    (this machine's held libapr1, so apache2 was not installable in nodes); the lab
    must fetch everything a node lacks, which is what a simulated install lists."""
    if shutil.which("apt-get") is None:
        pytest.skip("needs apt-get")
    simulated = subprocess.run(["apt-get", "install", "-s", "-qq", "--no-install-recommends",
                                *names], capture_output=True, text=True,
                               env={"LC_ALL": "C", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    if simulated.returncode != 0:
        pytest.skip(f"this machine's package lists lack {names}")
    wanted = sorted(line.split()[1] for line in simulated.stdout.splitlines()
                    if line.startswith("Inst "))
    assert sorted(name for name, _, _ in missing_packages(names)) == wanted
