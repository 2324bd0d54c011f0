"""Pushing over SSH to real sshd in lab nodes: one host, ten, failures that stay
with their host, become, host keys, a target without python3."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from converge.inventory import load
from converge.lab import Lab, Node
from converge.runner import run
from converge.transport.ssh import SSHTransport

pytestmark = pytest.mark.lab

RECIPE = """\
from converge import directory, file
directory("/srv/app")
for i in range(5):
    file("/srv/app/f%d" % i, content="%s %d\\n" % (attrs.get("who", "x"), i))
"""


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def inventory(tmp_path: Path, lab: Lab, nodes: List[Node], *, user: str = "root",
              known_hosts: Optional[Path] = None, become: bool = False,
              extra: Optional[Dict[str, Dict[str, Any]]] = None) -> Path:
    hosts: Dict[str, Any] = {}
    for node in nodes:
        hosts[node.name] = {"address": node.address, "user": user, "key": str(lab.key_path),
                            "become": become,
                            "known_hosts": str(known_hosts or lab.known_hosts_path)}
    for name, spec in (extra or {}).items():
        hosts[name] = spec
    path = tmp_path / "inventory.yml"
    path.write_text(json.dumps({"hosts": hosts}))  # JSON is YAML
    return path


def converge(tmp_path: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "converge", *args], capture_output=True,
                          text=True, cwd=tmp_path, input=stdin, timeout=120,
                          env={**os.environ, "COLUMNS": "200"})


def add_user(node: Node, lab: Lab, name: str, *, sudo: Optional[str] = None,
             password: Optional[str] = None, bashrc: str = "") -> None:
    # "*": no password, but not locked ("!"), which sshd without PAM refuses
    node.run(["useradd", "-m", "-s", "/bin/bash", "-p", "*", name]).check_returncode()
    home = "/home/" + name
    node.write_file(home + "/.ssh/authorized_keys", lab.key_path.with_suffix(".pub")
                    .read_bytes(), 0o600)
    if bashrc:
        node.write_file(home + "/.bashrc", bashrc.encode(), 0o644)
    node.run(["chown", "-R", "%s:%s" % (name, name), home]).check_returncode()
    node.run(["chmod", "700", home + "/.ssh"]).check_returncode()
    if password:
        node.run(["chpasswd"], input="%s:%s\n" % (name, password)).check_returncode()
    if sudo:
        node.write_file("/etc/sudoers.d/" + name, ("%s ALL=(ALL) %s\n" % (name, sudo))
                        .encode(), 0o440)


def test_one_host_first_run_changes_second_is_up_to_date(lab: Lab, lab_node: Node,
                                                          tmp_path: Path) -> None:
    recipe = write(tmp_path / "recipe.py", RECIPE)
    inv = inventory(tmp_path, lab, [lab_node])
    first = converge(tmp_path, "apply", str(recipe), "-i", str(inv))
    assert first.returncode == 0, first.stdout + first.stderr
    assert "- create new file /srv/app/f0" in first.stdout
    assert lab_node.read_file("/srv/app/f4") == b"x 4\n"
    second = converge(tmp_path, "apply", str(recipe), "-i", str(inv), "--json", "out.json")
    assert second.returncode == 0, second.stdout + second.stderr
    assert second.stdout.count("(up to date)") == 6
    assert re.search(r"^%s +ok  0 updated, 6 up to date, 0 failed$" % lab_node.name,
                     second.stdout, re.M), second.stdout
    report = json.loads((tmp_path / "out.json").read_text())
    assert report["hosts"][lab_node.name]["summary"]["up_to_date"] == 6
    check = converge(tmp_path, "check", str(recipe), "-i", str(inv))
    assert check.returncode == 0, check.stdout + check.stderr


def test_facts_are_gathered_on_the_target(lab: Lab, lab_node: Node, tmp_path: Path) -> None:
    recipe = write(tmp_path / "recipe.py", """\
        from converge import file, node
        file("/etc/motd", content="I am %s\\n" % node.hostname)
        """)
    inv = inventory(tmp_path, lab, [lab_node])
    transport = SSHTransport(load(str(inv)).hosts[lab_node.name])
    outcome = run(recipe, [transport], remote=True)
    assert not outcome.failed
    assert lab_node.read_file("/etc/motd") == ("I am %s\n" % lab_node.name).encode()
    assert transport.commands == 2  # facts, then the run
    assert transport.maxrss_kb > 0  # reported by the agent; benchmarks/ssh_bench.py: < 30 MB


def test_ten_hosts_in_parallel_with_an_unreachable_one(lab: Lab, tmp_path: Path) -> None:
    nodes = lab.up(10)
    try:
        recipe = write(tmp_path / "recipe.py", RECIPE)
        inv = inventory(tmp_path, lab, nodes, extra={
            "ghost": {"address": "127.0.0.1", "port": 1, "key": str(lab.key_path)}})
        done = converge(tmp_path, "apply", str(recipe), "-i", str(inv), "--forks", "5",
                        "--json", "out.json", "-a", "who=fleet")
        assert done.returncode == 1, done.stdout + done.stderr
        report = json.loads((tmp_path / "out.json").read_text())
        assert report["hosts"]["ghost"]["unreachable"] is True
        assert "Connection refused" in report["hosts"]["ghost"]["error"]
        for node in nodes:
            assert report["hosts"][node.name]["summary"]["updated"] == 6, node.name
            assert node.read_file("/srv/app/f1") == b"fleet 1\n"
        assert re.search(r"^ghost +unreachable$", done.stdout, re.M), done.stdout
        again = converge(tmp_path, "apply", str(recipe), "-i", str(inv), "-l", "!ghost",
                         "-a", "who=fleet")
        assert again.returncode == 0, again.stdout + again.stderr
        assert again.stdout.count("(up to date)") == 60
    finally:
        lab.down([n.name for n in nodes])


def test_connection_dropped_mid_run_stays_with_its_host(lab: Lab, tmp_path: Path) -> None:
    nodes = lab.up(3)
    victim = nodes[1]
    try:
        # step 2 waits on the target for a file that only the victim lacks (until the end)
        recipe = write(tmp_path / "recipe.py", """\
            from converge import file
            file("/srv/one", content="1\\n")
            file("/srv/two", content="2\\n", only_if=["sh", "-c",
                 "while [ ! -e /run/converge-go ]; do sleep 0.01; done"])
            file("/srv/three", content="3\\n")
            """)
        for node in nodes:
            if node is not victim:
                node.write_file("/run/converge-go", b"")
        inv = load(str(inventory(tmp_path, lab, nodes)))

        def on_event(host: str, event: Dict[str, Any]) -> None:
            if host == victim.name and event["id"] == "file[/srv/one]":
                pids = victim.run(["pgrep", "-x", "sshd"]).stdout.split()
                victim.run(["kill", "-KILL"] + [p for p in pids if p != "1"])

        outcome = run(recipe, [SSHTransport(h) for h in inv.hosts.values()], remote=True,
                      on_event=on_event)
        hosts = outcome.report["hosts"]
        assert "connection lost mid-run, after 1 of 3 resources" in hosts[victim.name]["error"]
        assert not hosts[victim.name].get("unreachable")
        assert hosts[victim.name]["summary"]["updated"] == 1
        for node in nodes:
            if node is not victim:
                assert hosts[node.name]["summary"]["updated"] == 3
                assert "error" not in hosts[node.name]
        victim.write_file("/run/converge-go", b"")
        again = run(recipe, [SSHTransport(h) for h in inv.hosts.values()], remote=True)
        assert not again.failed
        assert victim.read_file("/srv/three") == b"3\n"
    finally:
        lab.down([n.name for n in nodes])


def test_become_with_passwordless_sudo(lab: Lab, lab_node: Node, tmp_path: Path) -> None:
    add_user(lab_node, lab, "deploy", sudo="NOPASSWD: ALL")
    recipe = write(tmp_path / "recipe.py", 'from converge import file\n'
                                           'file("/etc/motd", content="by sudo\\n")\n')
    inv = inventory(tmp_path, lab, [lab_node], user="deploy")
    refused = converge(tmp_path, "apply", str(recipe), "-i", str(inv))
    assert refused.returncode == 1
    assert "Permission denied" in refused.stdout or "permission denied" in refused.stdout
    done = converge(tmp_path, "apply", str(recipe), "-i", str(inv), "--become")
    assert done.returncode == 0, done.stdout + done.stderr
    assert lab_node.read_file("/etc/motd") == b"by sudo\n"


def test_become_with_a_password(lab: Lab, lab_node: Node, tmp_path: Path) -> None:
    add_user(lab_node, lab, "ops", sudo="ALL", password="s3cret pass")
    recipe = write(tmp_path / "recipe.py", 'from converge import file\n'
                                           'file("/etc/motd", content="by ops\\n")\n')
    inv = inventory(tmp_path, lab, [lab_node], user="ops", become=True)
    refused = converge(tmp_path, "apply", str(recipe), "-i", str(inv))
    assert refused.returncode == 1
    assert "sudo needs a password for ops" in refused.stdout
    assert "--ask-become-pass" in refused.stdout
    host = load(str(inv)).hosts[lab_node.name]
    wrong = run(recipe, [SSHTransport(host, become_password="nope")], remote=True)
    assert "sudo refused the become password" in wrong.report["hosts"][lab_node.name]["error"]
    good = run(recipe, [SSHTransport(host, become_password="s3cret pass")], remote=True)
    assert not good.failed, good.report
    assert lab_node.read_file("/etc/motd") == b"by ops\n"
    ps = lab_node.run(["ps", "-eo", "args"]).stdout
    assert "s3cret" not in ps


def test_changed_host_key_is_refused_loudly(lab: Lab, lab_node: Node, tmp_path: Path) -> None:
    other = lab.up(1)[0]
    try:
        key = (lab.directory / "nodes" / other.name / "ssh_host_ed25519_key.pub").read_text()
        known = tmp_path / "known_hosts"
        known.write_text("%s %s\n" % (lab_node.address, " ".join(key.split()[:2])))
        recipe = write(tmp_path / "recipe.py", RECIPE)
        inv = inventory(tmp_path, lab, [lab_node], known_hosts=known)
        for extra in ([], ["--accept-new"]):
            done = converge(tmp_path, "apply", str(recipe), "-i", str(inv), *extra)
            assert done.returncode == 1
            assert "HOST KEY CHANGED" in done.stdout and "ssh-keygen -R" in done.stdout
        assert known.read_text().count("\n") == 1
        with pytest.raises(FileNotFoundError):
            lab_node.read_file("/srv/app/f0")
    finally:
        lab.down([other.name])


def test_unknown_host_refused_then_accepted_with_accept_new(lab: Lab, lab_node: Node,
                                                             tmp_path: Path) -> None:
    known = tmp_path / "ssh" / "known_hosts"
    recipe = write(tmp_path / "recipe.py", RECIPE)
    inv = inventory(tmp_path, lab, [lab_node], known_hosts=known)
    refused = converge(tmp_path, "apply", str(recipe), "-i", str(inv))
    assert refused.returncode == 1
    assert "unknown host key" in refused.stdout and "--accept-new" in refused.stdout
    assert not known.exists()
    accepted = converge(tmp_path, "apply", str(recipe), "-i", str(inv), "--accept-new")
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert known.read_text().startswith(lab_node.address + " ssh-ed25519 ")
    again = converge(tmp_path, "apply", str(recipe), "-i", str(inv))
    assert again.returncode == 0, again.stdout + again.stderr


def test_target_without_python3_gets_a_clear_error(lab: Lab, lab_node: Node,
                                                    tmp_path: Path) -> None:
    add_user(lab_node, lab, "nopy", bashrc="PATH=/nowhere\n")
    recipe = write(tmp_path / "recipe.py", RECIPE)
    inv = inventory(tmp_path, lab, [lab_node], user="nopy")
    done = converge(tmp_path, "apply", str(recipe), "-i", str(inv))
    assert done.returncode == 1
    assert "python3 not found on the target" in done.stdout
    assert "Converged 1 host: 0 ok, 0 changed, 1 failed, 0 unreachable" in done.stdout


def proxy_setup(lab: Lab, node: Node, tmp_path: Path, route: str) -> Path:
    """An inventory whose only host, ``inner``, is the node's own sshd seen from
    inside the node (127.0.0.1), reachable only through ``route`` from the OpenSSH
    config: a real second hop, since nothing outside the node can reach that
    address. known_hosts holds the node's key for both names."""
    recorded = lab.known_hosts_path.read_text().splitlines()
    mine = [line for line in recorded if line.split()[0] == node.address]
    known = tmp_path / "known_hosts"
    known.write_text("".join("%s\n%s\n" % (line, line.replace(node.address, "127.0.0.1", 1))
                             for line in mine))
    config = tmp_path / "ssh_config"
    config.write_text(textwrap.dedent("""\
        Host inner
          HostName 127.0.0.1
          %s
        Host *
          User root
          IdentityFile %s
          UserKnownHostsFile %s
        """) % (route, lab.key_path, known))
    path = tmp_path / "inventory.yml"
    path.write_text(json.dumps({"ssh_config": str(config), "hosts": {"inner": {}}}))
    return path


