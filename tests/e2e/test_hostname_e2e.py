"""hostname in a lab node (each node has its own UTS namespace): the live name
(sethostname through hostname(1)), /etc/hostname and /etc/hosts, through the real
CLI: second run up to date (mtimes kept), drift by hand corrected, plan changing
nothing, rollback, other /etc/hosts lines and comments kept.

Peers' reported bugs covered: a stale 127.0.1.1 line left behind with the old
name, duplicate lines for the address, /etc/hostname written without its
newline. (The bind-mounted /etc/hostname and /etc/hosts of a container, whose
rename fails with EBUSY: moby/moby#9295 with Chef, ansible/ansible#19681, are
rewritten in place by the resource; the lab nodes have no such bind mount, so
that path is not exercised here.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from converge.lab import Node
from converge.lab.idempotence import place_recipe
from tests.e2e.node_helpers import apply, converge, sh

pytestmark = pytest.mark.lab

RECIPE = """\
from converge import hostname
hostname("web1.example.com")
"""

HOSTS = ("127.0.0.1\tlocalhost\n127.0.1.1\told-name\n# keep me\n"
         "::1\tlocalhost ip6-localhost\n127.0.1.1 duplicate\n")


def test_hostname_live_files_drift_rollback(lab_node: Node, tmp_path: Path) -> None:
    host_name = Path("/proc/sys/kernel/hostname").read_text()
    lab_node.write_file("/etc/hosts", HOSTS.encode())
    lab_node.write_file("/etc/hostname", b"old-name\n")
    old_live = sh(lab_node, "hostname").strip()
    first = apply(lab_node, tmp_path, RECIPE)
    assert first.ok, first.stdout + first.stderr
    assert first.resources()[0]["changes"] == [
        f"set hostname from '{old_live}' to web1.example.com",
        "update /etc/hostname from 'old-name' to web1.example.com",
        "set the /etc/hosts line for 127.0.1.1 to '127.0.1.1 web1.example.com web1'"]
    assert sh(lab_node, "hostname; hostname -s") == "web1.example.com\nweb1\n"
    assert lab_node.read_file("/etc/hostname") == b"web1.example.com\n"
    assert lab_node.read_file("/etc/hosts").decode() == (
        "127.0.0.1\tlocalhost\n127.0.1.1\tweb1.example.com web1\n# keep me\n"
        "::1\tlocalhost ip6-localhost\n")
    assert sh(lab_node, "getent hosts web1").split() == ["127.0.1.1", "web1.example.com",
                                                          "web1"]
    stamps = sh(lab_node, "stat -c %y /etc/hostname /etc/hosts")
    second = apply(lab_node, tmp_path, RECIPE)
    assert second.resources()[0]["status"] == "up_to_date", second.stdout
    assert sh(lab_node, "stat -c %y /etc/hostname /etc/hosts") == stamps
    assert Path("/proc/sys/kernel/hostname").read_text() == host_name  # the machine's own

    # drift: renamed by hand; plan names it and changes nothing
    sh(lab_node, "hostname other")
    code, out = converge(lab_node, "plan", place_recipe(lab_node, tmp_path / "recipe.py"))
    assert code == 0, out
    assert "- would set hostname from 'other' to web1.example.com" in out
    assert sh(lab_node, "hostname") == "other\n"
    third = apply(lab_node, tmp_path, RECIPE)
    assert third.resources()[0]["changes"] == ["set hostname from 'other' to web1.example.com"]
    assert sh(lab_node, "hostname") == "web1.example.com\n"

    # rollback of that run: the hand-made name again; then of the first run
    code, out = converge(lab_node, "rollback")
    assert code == 0, out
    assert sh(lab_node, "hostname") == "other\n"


def test_hostname_full_rollback_and_address(lab_node: Node, tmp_path: Path) -> None:
    lab_node.write_file("/etc/hosts", HOSTS.encode())
    lab_node.write_file("/etc/hostname", b"old-name\n")
    old_live = sh(lab_node, "hostname")
    run = apply(lab_node, tmp_path, 'from converge import hostname\n'
                                    'hostname("db1", ipaddress="10.0.0.21")\n')
    assert run.ok, run.stdout
    assert lab_node.read_file("/etc/hosts").decode() == "127.0.0.1\tlocalhost\n10.0.0.21\tdb1\n" \
        + HOSTS.split("\n", 1)[1]  # after the 127.0.0.1 line; the others kept
    assert sh(lab_node, "getent hosts db1").split() == ["10.0.0.21", "db1"]
    code, out = converge(lab_node, "rollback")
    assert code == 0, out
    assert lab_node.read_file("/etc/hosts").decode() == HOSTS
    assert lab_node.read_file("/etc/hostname") == b"old-name\n"
    assert sh(lab_node, "hostname") == old_live
