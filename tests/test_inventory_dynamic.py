"""Inventories made by programs: an executable in Ansible's inventory-script format
(existing scripts work unchanged), a Python inventory.py, and several -i merged."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from converge.errors import InventoryError
from converge.inventory import load, load_all, targets

ANSIBLE_JSON = {
    "all": {"vars": {"ntp_server": "ntp.example", "ansible_user": "deploy"}},
    "web": {"hosts": ["web1", "web2"], "vars": {"http_port": 8080}},
    "db": ["db1"],
    "prod": {"children": ["web", "db", "ungrouped"]},
    "_meta": {"hostvars": {
        "web1": {"ansible_host": "10.0.0.11", "ansible_port": "2222",
                 "ansible_ssh_private_key_file": "keys/web", "ansible_become": "yes",
                 "ansible_become_user": "postgres",
                 "ansible_python_interpreter": "/usr/bin/python3.11", "rack": "a1"},
        "db1": {"ansible_host": "10.0.0.21", "ansible_user": "dba"},
    }},
}


def script(tmp_path: Path, body: str, name: str = "inventory.sh") -> Path:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def test_an_ansible_inventory_script(tmp_path: Path) -> None:
    (tmp_path / "out.json").write_text(json.dumps(ANSIBLE_JSON))
    path = script(tmp_path, '[ "$1" = --list ] || exit 9\ncat out.json\n')
    inv = load(str(path))
    web1, web2, db1 = inv.hosts["web1"], inv.hosts["web2"], inv.hosts["db1"]
    assert (web1.address, web1.port, web1.user, web1.become, web1.become_user,
            web1.python) == ("10.0.0.11", 2222, "deploy", True, "postgres",
                             "/usr/bin/python3.11")
    assert web1.key == str(tmp_path / "keys/web")
    assert web1.vars == {"ntp_server": "ntp.example", "http_port": 8080, "rack": "a1"}
    assert (db1.address, db1.user) == ("10.0.0.21", "dba")
    assert web2.address is None and web2.hostname == "web2"
    assert inv.groups["prod"] == ["web1", "web2", "db1"]
    chosen, _ = targets(inventory=[str(path)], limit=["db"])
    assert [h.name for h in chosen] == ["db1"]


@pytest.mark.parametrize("body, message", [
    ("echo 'no such cloud' >&2; exit 2\n",
     "inventory script inventory.sh --list exited 2: no such cloud"),
    ("echo '{not json'\n", "inventory script inventory.sh --list printed no JSON inventory"),
    ("echo '[1, 2]'\n", "printed a list, not a JSON object of groups"),
    ("exec sleep 30\n", "inventory script inventory.sh did not finish within 1s"),
    ("echo '{\"web\": 3}'\n", "group web: expected a list of hosts or a mapping, not a number"),
    ("echo '{\"_meta\": {\"hostvars\": {\"h\": {\"ansible_port\": \"x\"}}}}'\n",
     "port 'x' is not a number from 1 to 65535"),
], ids=["fails", "bad-json", "not-an-object", "hangs", "bad-group", "bad-port"])
def test_a_broken_script_is_one_clear_error(tmp_path: Path, body: str, message: str) -> None:
    path = script(tmp_path, body)
    (tmp_path / "r.py").write_text("from converge import file\n")
    done = subprocess.run([sys.executable, "-m", "converge", "plan", "r.py", "-i", str(path)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "CONVERGE_INVENTORY_TIMEOUT": "1"})
    assert done.returncode == 1
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) <= 2, done.stderr


PYTHON_INVENTORY = """\
web = ["web%d" % n for n in range(1, 4)]
hosts = {name: {"address": "10.0.1.%d" % (10 + i)} for i, name in enumerate(web)}
groups = {"web": {"hosts": web, "vars": {"role": "frontend"}}}
vars = {"user": "deploy"}
"""


def test_a_python_inventory(tmp_path: Path) -> None:
    (tmp_path / "inventory.py").write_text(PYTHON_INVENTORY)
    inv = load(str(tmp_path / "inventory.py"))
    assert [(h.name, h.address, h.user, h.vars) for h in inv.hosts.values()] == [
        ("web%d" % n, "10.0.1.%d" % (9 + n), "deploy", {"role": "frontend"})
        for n in range(1, 4)]
    (tmp_path / "fn.py").write_text(
        "def inventory():\n    return {'hosts': {'a': {'address': '10.0.0.1'}}}\n")
    assert list(load(str(tmp_path / "fn.py")).hosts) == ["a"]
    (tmp_path / "bad.py").write_text("hosts = {}\nraise KeyError('cloud')\n")
    with pytest.raises(InventoryError) as caught:
        load(str(tmp_path / "bad.py"))
    assert str(caught.value).endswith("bad.py:2: KeyError: 'cloud'")


def test_several_inventories_merge_in_order(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text(textwrap.dedent("""\
        hosts:
          web1: {address: 10.0.0.1, vars: {app: {port: 80, name: a}}}
          db1: {address: 10.0.0.2}
        groups:
          web: {hosts: [web1]}
        """))
    (tmp_path / "b.py").write_text(
        "hosts = {'web1': {'address': '10.9.9.9', 'vars': {'app': {'port': 8080}}},"
        " 'web2': {'address': '10.0.0.3'}}\n"
        "groups = {'web': {'hosts': ['web2']}}\n")
    inv = load_all([str(tmp_path / "a.yml"), str(tmp_path / "b.py")])
    assert list(inv.hosts) == ["web1", "db1", "web2"]
    assert inv.hosts["web1"].address == "10.9.9.9"
    assert inv.hosts["web1"].vars == {"app": {"port": 8080, "name": "a"}}
    assert inv.groups["web"] == ["web1", "web2"]


def test_become_user_and_python_shape_the_remote_command(tmp_path: Path) -> None:
    from converge.transport.ssh import SSHTransport

    (tmp_path / "out.json").write_text(json.dumps(ANSIBLE_JSON))
    inv = load(str(script(tmp_path, "cat out.json\n")))
    command, _ = SSHTransport(inv.hosts["web1"], ssh_config=os.devnull)._command("ab" * 32)
    assert command.startswith("sudo -n -u postgres -- /usr/bin/python3.11 -I -S -c ")
    plain, _ = SSHTransport(inv.hosts["db1"], ssh_config=os.devnull)._command("ab" * 32)
    assert plain.startswith("python3 -I -S -c ")


def test_bad_become_user_and_python_are_refused(tmp_path: Path) -> None:
    (tmp_path / "i.yml").write_text("hosts:\n  a: {python: 'python3 -c evil'}\n")
    with pytest.raises(InventoryError,
                       match="host a: python 'python3 -c evil' is not a path to python3"):
        load(str(tmp_path / "i.yml"))
    (tmp_path / "j.yml").write_text("hosts:\n  a: {become_user: 'root; id'}\n")
    with pytest.raises(InventoryError, match="host a: user 'root; id' is not a POSIX user name"):
        load(str(tmp_path / "j.yml"))