@pytest.mark.parametrize("route", [
    pytest.param("ProxyJump root@{address}", id="proxyjump"),
    pytest.param("ProxyCommand ssh -F {config} -W %h:%p root@{address}", id="proxycommand"),
])
def test_through_a_jump_host_from_the_openssh_config(lab: Lab, lab_node: Node, tmp_path: Path,
                                                     route: str) -> None:
    inv = proxy_setup(lab, lab_node, tmp_path, route.format(
        address=lab_node.address, config=tmp_path / "ssh_config"))
    recipe = write(tmp_path / "recipe.py", """\
        from converge import file
        file("/srv/jumped", content="through the jump host\\n")
        """)
    first = converge(tmp_path, "apply", str(recipe), "-i", str(inv))
    assert first.returncode == 0, first.stdout + first.stderr
    assert "- create new file /srv/jumped" in first.stdout
    assert lab_node.read_file("/srv/jumped") == b"through the jump host\n"
    second = converge(tmp_path, "apply", str(recipe), "-i", str(inv))
    assert second.returncode == 0, second.stdout + second.stderr
    assert "(up to date)" in second.stdout


def test_a_jump_host_that_refuses_is_named_in_the_error(lab: Lab, lab_node: Node,
                                                        tmp_path: Path) -> None:
    inv = proxy_setup(lab, lab_node, tmp_path, "ProxyJump nobody@%s" % lab_node.address)
    recipe = write(tmp_path / "recipe.py", "from converge import file\n"
                   "file('/srv/never', content='x')\n")
    done = converge(tmp_path, "apply", str(recipe), "-i", str(inv))
    assert done.returncode == 1
    assert "nobody@%s:22 (jump host nobody@%s)" % (lab_node.address, lab_node.address) \
        in done.stdout + done.stderr
    assert lab_node.run(["test", "-e", "/srv/never"]).returncode == 1


