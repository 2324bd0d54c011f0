"""execute in a lab node: creates, a user, guards; guarded commands are idempotent."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from converge.lab import Node
from converge.lab.idempotence import IdempotenceResult

pytestmark = pytest.mark.lab

RECIPE = """
from converge import execute
execute(["sh", "-c", "id -un > /tmp/whoami.$$ && mv /tmp/whoami.$$ /tmp/made/whoami"],
        creates="/tmp/made/whoami", user="nobody")
execute("echo $GREETING > /root/guarded", shell=True, environment={"GREETING": "hi"},
        not_if=["test", "-e", "/root/guarded"], only_if=["test", "-e", "/tmp/made/whoami"])
"""


def test_execute_guarded_runs_once(lab_node: Node, tmp_path: Path,
                                   assert_idempotent: Callable[..., IdempotenceResult]) -> None:
    lab_node.run(["install", "-d", "-o", "nobody", "/tmp/made"])
    recipe = tmp_path / "recipe.py"
    recipe.write_text(RECIPE)
    result = assert_idempotent(lab_node, recipe)
    assert [r["status"] for r in result.first.resources()] == ["updated", "updated"]
    assert [(r["status"], r.get("skip_reason")) for r in result.second.resources()] == [
        ("skipped", "creates"), ("skipped", "not_if")]
    assert "(skipped due to creates)" in result.second.stdout
    assert lab_node.read_file("/tmp/made/whoami") == b"nobody\n"
    assert lab_node.read_file("/root/guarded") == b"hi\n"



IDS = """
from converge import execute
for user in ["alice", "%(uid)s", "65534"]:
    execute(["sh", "-c", 'echo "$(id -u) $(id -g) $(id -G) $USER $HOME" > "$1"', "sh",
             "/tmp/ids/" + user], user=user)
"""
NO_PASSWD_ENTRY = """
from converge import execute
for user, group in [("4242", "nogroup"), ("alice", "nogroup")]:
    execute(["sh", "-c", 'echo "$(id -u) $(id -g) $(id -G) $USER $HOME" > "$1"', "sh",
             "/tmp/ids/%s-%s" % (user, group)], user=user, group=group)
execute(["id"], user="4243")
"""


def test_execute_as_a_user_gets_its_groups_never_roots(lab_node: Node, tmp_path: Path) -> None:
    """user= by name or by number runs with the user's own primary group and its
    supplementary groups (initgroups), never with gid 0 or root's groups; a uid
    without a passwd entry needs group= and then gets that group only."""
    from converge.lab.idempotence import apply_in_node, place_recipe

    assert lab_node.run(["useradd", "-m", "-G", "staff,audio", "alice"]).returncode == 0
    uid = lab_node.run(["id", "-u", "alice"]).stdout.strip()
    gids = {name: lab_node.run(["getent", "group", name]).stdout.split(":")[2]
            for name in ("alice", "staff", "audio", "nogroup")}
    lab_node.run(["install", "-d", "-m", "1777", "/tmp/ids"]).check_returncode()

    def apply(text: str, name: str) -> dict:
        recipe = tmp_path / name
        recipe.write_text(text)
        done = apply_in_node(lab_node, place_recipe(lab_node, recipe), "/tmp/%s.json" % name)
        return {r["id"]: (r["status"], r.get("error")) for r in done.resources()}

    def ids(name: str) -> list:
        got = lab_node.read_file("/tmp/ids/" + name).decode().split()
        return got[:2] + [sorted(got[2:-2], key=int)] + got[-2:]

    statuses = apply(IDS % {"uid": uid}, "ids.py")
    assert [s for s, _ in statuses.values()] == ["updated"] * 3, statuses
    alice = [uid, gids["alice"], sorted([gids["alice"], gids["staff"], gids["audio"]], key=int),
             "alice", "/home/alice"]
    assert ids("alice") == alice
    assert ids(uid) == alice
    assert ids("65534") == ["65534", gids["nogroup"], [gids["nogroup"]], "nobody",
                            "/nonexistent"]

    statuses = apply(NO_PASSWD_ENTRY, "nopasswd.py")
    assert statuses.get("execute[id]", ("",))[0] == "failed", statuses
    assert statuses["execute[id]"][1].startswith(
        "uid 4243 has no entry in /etc/passwd on this machine, so it has no group to run "
        "with\nadd the user, or give group="), statuses
    assert ids("4242-nogroup") == ["4242", gids["nogroup"], [gids["nogroup"]], "4242", "/"]
    assert ids("alice-nogroup") == [uid, gids["nogroup"], sorted(
        [gids["nogroup"], gids["staff"], gids["audio"]], key=int), "alice", "/home/alice"]
