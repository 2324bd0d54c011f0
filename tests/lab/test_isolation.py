"""A node cannot change the host: files, kernel knobs, network knobs, packages."""

from __future__ import annotations

import re
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator

import pytest

from converge.lab import Lab, LocalRepo, Node
from converge.lab.lab import _interpreter_binds, user_homes
from converge.lab.node import DROPPED_CAPS

pytestmark = pytest.mark.lab


def ok(node: Node, *argv: str) -> str:
    done = node.run(list(argv))
    assert done.returncode == 0, f"{argv}: {done.stderr}"
    return done.stdout


def host_sysctl(key: str) -> str:
    return Path("/proc/sys", *key.split(".")).read_text().strip()


def test_file_written_in_node_is_absent_on_host(lab_node: Node) -> None:
    ok(lab_node, "sh", "-c", "echo probe > /etc/converge-probe")
    assert lab_node.read_file("/etc/converge-probe") == b"probe\n"
    assert not Path("/etc/converge-probe").exists()


@pytest.mark.parametrize("directory", ["/usr", "/var/lib", "/root", "/tmp", "/opt"])
def test_writes_under_overlays_stay_in_node(lab_node: Node, directory: str) -> None:
    probe = f"{directory}/converge-probe-{lab_node.name}"
    ok(lab_node, "touch", probe)
    assert not Path(probe).exists()


def test_rest_of_root_is_read_only(lab_node: Node) -> None:
    done = lab_node.run(["touch", "/converge-probe"])
    assert done.returncode != 0
    assert "Read-only file system" in done.stderr
    assert not Path("/converge-probe").exists()


@pytest.mark.parametrize("key", ["vm.swappiness", "vm.panic_on_oom", "kernel.panic"])
def test_kernel_wide_sysctl_changes_only_in_node(lab_node: Node, key: str) -> None:
    before = host_sysctl(key)
    wanted = "1" if before != "1" else "2"
    ok(lab_node, "sysctl", "-w", f"{key}={wanted}")
    assert ok(lab_node, "sysctl", "-n", key).strip() == wanted
    assert host_sysctl(key) == before


def test_net_sysctl_is_real_in_node_and_leaves_host(lab_node: Node) -> None:
    key = "net.ipv4.ip_forward"
    before = host_sysctl(key)
    wanted = "0" if before == "1" else "1"
    ok(lab_node, "sysctl", "-w", f"{key}={wanted}")
    assert ok(lab_node, "cat", "/proc/sys/net/ipv4/ip_forward").strip() == wanted
    assert host_sysctl(key) == before


def test_package_installed_in_node_is_absent_on_host(lab_node: Node,
                                                      local_repo: LocalRepo) -> None:
    local_repo.build_deb(
        "converge-probe", "1.0-1",
        files={"/usr/share/converge-probe/marker": b"from the lab\n"},
        scripts={"postinst": "#!/bin/sh\nset -e\ntouch /var/lib/converge-probe-postinst\n"},
    )
    ok(lab_node, "apt-get", "update", "-qq")
    ok(lab_node, "apt-get", "install", "-y", "-qq", "converge-probe")
    assert "install ok installed" in ok(lab_node, "dpkg-query", "-W", "-f=${Status}",
                                        "converge-probe")
    assert lab_node.read_file("/usr/share/converge-probe/marker") == b"from the lab\n"
    host = subprocess.run(["dpkg-query", "-W", "converge-probe"], capture_output=True)
    assert host.returncode != 0
    assert not Path("/usr/share/converge-probe").exists()
    assert not Path("/var/lib/converge-probe-postinst").exists()


def test_apt_sources_are_only_the_lab_repository(lab_node: Node) -> None:
    sources = ok(lab_node, "sh", "-c", "cat /etc/apt/sources.list; ls /etc/apt/sources.list.d")
    assert sources.strip() == "deb [trusted=yes] file:/run/converge-lab/repo ./"


def test_package_scripts_may_not_start_daemons(lab_node: Node) -> None:
    assert lab_node.run(["/usr/sbin/policy-rc.d"]).returncode == 101