def test_keys_from_ssh_agent(lab: Lab, lab_node: Node, tmp_path: Path) -> None:
    """No key in the inventory, none in ~/.ssh: the key the agent holds is used."""
    home = tmp_path / "home"
    home.mkdir()
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
    try:
        assert agent.stdout is not None
        agent.stdout.readline()  # "SSH_AUTH_SOCK=...; export ..." once it listens
        env = {**os.environ, "SSH_AUTH_SOCK": str(sock), "HOME": str(home)}
        subprocess.run(["ssh-add", str(lab.key_path)], env=env, check=True,
                       capture_output=True)
        inv = tmp_path / "inventory.yml"
        inv.write_text(json.dumps({"hosts": {lab_node.name: {
            "address": lab_node.address, "user": "root",
            "known_hosts": str(lab.known_hosts_path)}}}))
        recipe = write(tmp_path / "recipe.py", "from converge import file\n"
                       "file('/srv/by-agent', content='agent key\\n')\n")
        done = subprocess.run([sys.executable, "-m", "converge", "apply", str(recipe),
                               "-i", str(inv)], capture_output=True, text=True,
                              cwd=tmp_path, env=env, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        assert lab_node.read_file("/srv/by-agent") == b"agent key\n"
        without = subprocess.run([sys.executable, "-m", "converge", "apply", str(recipe),
                                  "-i", str(inv)], capture_output=True, text=True,
                                 cwd=tmp_path, timeout=120,
                                 env={**env, "SSH_AUTH_SOCK": str(tmp_path / "none")})
        assert without.returncode == 1
        assert "no key to offer root@%s:22" % lab_node.address in without.stdout
        assert "load one into ssh-agent" in without.stdout
    finally:
        agent.kill()
        agent.communicate()
