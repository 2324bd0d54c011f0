"""user and group in lab nodes, against the real useradd, usermod, userdel,
chpasswd, groupadd, groupmod, groupdel and gpasswd, through the real CLI: first
run, second run up to date with the account files untouched (mtimes included),
plan changing nothing, drift made by hand corrected and reported, rollback, and
the failures of the tools as failed resources that do not stop the others.

Cases the peers' users reported as bugs are named where they are covered."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from converge.lab import Node
from converge.lab.idempotence import ApplyRun, place_recipe
from tests.e2e.node_helpers import apply, converge, sh

pytestmark = pytest.mark.lab

# openssl passwd -6 -salt convergesalt secret1 / secret2
HASH1 = ("$6$convergesalt$ep4J8GDo3G8498aTMtNb8JSGmUqMLPHNHH8TDiCXzMny"
         "iAi47znq1xKrZOqIQuPKE2IVWTQldGBJOsGuegVE61")
HASH2 = ("$6$convergesalt$8SOneNFzqt.2FVH8Moqe0waN.CW.IKpFplluzh/XYJAg"
         "7nHzWv.ETzFO1yciKurPsYSLjTFZpSZpBlB5uwgVk/")
ACCOUNT_FILES = ("/etc/passwd", "/etc/shadow", "/etc/group", "/etc/gshadow")

RECIPE = f"""\
from converge import group, user
group("app", gid=2500)
group("ops")
user("deploy", uid=2501, gid="app", shell="/bin/bash", comment="Deploy, room 1",
     manage_home=True, groups=["ops", "app"], password="{HASH1}", expire_date="2030-01-31")
user("svc", system=True, shell="/usr/sbin/nologin", home="/srv/svc")
group("audit", members=["deploy", "svc"])
"""


def changes(run: ApplyRun) -> List[Tuple[str, str, List[str]]]:
    return [(r["id"], r["status"], r["changes"]) for r in run.resources()]


def files(node: Node) -> Dict[str, str]:
    """The account files' content and nanosecond mtimes."""
    return {path: sh(node, f"stat -c '%y' {path}; cat {path}") for path in ACCOUNT_FILES}


def entry(node: Node, database: str, key: str) -> List[str]:
    return sh(node, f"getent {database} {key}").strip().split(":")


def test_accounts_first_run_second_run_plan_and_drift(lab_node: Node, tmp_path: Path) -> None:
    first = apply(lab_node, tmp_path, RECIPE)
    assert first.ok, first.stdout + first.stderr
    assert changes(first) == [
        ("group[app]", "updated", ["create group app (gid 2500)"]),
        ("group[ops]", "updated", ["create group ops"]),
        ("user[deploy]", "updated", [
            "create user deploy (uid 2501, gid app, shell /bin/bash, comment 'Deploy, room 1', "
            "home /home/deploy from /etc/skel, groups ops, app, password (sensitive), "
            "expire_date 2030-01-31)"]),
        ("user[svc]", "updated", ["create user svc (home /srv/svc, shell /usr/sbin/nologin, "
                                  "system account)"]),
        ("group[audit]", "updated", ["create group audit (members deploy, svc)"]),
    ]
    assert HASH1 not in first.stdout + first.stderr
    assert entry(lab_node, "passwd", "deploy") == [
        "deploy", "x", "2501", "2500", "Deploy, room 1", "/home/deploy", "/bin/bash"]
    shadow = entry(lab_node, "shadow", "deploy")
    assert shadow[1] == HASH1 and shadow[7] == "21945"  # 2030-01-31, in days since 1970
    assert int(entry(lab_node, "passwd", "svc")[2]) < 1000  # a system account
    assert sh(lab_node, "id -nG deploy").split() == ["app", "ops", "audit"]
    assert sh(lab_node, "stat -c '%U %G %a' /home/deploy /home/deploy/.bashrc").split() == [
        "deploy", "app", "755", "deploy", "app", "644"]
    assert lab_node.run(["test", "-e", "/srv/svc"]).returncode == 1  # no manage_home

    before = files(lab_node)
    second = apply(lab_node, tmp_path, RECIPE)
    assert second.ok and {s for _, s, _ in changes(second)} == {"up_to_date"}, second.stdout
    assert second.stdout.count("(up to date)") == 5
    assert files(lab_node) == before  # not even an mtime

    # drift by hand: every field the recipe manages
    sh(lab_node, "usermod -s /bin/sh -c moved deploy && gpasswd -d deploy ops >/dev/null "
                 f"&& printf 'deploy:{HASH2}\\n' | chpasswd -e && usermod -e '' deploy "
                 "&& rm -r /home/deploy && gpasswd -a root audit >/dev/null "
                 "&& groupmod -g 2600 app && usermod -g 2600 deploy")
    drifted = files(lab_node)
    code, out = converge(lab_node, "plan", place_recipe(lab_node, tmp_path / "recipe.py"))
    assert code == 0, out
    assert files(lab_node) == drifted  # plan changes nothing
    expected = [
        "  - alter group app: gid from 2600 to 2500",
        "  - alter user deploy: create home /home/deploy from /etc/skel",
        "  - alter user deploy: shell from '/bin/sh' to '/bin/bash'",
        "  - alter user deploy: comment from 'moved' to 'Deploy, room 1'",
        "  - alter user deploy: password (sensitive)",
        "  - alter user deploy: expire_date from never to 2030-01-31",
        "  - alter user deploy: add to groups ops",
        "  - alter group audit: remove members root",
    ]
    for line in expected:  # (groupmod -g also moves the users whose primary group it is)
        assert line.replace("  - ", "  - would ") in out, out
    assert HASH1 not in out and HASH2 not in out

    fixed = apply(lab_node, tmp_path, RECIPE)
    assert fixed.ok, fixed.stdout + fixed.stderr
    assert [c for _, s, cs in changes(fixed) for c in cs] == [e[4:] for e in expected]
    assert entry(lab_node, "passwd", "deploy") == [
        "deploy", "x", "2501", "2500", "Deploy, room 1", "/home/deploy", "/bin/bash"]
    assert entry(lab_node, "shadow", "deploy")[1] == HASH1
    assert sh(lab_node, "id -nG deploy").split() == ["app", "ops", "audit"]
    assert entry(lab_node, "group", "audit")[3] == "deploy,svc"
    assert sh(lab_node, "stat -c '%U' /home/deploy/.profile") == "deploy\n"
    again = apply(lab_node, tmp_path, RECIPE)
    assert {s for _, s, _ in changes(again)} == {"up_to_date"}, again.stdout


