"""The inventory: hosts, groups, vars and connection settings; -H targets; --limit."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from converge.errors import InventoryError
from converge.inventory import load, parse_target, targets


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "inventory.yml"
    path.write_text(textwrap.dedent(text))
    return str(path)


EXAMPLE = """\
vars:
  known_hosts: ssh/known_hosts
  user: deploy
  chrony: {maxpoll: 10, servers: [a]}
hosts:
  web1: {address: 10.0.0.11, vars: {chrony: {servers: [b]}}}
  web2: {address: 10.0.0.12, become: true}
  db1: {address: 10.0.0.21, port: 2222, user: root, key: ~/.ssh/db}
groups:
  web:
    hosts: [web1, web2]
    vars: {nginx: {hsts: true}, chrony: {maxpoll: 8}}
  prod:
    children: [web]
    hosts:
      db1:
      lb1: {address: 10.0.0.5}
    vars: {env: prod, port: 2200}
"""


def test_hosts_groups_and_layered_vars(tmp_path: Path) -> None:
    inv = load(write(tmp_path, EXAMPLE))
    assert list(inv.hosts) == ["web1", "web2", "db1", "lb1"]
    web1 = inv.hosts["web1"]
    assert (web1.address, web1.user, web1.port) == ("10.0.0.11", "deploy", 2200)
    assert web1.known_hosts == str(tmp_path / "ssh/known_hosts")
    # top < parent group (prod) < child group (web) < host
    assert web1.vars == {"chrony": {"maxpoll": 8, "servers": ["b"]}, "env": "prod",
                         "nginx": {"hsts": True}}
    assert web1.groups == ["prod", "web"]
    assert inv.hosts["web2"].become is True
    db1 = inv.hosts["db1"]
    assert (db1.port, db1.user, db1.key) == (2222, "root", str(Path.home() / ".ssh/db"))
    assert "known_hosts" not in db1.vars and "port" not in db1.vars
    assert inv.groups == {"web": ["web1", "web2"], "prod": ["web1", "web2", "db1", "lb1"]}
    # vars are copies: one host's layer never leaks into another's
    web1.vars["chrony"]["maxpoll"] = 1
    assert inv.hosts["web2"].vars["chrony"]["maxpoll"] == 8


def test_lab_inventory_shape(tmp_path: Path) -> None:
    inv = load(write(tmp_path, """\
        # converge lab inventory
        hosts:
          node1:
            address: "10.213.0.2"
            port: 22
            user: root
            key: "/tmp/lab/ssh/id_ed25519"
            known_hosts: "/tmp/lab/ssh/known_hosts"
          node2:
            address: "10.213.0.6"
            port: 22
            user: root
            key: "/tmp/lab/ssh/id_ed25519"
        vars:
          known_hosts: "/tmp/lab/ssh/known_hosts2"
        """))
    assert inv.hosts["node1"].known_hosts == "/tmp/lab/ssh/known_hosts"
    assert inv.hosts["node2"].known_hosts == "/tmp/lab/ssh/known_hosts2"
    assert inv.hosts["node2"].vars == {}
    assert load(write(tmp_path, "hosts: {}\n")).hosts == {}


@pytest.mark.parametrize("patterns, expected", [
    pytest.param([], ["web1", "web2", "db1", "lb1"], id="no-limit"),
    pytest.param(["web1"], ["web1"], id="host"),
    pytest.param(["web"], ["web1", "web2"], id="group"),
    pytest.param(["prod,!web"], ["db1", "lb1"], id="exclude"),
    pytest.param(["w*", "db1"], ["web1", "web2", "db1"], id="glob"),
    pytest.param(["!db1"], ["web1", "web2", "lb1"], id="only-exclude"),
])
def test_limit(tmp_path: Path, patterns: list, expected: list) -> None:
    inv = load(write(tmp_path, EXAMPLE))
    assert [h.name for h in inv.select(patterns)] == expected


def test_limit_matching_nothing_says_what_exists(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="'nope' matches no host") as err:
        load(write(tmp_path, EXAMPLE)).select(["nope"])
    assert "web1" in str(err.value) and "prod" in str(err.value)


@pytest.mark.parametrize("text, expected", [
    pytest.param("web1", ("web1", "web1", None, None), id="host"),
    pytest.param("deploy@web1", ("web1", "web1", None, "deploy"), id="user"),
    pytest.param("10.0.0.1:2222", ("10.0.0.1:2222", "10.0.0.1", 2222, None), id="port"),
    pytest.param("me@[::1]:22", ("[::1]:22", "::1", 22, "me"), id="ipv6-port"),
    pytest.param("fe80::1", ("fe80::1", "fe80::1", None, None), id="ipv6"),
])
def test_parse_target(text: str, expected: tuple) -> None:
    host = parse_target(text)
    assert (host.name, host.address, host.port, host.user) == expected


@pytest.mark.parametrize("text, message", [
    pytest.param("web1:99999", "port '99999' is not a number", id="port-range"),
    pytest.param("web1:x", "port 'x'", id="port-text"),
    pytest.param("@web1", "empty user", id="empty-user"),
    pytest.param("[::1", "expected [address]:port", id="bracket"),
])
def test_bad_targets(text: str, message: str) -> None:
    with pytest.raises(InventoryError, match=message.replace("[", r"\[")):
        parse_target(text)


def test_targets_combines_inventory_and_hosts(tmp_path: Path) -> None:
    hosts, _ = targets(["root@10.9.9.9"], write(tmp_path, EXAMPLE), ["10.9.9.9,db1"])
    assert [h.name for h in hosts] == ["db1", "10.9.9.9"]
    with pytest.raises(InventoryError, match="also in"):
        targets(["web1"], write(tmp_path, EXAMPLE))
    with pytest.raises(InventoryError, match="no hosts"):
        targets([], write(tmp_path, "hosts:\n"))


@pytest.mark.parametrize("text, where, message", [
    pytest.param("hosts:\n  web1:\n    adress: x\n", 3, "unknown key 'adress'", id="host-key"),
    pytest.param("hosts: [a, b]\n", 1, "hosts must be a mapping, not a list", id="hosts-list"),
    pytest.param("hots: {}\n", 1, "unknown key 'hots'", id="top-key"),
    pytest.param("hosts:\n  a: {port: 70000}\n", 2, "port 70000", id="port"),
    pytest.param("hosts:\n  a:\n    become: 'yes'\n", 3, "become must be true or false",
                 id="become"),
    pytest.param("hosts:\n  a:\ngroups:\n  g:\n    hosts: [a, b]\n", 5, "unknown host 'b'",
                 id="group-host"),
    pytest.param("groups:\n  g: {children: [h]}\n  h: {children: [g]}\n", 2,
                 "groups form a cycle", id="cycle"),
    pytest.param("groups:\n  g:\n    children: [x]\n", 3, "unknown child group 'x'",
                 id="child"),
    pytest.param("hosts:\n  a: {address: [1]}\n", 2, "address must be a non-empty string",
                 id="address"),
    pytest.param("hosts:\n  a: {\n", 3, "invalid YAML", id="yaml"),
    pytest.param("hosts:\n  'a b': {}\n", 2, "host name 'a b'", id="name"),
])
def test_mistakes_name_file_and_line(tmp_path: Path, text: str, where: int,
                                     message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InventoryError) as err:
        load(path)
    assert message in str(err.value)
    assert err.value.source is not None and err.value.source.endswith(":%d" % where)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="cannot read inventory"):
        load(str(tmp_path / "nope.yml"))


def test_example_inventory_loads() -> None:
    example = Path(__file__).parent.parent / "examples" / "inventory.yml"
    inv = load(str(example))
    assert inv.hosts and inv.groups