def test_node_has_its_own_hostname(lab_node: Node) -> None:
    host = subprocess.run(["hostname"], capture_output=True, text=True).stdout
    ok(lab_node, "hostname", "renamed-in-node")
    assert ok(lab_node, "hostname").strip() == "renamed-in-node"
    assert subprocess.run(["hostname"], capture_output=True, text=True).stdout == host


def test_node_starts_with_its_name_as_hostname(lab_node: Node) -> None:
    assert ok(lab_node, "hostname").strip() == lab_node.name


def test_node_has_its_own_processes(lab_node: Node) -> None:
    pids = ok(lab_node, "ps", "-e", "-o", "pid=,args=")
    first = pids.strip().splitlines()[0].split(None, 1)
    assert first[0] == "1" and "sshd" in first[1]
    assert len(pids.strip().splitlines()) < 5


def capability_bounds(status: str) -> int:
    return int(re.search(r"^CapBnd:\s*([0-9a-f]+)", status, re.M).group(1), 16)  # type: ignore[union-attr]


def test_capabilities_that_reach_the_host_are_dropped(lab_node: Node) -> None:
    sshd = capability_bounds(Path(f"/proc/{lab_node.pid}/status").read_text())
    command = capability_bounds(ok(lab_node, "cat", "/proc/self/status"))
    for bounds in (sshd, command):
        for name, bit in DROPPED_CAPS.items():
            assert not bounds & (1 << bit), f"{name} still in the bounding set"
        assert bounds & (1 << 21), "CAP_SYS_ADMIN should stay (mounts inside the node)"


def test_sshd_starts_with_oom_score_adj_500_and_can_be_lowered(lab_node: Node) -> None:
    assert Path(f"/proc/{lab_node.pid}/oom_score_adj").read_text().strip() == "500"
    ok(lab_node, "sh", "-c", "echo 0 > /proc/1/oom_score_adj")
    assert Path(f"/proc/{lab_node.pid}/oom_score_adj").read_text().strip() == "0"


def test_node_network_is_its_link_and_nothing_else(lab_node: Node) -> None:
    routes = ok(lab_node, "ip", "-4", "route")
    assert "default" not in routes
    addresses = ok(lab_node, "ip", "-4", "-o", "addr")
    assert f"{lab_node.address}/30" in addresses and "127.0.0.1/8" in addresses
    assert ok(lab_node, "ip", "-4", "route", "get", lab_node.host_address)
    gateway = subprocess.run(["ip", "-4", "route", "show", "default"], capture_output=True,
                             text=True).stdout.split()
    outside = gateway[2] if len(gateway) > 2 else "192.0.2.1"
    unreachable = lab_node.run(["ip", "-4", "route", "get", outside])
    assert unreachable.returncode != 0
    assert "unreachable" in unreachable.stderr


def test_host_interpreter_is_usable_read_only(lab_node: Node) -> None:
    import sys

    done = lab_node.run([sys.executable, "-c", "import converge, sys; print(sys.version)"])
    assert done.returncode == 0, done.stderr
    denied = lab_node.run(["touch", f"{sys.prefix}/converge-probe"])
    assert denied.returncode != 0


def test_node_starts_with_none_of_the_machines_converge_state(lab_node: Node) -> None:
    """The machine's own runs, backups, lock and agent cache (/var/lib/converge, made
    by the README's first command) are not in a node: history there is empty, and a
    rollback there has nothing of the machine's to act on."""
    assert lab_node.run(["test", "-e", "/var/lib/converge"]).returncode == 1
    done = lab_node.run([sys.executable, "-m", "converge", "history"])
    assert done.returncode == 0, done.stderr
    assert done.stdout == "(no runs journaled)\n"
    done = lab_node.run([sys.executable, "-m", "converge", "rollback", "--yes"])
    assert done.returncode == 1
    assert "no run" in done.stderr.lower(), done.stderr


def test_node_sees_none_of_the_machines_homes(lab_node: Node) -> None:
    assert ok(lab_node, "ls", "-A", "/home") == ""
    bound = {Path(b).relative_to("/root").parts[0] for b in _interpreter_binds()
             if b.startswith("/root/")}  # this Python (pyenv), bound in read-only
    assert set(ok(lab_node, "ls", "-A", "/root").split()) == {".bashrc", ".profile",
                                                               ".ssh"} | bound
    for home in user_homes():  # people's homes elsewhere (outside /root and /home)
        assert ok(lab_node, "sh", "-c", 'ls -A "$1" 2>/dev/null || true', "sh", home) == ""