def test_supplementary_groups_append_and_exact(lab_node: Node, tmp_path: Path) -> None:
    """Ansible #2322 and #24074 (append removed other groups), #61318 (append: no
    kept them), #5944 (groups=[] must remove every one), #6854 and #11575
    (the primary group among groups was changed on every run)."""
    sh(lab_node, "useradd -G adm,games u1 && groupadd g1")
    steps = [
        ('user("u1", groups=["g1"])', ["alter user u1: add to groups g1"], "u1 adm games g1"),
        ('user("u1", groups=["g1", "u1"], append=False)',
         ["alter user u1: add to groups u1", "alter user u1: remove from groups adm, games"],
         "u1 g1"),
        ('user("u1", groups=[], append=False)', ["alter user u1: remove from groups g1, u1"], "u1"),
    ]
    for number, (line, lines, groups) in enumerate(steps):
        text = "from converge import user\n" + line + "\n"
        run = apply(lab_node, tmp_path, text, f"r{number}.py")
        assert run.ok and changes(run) == [("user[u1]", "updated", lines)], run.stdout
        assert sh(lab_node, "id -nG u1").split() == groups.split()
        again = apply(lab_node, tmp_path, text, f"r{number}.py")
        assert changes(again) == [("user[u1]", "up_to_date", [])], again.stdout


def test_lock_unlock_and_the_lock_kept_by_create(lab_node: Node, tmp_path: Path) -> None:
    """Chef #5573: usermod -U exits 0 without unlocking an account with no hash; here
    that is a failed resource, and the other resources still run."""
    create = f'from converge import user\nuser("u2", password="{HASH1}")\n'
    assert apply(lab_node, tmp_path, create, "create.py").ok
    lock = 'from converge import user\nuser("u2", action="lock")\n'
    run = apply(lab_node, tmp_path, lock, "lock.py")
    assert changes(run) == [("user[u2]", "updated", ["lock user u2"])]
    assert entry(lab_node, "shadow", "u2")[1] == "!" + HASH1
    assert changes(apply(lab_node, tmp_path, lock, "lock.py"))[0][1] == "up_to_date"
    # create with the same hash neither unlocks nor reports a change; a new hash stays locked
    assert changes(apply(lab_node, tmp_path, create, "create.py"))[0][1] == "up_to_date"
    rehash = f'from converge import user\nuser("u2", password="{HASH2}")\n'
    run = apply(lab_node, tmp_path, rehash, "rehash.py")
    assert changes(run) == [("user[u2]", "updated", ["alter user u2: password (sensitive)"])]
    assert entry(lab_node, "shadow", "u2")[1] == "!" + HASH2
    unlock = ('from converge import file, user\nuser("u2", action="unlock")\n'
              'user("nohash", action="unlock")\nfile("/tmp/after", content="ran\\n")\n')
    sh(lab_node, "useradd nohash && usermod -L nohash")
    run = apply(lab_node, tmp_path, unlock, "unlock.py")
    assert [(i, s) for i, s, _ in changes(run)] == [
        ("user[u2]", "updated"), ("user[nohash]", "failed"), ("file[/tmp/after]", "updated")]
    assert entry(lab_node, "shadow", "u2")[1] == HASH2
    failed = run.with_status("failed")[0]
    assert "user nohash has no password hash: unlocking would leave a passwordless account" \
        in failed["error"]
    assert entry(lab_node, "shadow", "nohash")[1] == "!"


