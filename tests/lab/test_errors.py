"""Each way the lab cannot run says why and what to do."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import converge
from converge.lab import Lab, LabError

pytestmark = pytest.mark.lab


@pytest.fixture
def need_root() -> None:
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        pytest.skip("needs root on Linux")


def test_not_root(need_root: None, tmp_path: Path) -> None:
    lab_dir = tmp_path / "lab"
    code = f"from converge.lab import Lab; Lab({str(lab_dir)!r}).up(1)"
    # The checkout may sit in a folder only root can read: give the unprivileged
    # process its own world-readable copy of the package.
    readable = Path(tempfile.mkdtemp(prefix="converge-nobody-"))
    try:
        os.chmod(readable, 0o755)
        shutil.copytree(Path(converge.__file__).parent, readable / "converge",
                        ignore=shutil.ignore_patterns("__pycache__"))
        done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                               sys.executable, "-c", code], capture_output=True, text=True,
                              cwd=readable, env={**os.environ, "PYTHONPATH": str(readable)})
    finally:
        shutil.rmtree(readable)
    assert done.returncode == 1
    assert "LabError: the lab needs root" in done.stderr
    assert not lab_dir.exists()


def test_not_linux(tmp_path: Path) -> None:
    with pytest.raises(LabError, match="needs Linux namespaces; this is darwin"):
        Lab(tmp_path, platform="darwin").up(1)


def test_sshd_missing(need_root: None, tmp_path: Path) -> None:
    with pytest.raises(LabError, match="install openssh-server"):
        Lab(tmp_path, sshd=str(tmp_path / "sshd")).up(1)


def test_overlayfs_missing(need_root: None, tmp_path: Path) -> None:
    filesystems = tmp_path / "filesystems"
    filesystems.write_text("nodev\tproc\nnodev\ttmpfs\n\text4\n")
    with pytest.raises(LabError, match="overlayfs is not available.*modprobe overlay"):
        Lab(tmp_path, filesystems=str(filesystems)).up(1)


def test_address_range_in_use(need_root: None, tmp_path: Path) -> None:
    lab = Lab(tmp_path, network="127.0.0.0/16")
    with pytest.raises(LabError, match=r"address range 127\.0\.0\.0/16 is already in use"):
        lab.up(1)
    assert lab.nodes() == []


def test_bad_network(tmp_path: Path) -> None:
    with pytest.raises(LabError, match="not an IPv4 network"):
        Lab(tmp_path, network="10.0.0.300/16")


def test_node_that_dies_while_starting(need_root: None, tmp_path: Path) -> None:
    lab = Lab(tmp_path, sshd="/bin/false")
    with pytest.raises(LabError, match="lab node node1 died while starting"):
        lab.up(1)
    assert lab.nodes() == []
    assert not list((tmp_path / "nodes").iterdir())


def test_unknown_node(need_root: None, tmp_path: Path) -> None:
    with pytest.raises(LabError, match="no lab node named 'node9'"):
        Lab(tmp_path).node("node9")
    with pytest.raises(LabError, match="no lab node named node9"):
        Lab(tmp_path).down(["node9"])


def test_cli_prints_one_line_and_exits_1(tmp_path: Path) -> None:
    env = {**os.environ, "CONVERGE_LAB_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "converge", "lab", "down", "node9"],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 1
    assert done.stderr == f"error: no lab node named node9 in {tmp_path}\n"
