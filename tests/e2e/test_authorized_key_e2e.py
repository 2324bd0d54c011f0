"""authorized_key in a lab node with a real user: the key added with ~/.ssh 0700 and
the file 0600 made for the user, the second run up to date (mtime kept), a comment
or options change updating the line in place, drift corrected, exclusive, delete,
rollback, and a link the user planted for ~/.ssh refused."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.node_helpers import apply, converge, sh

pytestmark = pytest.mark.lab


def keypair(tmp_path: Path, name: str) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name + "@ci", "-f",
                    str(tmp_path / name)], check=True, capture_output=True)
    return (tmp_path / (name + ".pub")).read_text().strip()


def recipe(*lines: str) -> str:
    return "from converge import authorized_key\n" + "".join(line + "\n" for line in lines)


def test_authorized_key(alice: Any, tmp_path: Path) -> None:
    node = alice.node
    one, two = keypair(tmp_path, "one"), keypair(tmp_path, "two")
    keys = "/home/alice/.ssh/authorized_keys"
    first = apply(node, tmp_path, recipe("authorized_key('alice', %r)" % one))
    assert first.ok, first.stdout + first.stderr
    body = one.split()[1]
    assert first.resources()[0]["id"] == "authorized_key[alice ssh-ed25519 \u2026%s]" % body[-8:]
    assert sh(node, "stat -c '%a %U %G' /home/alice/.ssh " + keys) == (
        "700 alice alice\n600 alice alice\n")
    assert node.read_file(keys).decode() == one + "\n"
    stamp = sh(node, "stat -c %Y.%y " + keys)
    second = apply(node, tmp_path, recipe("authorized_key('alice', %r)" % one))
    assert [r["status"] for r in second.resources()] == ["up_to_date"]
    assert sh(node, "stat -c %Y.%y " + keys) == stamp

    # options and comment change the line in place; another key added by hand stays
    sh(node, "echo '%s' >> %s" % (two, keys))
    changed = apply(node, tmp_path, recipe(
        "authorized_key('alice', %r, options='no-port-forwarding', comment='laptop')" % one))
    assert changed.ok, changed.stdout
    assert node.read_file(keys).decode() == "no-port-forwarding %s laptop\n%s\n" % (
        " ".join(one.split()[:2]), two)

    # drift by hand: the line removed, modes opened up
    sh(node, "sed -i 1d %s && chmod 0644 %s && chmod 0755 /home/alice/.ssh" % (keys, keys))
    fixed = apply(node, tmp_path, recipe("authorized_key('alice', %r)" % one))
    assert fixed.ok, fixed.stdout
    assert fixed.resources()[0]["changes"] == [
        "change mode of /home/alice/.ssh from '0755' to '0700'",
        "change mode of %s from '0644' to '0600'" % keys,
        "add key ssh-ed25519 \u2026%s" % body[-8:]]
    exclusive = apply(node, tmp_path, recipe("authorized_key('alice', %r, exclusive=True)" % one))
    assert exclusive.ok and node.read_file(keys).decode() == one + "\n"

    code, out = converge(node, "rollback", "--yes")
    assert code == 0, out
    assert two in node.read_file(keys).decode()
    gone = apply(node, tmp_path, recipe("authorized_key('alice', %r, action='delete')" % one))
    assert gone.ok and one.split()[1] not in node.read_file(keys).decode()

    # alice swaps ~/.ssh for a link to root's: refused, root's file untouched
    sh(node, "mkdir -p /root/.ssh && touch /root/.ssh/authorized_keys")
    before = node.read_file("/root/.ssh/authorized_keys")
    alice.sh("rm -rf /home/alice/.ssh && ln -s /root/.ssh /home/alice/.ssh").check_returncode()
    refused = apply(node, tmp_path, recipe("authorized_key('alice', %r)" % one))
    assert [r["status"] for r in refused.resources()] == ["failed"]
    assert node.read_file("/root/.ssh/authorized_keys") == before


def test_bad_keys_are_compile_errors(tmp_path: Path) -> None:
    from converge.errors import PropertyError
    from converge.resources.authorized_key import AuthorizedKey

    for key, message in (("ssh-foo AAAA", "must start with a key type"),
                         ("ssh-ed25519 !!!", "not base64"),
                         ("ssh-ed25519 AAAAB3NzaC1yc2E=", "is not a ssh-ed25519 key")):
        with pytest.raises(PropertyError, match=message):
            AuthorizedKey("alice", key)