def test_tool_failures_are_failed_resources_with_their_message(lab_node: Node,
                                                               tmp_path: Path) -> None:
    sh(lab_node, "useradd holder")
    recipe = """\
from converge import file, group, user
user("dup", uid=0)
group("crew", members=["holder", "ghost"])
group("holder", action="remove")
user("nobody2", action="modify", shell="/bin/sh")
user("late", groups=["nosuchgroup"])
file("/tmp/after", content="ran\\n")
"""
    run = apply(lab_node, tmp_path, recipe)
    assert run.returncode != 0
    got = {r["id"]: (r["status"], r.get("error") or "") for r in run.resources()}
    assert got["user[dup]"][0] == "failed"
    assert got["user[dup]"][1].startswith("useradd exited 4: useradd: UID 0 is not unique")
    assert got["group[crew]"] == ("failed", "member ghost of group crew does not exist\n"
                                  "create the user first: user('ghost')")
    assert got["group[holder]"][0] == "failed"
    assert "groupdel: cannot remove the primary group of user 'holder'" in got["group[holder]"][1]
    assert got["user[nobody2]"][1].startswith("user nobody2 does not exist, so it cannot modify")
    assert got["user[late]"][1].startswith("group nosuchgroup does not exist")
    assert got["file[/tmp/after]"][0] == "updated"
    assert lab_node.run(["getent", "group", "crew"]).returncode == 2  # nothing half-made
    assert lab_node.run(["getent", "passwd", "late"]).returncode == 2


def test_a_home_an_unprivileged_user_could_redirect_is_refused(lab_node: Node,
                                                               tmp_path: Path) -> None:
    """A link planted at the home path, or a folder on the way owned by a user who
    could plant one, is refused before useradd runs; nothing lands in the target."""
    sh(lab_node, "useradd mallory && mkdir -p /srv/target && su mallory -s /bin/sh -c "
                 "'ln -s /srv/target /tmp/xhome && mkdir /tmp/mine'")
    recipe = """\
from converge import user
user("x1", home="/tmp/xhome", manage_home=True)
user("x2", home="/tmp/mine/x2", manage_home=True)
user("x3", home="/tmp/x3", manage_home=True)
"""
    run = apply(lab_node, tmp_path, recipe)
    got = {r["id"]: (r["status"], r.get("error") or "") for r in run.resources()}
    # refused by the path walker (agent/paths.py) before the home checks are reached
    assert got["user[x1]"][0] == "failed"
    assert got["user[x1]"][1].startswith("refusing to follow the symbolic link /tmp/xhome -> "
                                         "/srv/target: it is owned by mallory")
    assert got["user[x2]"][1].startswith("/tmp/mine, on the way to the home /tmp/mine/x2, is "
                                         "owned by mallory")
    assert got["user[x3]"][0] == "updated"  # /tmp: root's, sticky
    assert sh(lab_node, "ls -A /srv/target") == ""
    assert lab_node.run(["getent", "passwd", "x1"]).returncode == 2
    assert sh(lab_node, "stat -c %U /tmp/x3/.bashrc") == "x3\n"


