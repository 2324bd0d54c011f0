"""The managed-file layer (agent/managed.py) against links a real unprivileged user,
alice, plants in a lab node: root's agent writes, backs up and removes managed
files under her home, and never reaches a file of root's through her links. Also
the state directory of a user other than root: one choice for the journal and the
run store, XDG_STATE_HOME honoured by both."""

from __future__ import annotations

import io
import json
import sys
import tarfile
from pathlib import Path
from typing import Any, Dict

import pytest

from tests.conftest import Alice

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parent.parent.parent
VICTIM = "/root/victim"
PYTHON = "/usr/bin/python3"  # alice's: the test's own interpreter may sit in root's home

# Run as root in the node: each case is a managed.Write; the answer says how it ended.
SCRIPT = r"""
import json, sys
from converge.agent import managed
from converge.agent.system import System
from converge.errors import ConvergeError

system = System()
out = {}
for name, (path, content, follow, backup) in json.loads(sys.argv[1]).items():
    want = managed.Write(path, None if content is None else content.encode(), 0o644,
                         follow=follow, backup=backup)
    try:
        managed.write(system, want)
        out[name] = "done"
    except ConvergeError as exc:
        out[name] = exc.message
print(json.dumps(out))
"""

CASES = {
    # a link at the path: replaced as a link (never written through, never backed up)
    "at-path": ("/home/alice/at-path", "converge\n", False, 3),
    # file's semantics (follow): her link is refused, not written through
    "at-path-follow": ("/home/alice/at-path-follow", "converge\n", True, 3),
    # a link higher up the path, to root's folder: refused, written or not
    "parent": ("/home/alice/up/victim", "converge\n", False, 0),
    "parent-follow": ("/home/alice/up/victim", "converge\n", True, 3),
    # removals: the link itself goes, what it leads to stays
    "remove-at-path": ("/home/alice/gone", None, False, 3),
    "remove-through-parent": ("/home/alice/up/victim", None, False, 3),
}


def sh(node: Any, script: str) -> str:
    done = node.run(["sh", "-c", script])
    assert done.returncode == 0, done.stderr
    return str(done.stdout)


def test_links_alice_plants_never_lead_a_managed_write_to_roots_files(alice: Alice) -> None:
    node = alice.node
    sh(node, "echo 'root only' > %s && chmod 0600 %s" % (VICTIM, VICTIM))
    for link, to in (("at-path", VICTIM), ("at-path-follow", VICTIM), ("up", "/root"),
                     ("gone", VICTIM)):
        assert alice.sh("ln -s %s /home/alice/%s" % (to, link)).returncode == 0
    done = node.run([sys.executable, "-c", SCRIPT, json.dumps(CASES)], timeout=120)
    assert done.returncode == 0, done.stderr
    result: Dict[str, str] = json.loads(done.stdout)
    assert sh(node, "cat %s; stat -c '%%a %%U' %s" % (VICTIM, VICTIM)) == "root only\n600 root\n"
    assert result["at-path"] == "done"
    assert sh(node, "stat -c '%F %U' /home/alice/at-path; cat /home/alice/at-path") == \
        "regular file root\nconverge\n"
    refused = "refusing to follow the symbolic link /home/alice/%s -> %s: it is owned by alice"
    assert result["at-path-follow"].startswith(refused % ("at-path-follow", VICTIM))
    for name in ("parent", "parent-follow", "remove-through-parent"):
        assert result[name].startswith(refused % ("up", "/root")), (name, result[name])
    assert result["remove-at-path"] == "done"
    assert node.run(["test", "-L", "/home/alice/gone"]).returncode != 0
    assert sh(node, "readlink /home/alice/at-path-follow /home/alice/up") == VICTIM + "\n/root\n"
    # nothing of root's was copied into the backups by way of her links
    assert sh(node, "grep -rl 'root only' /var/lib/converge/backup 2>/dev/null || true") == ""


def converge_for_alice(alice: Alice) -> str:
    """A copy of this checkout's converge package alice can read (the checkout, or
    the interpreter's site-packages, may sit where she cannot): its folder."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(REPO / "converge", arcname="converge",
                filter=lambda info: None if "__pycache__" in info.name else info)
    done = alice.node.run(["sh", "-c", "mkdir -p /opt/alice-py && tar -x -C /opt/alice-py "
                           "-f - && chmod -R a+rX,go-w /opt/alice-py"],
                          input=buffer.getvalue(), text=False)
    assert done.returncode == 0, done.stderr
    return "/opt/alice-py"


def test_a_user_other_than_root_has_one_state_directory_xdg_included(alice: Alice) -> None:
    probe = ("from converge.agent.system import System; from converge.store import default_url;"
             "print(System().state_dir()); print(default_url())")
    path = "PYTHONPATH=" + converge_for_alice(alice)
    done = alice.run(["env", path, "XDG_STATE_HOME=/home/alice/xdg", PYTHON, "-c", probe])
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["/home/alice/xdg/converge",
                                        "sqlite:///home/alice/xdg/converge/store.db"]
    done = alice.run(["env", "-u", "XDG_STATE_HOME", path, "HOME=/home/alice", PYTHON, "-c",
                      probe])
    assert done.stdout.splitlines() == ["/home/alice/.local/state/converge",
                                        "sqlite:///home/alice/.local/state/converge/store.db"]
