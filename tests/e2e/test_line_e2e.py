"""line in a lab node: the seed's sar alias in root's .bashrc, an sshd_config line
replaced in place, and a line change notifying an execute."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from converge.lab import Node
from converge.lab.idempotence import IdempotenceResult

pytestmark = pytest.mark.lab

RECIPE = r"""
from converge import execute, line
reload = execute(["sh", "-c", "echo reloaded >> /root/reloads"], action="nothing")
line("/root/.bashrc", 'alias sar="LANG=C sar"', notifies=reload.run)
line("/etc/ssh/sshd_config", "PermitRootLogin prohibit-password",
     match=r"^#?\s*PermitRootLogin\b", notifies=reload.run)
"""


def test_line_and_notification(lab_node: Node, tmp_path: Path,
                               assert_idempotent: Callable[..., IdempotenceResult]) -> None:
    lab_node.write_file("/etc/ssh/sshd_config", b"Port 22\nPermitRootLogin yes\nUsePAM no\n")
    lab_node.write_file("/root/.bashrc", b"# bashrc\nexport HISTSIZE=5000")  # no final newline
    recipe = tmp_path / "recipe.py"
    recipe.write_text(RECIPE)
    result = assert_idempotent(lab_node, recipe)
    assert [(r["id"], r["status"], r["changes"]) for r in result.first.resources()] == [
        ("execute[sh -c 'echo reloaded >> /root/reloads']", "skipped", []),
        ('line[/root/.bashrc: alias sar="LANG=C sar"]', "updated",
         ["append line 'alias sar=\"LANG=C sar\"' to /root/.bashrc"]),
        ("line[/etc/ssh/sshd_config: PermitRootLogin prohibit-password]", "updated",
         ["replace line 2 'PermitRootLogin yes' with 'PermitRootLogin prohibit-password' "
          "in /etc/ssh/sshd_config"]),
        ("execute[sh -c 'echo reloaded >> /root/reloads']", "updated",
         ["execute sh -c 'echo reloaded >> /root/reloads'"]),
    ]
    assert lab_node.read_file("/root/reloads") == b"reloaded\n"  # once, and not on run two
    assert lab_node.read_file("/root/.bashrc") == (
        b'# bashrc\nexport HISTSIZE=5000\nalias sar="LANG=C sar"\n')
    assert lab_node.read_file("/etc/ssh/sshd_config") == (
        b"Port 22\nPermitRootLogin prohibit-password\nUsePAM no\n")
    alias = lab_node.run(["bash", "-c", "source /root/.bashrc; shopt -s expand_aliases; "
                          "alias sar"])
    assert alias.stdout.strip() == "alias sar='LANG=C sar'"