def test_rollback_restores_accounts(lab_node: Node, tmp_path: Path) -> None:
    sh(lab_node, "groupadd staff2 && useradd -m -s /bin/sh -c old -G staff2 keeper "
                 f"&& printf 'keeper:{HASH2}\\n' | chpasswd -e && useradd gone "
                 "&& useradd -m gonehome")
    before = {p: sh(lab_node, f"cat {p}") for p in ("/etc/passwd", "/etc/group")}
    gone = entry(lab_node, "passwd", "gone")
    recipe = f"""\
from converge import group, user
group("newgrp", members=["keeper"])
user("keeper", shell="/bin/bash", comment="new", password="{HASH1}", groups=["newgrp"],
     append=False)
user("fresh", manage_home=True)
user("gone", action="remove")
user("gonehome", action="remove", manage_home=True)
"""
    run = apply(lab_node, tmp_path, recipe)
    assert run.ok, run.stdout + run.stderr
    journal = sh(lab_node, "cat /var/lib/converge/runs/*.json")
    assert HASH1 not in journal and HASH2 not in journal  # sealed, not in clear

    code, out = converge(lab_node, "rollback")
    assert code == 0, out
    assert "user[gonehome] action remove (skipped: no rollback: its home directory " \
           "/home/gonehome was deleted with it)" in out or \
           "no rollback: its home directory /home/gonehome was deleted with it" in out, out
    assert "- remove user fresh and its home /home/fresh" in out
    assert HASH1 not in out and HASH2 not in out
    assert entry(lab_node, "passwd", "keeper")[4:] == ["old", "/home/keeper", "/bin/sh"]
    assert entry(lab_node, "shadow", "keeper")[1] == HASH2
    assert sh(lab_node, "id -nG keeper").split() == ["keeper", "staff2"]
    assert lab_node.run(["getent", "group", "newgrp"]).returncode == 2
    assert lab_node.run(["test", "-e", "/home/fresh"]).returncode == 1
    assert entry(lab_node, "passwd", "gone") == gone
    now = {p: sh(lab_node, f"cat {p}") for p in ("/etc/passwd", "/etc/group")}
    for path in now:  # the same accounts (a recreated one comes back at the end)
        assert sorted(now[path].splitlines()) == sorted(
            line for line in before[path].splitlines() if not line.startswith("gonehome:"))
    code, out = converge(lab_node, "rollback")
    assert code == 0 and "  - " not in out, out
    history = json.loads(converge(lab_node, "history", "--json")[1])
    assert [(r["kind"], r["of"]) for r in history[-3:]] == [
        ("apply", None), ("rollback", history[-3]["id"]), ("rollback", history[-3]["id"])]


def test_home_moved_uid_changed_and_groups_rolled_back(lab_node: Node, tmp_path: Path) -> None:
    """Chef's useradd spec: with manage_home the home moves to the new path (and
    without it the old one stays); usermod -u hands the home to the new uid. A
    group's gid and members, and a removed group, come back with rollback."""
    sh(lab_node, "useradd -m -u 2800 mover && useradd -u 2700 u_a && useradd -u 2701 u_b "
                 "&& groupadd -g 2600 oldgrp && gpasswd -M u_a oldgrp "
                 "&& groupadd -g 2650 crew && gpasswd -M u_a,u_b crew")
    groups = {g: entry(lab_node, "group", g) for g in ("oldgrp", "crew")}
    recipe = """\
from converge import group, user
user("mover", uid=2801, home="/srv/mover", manage_home=True)
group("oldgrp", action="remove")
group("crew", gid=2651, members=["u_b"])
"""
    run = apply(lab_node, tmp_path, recipe)
    assert run.ok, run.stdout + run.stderr
    assert changes(run) == [
        ("user[mover]", "updated", [
            "alter user mover: uid from 2800 to 2801",
            "alter user mover: home from /home/mover to /srv/mover (moving its contents)"]),
        ("group[oldgrp]", "updated", ["remove group oldgrp"]),
        ("group[crew]", "updated", ["alter group crew: gid from 2650 to 2651",
                                    "alter group crew: remove members u_a"]),
    ]
    assert lab_node.run(["test", "-e", "/home/mover"]).returncode == 1
    assert sh(lab_node, "stat -c '%u' /srv/mover /srv/mover/.bashrc") == "2801\n2801\n"
    assert entry(lab_node, "group", "crew") == ["crew", "x", "2651", "u_b"]
    again = apply(lab_node, tmp_path, recipe)
    assert {s for _, s, _ in changes(again)} == {"up_to_date"}, again.stdout

    code, out = converge(lab_node, "rollback")
    assert code == 0, out
    assert entry(lab_node, "passwd", "mover")[2:6:3] == ["2800", "/home/mover"]
    assert sh(lab_node, "stat -c '%u' /home/mover/.bashrc") == "2800\n"
    assert lab_node.run(["test", "-e", "/srv/mover"]).returncode == 1
    assert {g: entry(lab_node, "group", g) for g in groups} == groups


def test_a_user_made_in_a_run_owns_files_later_in_that_run(lab_node: Node,
                                                           tmp_path: Path) -> None:
    recipe = """\
from converge import directory, file, group, user
group("svcgrp", gid=2900)
user("svcuser", gid="svcgrp", system=True)
directory("/srv/svc", owner="svcuser", group="svcgrp", mode="0750")
file("/srv/svc/conf", content="x\\n", owner="svcuser")
"""
    run = apply(lab_node, tmp_path, recipe)
    assert run.ok and len(run.with_status("updated")) == 4, run.stdout + run.stderr
    assert sh(lab_node, "stat -c '%U %G' /srv/svc /srv/svc/conf") == (
        "svcuser svcgrp\nsvcuser root\n")  # the file's group is not managed
    again = apply(lab_node, tmp_path, recipe)
    assert {s for _, s, _ in changes(again)} == {"up_to_date"}, again.stdout
