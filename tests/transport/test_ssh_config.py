"""Reading the OpenSSH client config (no connection is made here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from converge.inventory import Host
from converge.transport.ssh import resolve


def test_the_ssh_transport_does_not_import_invoke() -> None:
    """paramiko imports invoke (70 ms) for "Match exec" alone; a push without
    one must not pay for it."""
    done = subprocess.run([sys.executable, "-c", "import sys, converge.transport.ssh; "
                           "print('invoke' in sys.modules)"],
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_settings_come_from_the_config(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("Host web*\n  HostName 192.0.2.7\n  Port 2222\n  User deploy\n"
                      "  ProxyJump bastion\n")
    settings = resolve(Host(name="web1", ssh_config=str(config)))
    assert (settings.hostname, settings.port, settings.user, settings.proxy_jump) == (
        "192.0.2.7", 2222, "deploy", ["bastion"])


def test_match_exec_still_works_when_invoke_is_installed(tmp_path: Path) -> None:
    """Run apart, with /dev/null as stdin: invoke reads the runner's stdin."""
    pytest.importorskip("invoke")
    config = tmp_path / "config"
    config.write_text('Match exec "test -d /"\n  HostName 192.0.2.8\n'
                      'Match exec "test -d /no/such/dir"\n  Port 2200\n')
    done = subprocess.run([sys.executable, "-c", "import sys\n"
                           "from converge.inventory import Host\n"
                           "from converge.transport.ssh import resolve\n"
                           "s = resolve(Host(name='db1', ssh_config=sys.argv[1]))\n"
                           "print(s.hostname, s.port)", str(config)],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert done.stdout.split() == ["192.0.2.8", "22"], done.stderr
