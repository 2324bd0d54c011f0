"""Vault values pushed over SSH: a cookbook whose attributes.yaml is encrypted whole
and an inventory with `!vault` values converge a lab node; no decrypted value shows
in the console, the JSON report, the node's journal, or any process's argv on the
node or the controller while the agent runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from converge import vault
from converge.lab import Lab, Node
from tests.lab.test_secrets_ssh import SCAN, host_cmdlines

pytestmark = pytest.mark.lab

RECIPE = """\
from converge import directory, execute, file
directory("/srv/app")
file("/srv/app/db.conf", content="password=%s\\n" % attrs.db.password, mode="0600")
file("/srv/app/api.conf", content="token=%s\\n" % attrs.api_token, mode="0600")
file("/srv/app/port", content="%s\\n" % attrs.db.port)
# hold the agent: say it is here, then wait for the test (fixed text, no user value)
execute(["sh", "-c", "echo here > /tmp/ready && head -c 1 /tmp/gate && touch /tmp/held"],
        creates="/tmp/held")
"""


def test_vault_values_converge_over_ssh_and_never_show(lab: Lab, lab_node: Node,
                                                       tmp_path: Path) -> None:
    password, token = "pw-%s" % os.urandom(8).hex(), "tok-%s" % os.urandom(8).hex()
    (tmp_path / "vault-pass").write_text("team password\n")
    secret = vault.Secret("default", str(tmp_path / "vault-pass"))
    book = tmp_path / "app"
    book.mkdir()
    (book / "recipe.py").write_text(RECIPE)
    (book / "attributes.yaml").write_text(vault.encrypt(
        ("db:\n  password: %s\n  port: 5432\n" % password).encode(), secret.password()))
    (tmp_path / "inventory.yml").write_text(textwrap.dedent("""\
        hosts:
          %s:
            address: %s
            user: root
            key: %s
            known_hosts: %s
            vars:
        """) % (lab_node.name, lab_node.address, lab.key_path, lab.known_hosts_path)
        + textwrap.indent(vault.encrypt_string(token, secret, "api_token"), "      "))
    for fifo in ("/tmp/ready", "/tmp/gate"):
        lab_node.run(["mkfifo", fifo]).check_returncode()
    argv = [sys.executable, "-m", "converge", "apply", "app", "-i", "inventory.yml", "--diff",
            "--json", "report.json", "--vault-password-file", "vault-pass"]
    controller = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    released = False
    try:
        ready = lab_node.run(["head", "-c", "5", "/tmp/ready"], timeout=120)
        assert ready.stdout == "here\n", (ready, controller.poll())
        scan = lab_node.run(["python3", "-c", SCAN], timeout=60)
        lines = [" ".join(a) for a in json.loads(scan.stdout).values()] + host_cmdlines()
        assert any("head -c 1 /tmp/gate" in line for line in lines)
        assert [line for line in lines if password in line or token in line] == []
        lab_node.run(["sh", "-c", "echo go > /tmp/gate"], timeout=60).check_returncode()
        released = True
        out, err = controller.communicate(timeout=120)
    finally:
        if not released:
            lab_node.run(["sh", "-c", "echo go > /tmp/gate"], timeout=10)
        if controller.poll() is None:
            controller.kill()
            controller.wait()
    assert controller.returncode == 0, out + err
    assert lab_node.read_file("/srv/app/db.conf") == ("password=%s\n" % password).encode()
    assert lab_node.read_file("/srv/app/api.conf") == ("token=%s\n" % token).encode()
    assert "update content in file /srv/app/db.conf (sensitive)" in out
    assert "update content in file /srv/app/api.conf (sensitive)" in out
    assert "+5432" in out  # a value beside them in the encrypted file, not itself a secret
    report = (tmp_path / "report.json").read_text()
    journals = lab_node.run(["sh", "-c", "cat /var/lib/converge/runs/*.json"])
    assert journals.returncode == 0
    everything = out + err + report + journals.stdout
    assert password not in everything and token not in everything
    [journal] = [j for j in map(json.loads, journals.stdout.splitlines())
                 if any(r["id"] == "file[/srv/app/db.conf]" for r in j["resources"])]
    assert [r["id"] for r in journal["resources"] if r.get("sensitive")] == [
        "file[/srv/app/db.conf]", "file[/srv/app/api.conf]"]
    again = subprocess.run(argv[:-4] + ["--vault-password-file", "vault-pass"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=120,
                           stdin=subprocess.DEVNULL)
    assert again.returncode == 0, again.stderr
    assert "file[/srv/app/db.conf] action create (up to date)" in again.stdout