@contextmanager
def node_on_layer(lab: Lab, name: str, files: Dict[str, str]) -> Iterator[Node]:
    """A node over a layer holding FILES (relative paths), both gone afterwards."""
    layer = lab.directory / "layers" / name
    for rel, text in files.items():
        (layer / rel).parent.mkdir(parents=True, exist_ok=True)
        (layer / rel).write_text(text)
    (layer / "layer.json").write_text("{}\n")
    node, = lab.up(1, layers=[name])
    try:
        yield node
    finally:
        lab.down([node.name])
        lab.remove_layer(name)


def test_converge_state_in_a_lower_layer_is_hidden_too(lab: Lab) -> None:
    """Whatever lies under the node's /var (the machine's, or a layer's), the state
    directory a node starts with is none."""
    planted = {"var/lib/converge/runs/20260101T000000-1.json": '{"id": "20260101T000000-1"}\n'}
    with node_on_layer(lab, "planted-state", planted) as node:
        assert node.run(["test", "-e", "/var/lib/converge"]).returncode == 1


def test_crontabs_under_the_nodes_var_are_none(lab: Lab) -> None:
    """A node starts with no user crontab, whatever lies under its /var (the
    machine's root may have one, or a layer): crontab(1) in the node still works,
    in a spool directory made like the machine's (1730 root:crontab)."""
    planted = {"var/spool/cron/crontabs/root": "0 1 * * * /bin/planted\n"}
    with node_on_layer(lab, "planted-crontab", planted) as node:
        listed = node.run(["crontab", "-u", "root", "-l"])
        assert listed.returncode == 1 and "no crontab for root" in listed.stderr, listed
        assert ok(node, "stat", "-c", "%a %U %G", "/var/spool/cron/crontabs") == \
            "1730 root crontab\n"
        done = node.run(["crontab", "-u", "root", "-"], input="5 4 * * * /bin/true\n")
        assert done.returncode == 0, done.stderr
        assert ok(node, "crontab", "-u", "root", "-l") == "5 4 * * * /bin/true\n"


def test_user_homes_are_the_peoples_outside_root_and_home(tmp_path: Path) -> None:
    people = tmp_path / "srv-alice"
    people.mkdir()
    passwd = tmp_path / "passwd"
    passwd.write_text(
        "root:x:0:0:root:/root:/bin/bash\n"
        "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
        "www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n"
        f"alice:x:1000:1000::{people}:/bin/bash\n"
        "bob:x:1001:1001::/home/bob:/bin/bash\n"
        "carol:x:1002:1002::/does/not/exist:/bin/bash\n"
        "top:x:1003:1003::/srv:/bin/bash\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        "broken line\n")
    assert user_homes(str(passwd)) == [str(people)]


def test_node_apt_sees_the_lab_repository_from_its_first_second(
        lab: Lab, local_repo: LocalRepo) -> None:
    """No `apt-get update` in the node: its lists are the lab repository's index, never
    this machine's lists, and stay current when the repository changes."""
    local_repo.build_deb("converge-first", "1.0-1", files={"/usr/share/converge-first/x": b"1\n"})
    node, = lab.up(1)
    try:
        lists = ok(node, "ls", "-A", "/var/lib/apt/lists").split()
        assert lists == ["_run_converge-lab_repo_._Packages", "partial"], lists
        assert ok(node, "ls", "-A", "/var/cache/apt").split() == ["archives"]
        ok(node, "apt-get", "install", "-y", "-qq", "converge-first")
        local_repo.build_deb("converge-later", "1.0-1",
                             files={"/usr/share/converge-later/x": b"2\n"})
        ok(node, "apt-get", "install", "-y", "-qq", "converge-later")
        assert node.read_file("/usr/share/converge-later/x") == b"2\n"
        policy = ok(node, "apt-cache", "policy", "bash")  # the machine's archive is unknown
        assert "deb.debian.org" not in policy and "http" not in policy, policy
    finally:
        lab.down([node.name])
