"""git in a lab node against a bare repository the test creates there, through the
real CLI: clone, second run up to date (mtimes kept), a new commit shown by plan
(which fetches nothing) then applied, drift by hand corrected, local changes a
failed resource unless force, rollback, and git's own failures.

Peers' reported bugs covered: a checkout owned by another user refused by git
2.35.2+ ("unsafe repository", ansible/ansible#77538, #77750) and root cloning
into a directory it does not own (ansible/ansible#80233): git runs as ``user``,
the checkout is named safe; no owner/group afterwards (ansible/ansible#51601):
the clone is made as user and group; a password in the URL never shown; a
repository asking for credentials fails at once instead of hanging."""

from __future__ import annotations

from pathlib import Path

import pytest

from converge.lab import Node
from converge.lab.idempotence import place_recipe
from tests.e2e.node_helpers import apply, converge

pytestmark = pytest.mark.lab

RECIPE = """\
from converge import git
git("/srv/app", "/srv/git/app.git", revision="main", user="deploy")
git("/home/deploy/tool", "/srv/git/app.git", revision="v1", depth=1, user="deploy")
"""

GIT = "git -c user.name=t -c user.email=t@example.com"


# the test's own git, as root, reads checkouts that deploy owns
SAFE = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "safe.directory", "GIT_CONFIG_VALUE_0": "*"}


def sh(node: Node, script: str) -> str:
    done = node.run(["sh", "-c", script], env=SAFE)
    assert done.returncode == 0, done.stderr
    return done.stdout


def commit(node: Node, text: str) -> str:
    """A commit pushed to the bare repository's main; its sha."""
    sh(node, f"su deploy -s /bin/sh -c 'cd /srv/work && echo {text} > README && {GIT} "
             f"commit -qam {text} && git push -q origin main'")
    return sh(node, "git -C /srv/work rev-parse HEAD").strip()


def listing(node: Node, path: str) -> str:
    return sh(node, f"find {path} -printf '%p %y %u %TT\\n' | sort")


def setup(node: Node) -> str:
    sh(node, "useradd -m deploy && mkdir -p /srv/git /srv/app && chown deploy /srv/app "
             "&& git init -q --bare -b main /srv/git/app.git "
             "&& git clone -q /srv/git/app.git /srv/work 2>/dev/null && cd /srv/work "
             f"&& echo one > README && git add README && {GIT} commit -qm one "
             "&& git tag v1 && git push -q origin main v1 && chown -R deploy /srv/git /srv/work")
    return sh(node, "git -C /srv/work rev-parse HEAD").strip()


def test_git_clone_update_drift_rollback(lab_node: Node, tmp_path: Path) -> None:
    one = setup(lab_node)
    first = apply(lab_node, tmp_path, RECIPE)
    assert first.ok, first.stdout + first.stderr
    assert [r["changes"] for r in first.resources()] == [
        [f"clone /srv/git/app.git into /srv/app at main ({one[:7]})"],
        [f"clone /srv/git/app.git into /home/deploy/tool at v1 ({one[:7]})"]]
    assert sh(lab_node, "stat -c %U /srv/app/README; git -C /srv/app rev-parse "
                        "--abbrev-ref main@{upstream}") == "deploy\norigin/main\n"
    assert lab_node.run(["git", "-C", "/home/deploy/tool", "symbolic-ref", "-q", "HEAD"],
                        env=SAFE).returncode == 1  # a tag: detached, as git leaves it
    before = listing(lab_node, "/srv/app") + listing(lab_node, "/home/deploy/tool")
    second = apply(lab_node, tmp_path, RECIPE)
    assert [r["status"] for r in second.resources()] == ["up_to_date", "up_to_date"]
    assert listing(lab_node, "/srv/app") + listing(lab_node, "/home/deploy/tool") == before

    # a new commit: plan names it and fetches nothing; apply moves the branch
    two = commit(lab_node, "two")
    code, out = converge(lab_node, "plan", place_recipe(lab_node, tmp_path / "recipe.py"))
    assert code == 0, out
    assert f"- would update /srv/app from {one[:7]} to {two[:7]} (branch main)" in out
    assert sh(lab_node, "git -C /srv/app rev-parse origin/main").strip() == one
    third = apply(lab_node, tmp_path, RECIPE)
    assert third.ok, third.stdout
    assert third.resources()[0]["changes"] == [
        f"update /srv/app from {one[:7]} to {two[:7]} (branch main)"]
    assert third.resources()[1]["status"] == "up_to_date"  # the tag did not move
    assert sh(lab_node, "git -C /srv/app rev-parse HEAD; git -C /srv/app symbolic-ref "
                        "--short HEAD") == f"{two}\nmain\n"

    # rollback: HEAD back on the commit it was on
    code, out = converge(lab_node, "rollback")
    assert code == 0, out
    assert sh(lab_node, "git -C /srv/app rev-parse HEAD").strip() == one

    # drift by hand (another branch checked out) is corrected and reported
    sh(lab_node, "su deploy -c 'git -C /srv/app checkout -q -b hotfix'")
    fourth = apply(lab_node, tmp_path, RECIPE)
    assert fourth.resources()[0]["changes"] == [
        f"update /srv/app from {one[:7]} to {two[:7]} (branch main)"], fourth.stdout
    assert sh(lab_node, "git -C /srv/app symbolic-ref --short HEAD") == "main\n"


def test_git_local_changes_and_failures(lab_node: Node, tmp_path: Path) -> None:
    setup(lab_node)
    assert apply(lab_node, tmp_path, RECIPE).ok
    sh(lab_node, "echo mine > /srv/app/README && echo new > /srv/app/untracked")
    commit(lab_node, "two")
    broken = """\
from converge import file, git
git("/srv/app", "/srv/git/app.git", revision="main", user="deploy")
git("/srv/missing", "/srv/git/nothing-here.git")
git("/srv/secret", "https://alice:s3cret@127.0.0.1:9/app.git")
file("/tmp/after", content="ran\\n")
"""
    run = apply(lab_node, tmp_path, broken, "broken.py")
    assert run.returncode == 1
    got = {r["id"]: (r["status"], r.get("error") or "") for r in run.resources()}
    assert got["git[/srv/app]"] == ("failed", "/srv/app has local changes to tracked files; "
                                    "nothing was changed\ncommit or discard them (git -C "
                                    "/srv/app status), or give force=True to discard them")
    assert got["git[/srv/missing]"][0] == "failed"
    assert "does not appear to be a git repository" in got["git[/srv/missing]"][1]
    assert got["git[/srv/secret]"][0] == "failed"
    assert "s3cret" not in run.stdout + run.stderr + str(got)
    assert "Failed to connect to 127.0.0.1 port 9" in got["git[/srv/secret]"][1]
    assert got["file[/tmp/after]"][0] == "updated"
    assert sh(lab_node, "cat /srv/app/README") == "mine\n"

    forced = apply(lab_node, tmp_path, RECIPE.replace('user="deploy"', 'user="deploy", '
                                                      'force=True'), "forced.py")
    assert forced.ok, forced.stdout
    assert forced.resources()[0]["changes"][0] == "discard local changes in /srv/app"
    assert sh(lab_node, "cat /srv/app/README /srv/app/untracked") == "two\nnew\n"
    code, out = converge(lab_node, "rollback")
    assert code == 0 and "no rollback: local changes in /srv/app were discarded" in out, out


def test_git_refuses_a_destination_that_is_not_a_checkout(lab_node: Node, tmp_path: Path
                                                          ) -> None:
    setup(lab_node)
    sh(lab_node, "mkdir -p /srv/full && echo x > /srv/full/keep && ln -s /etc /srv/link")
    run = apply(lab_node, tmp_path, """\
from converge import git
git("/srv/full", "/srv/git/app.git")
git("/srv/link", "/srv/git/app.git")
""")
    errors = [r.get("error") for r in run.resources()]
    assert errors[0].startswith("/srv/full exists and is not a git checkout")
    assert errors[1].startswith("/srv/link is a symbolic link")
    assert sh(lab_node, "ls /srv/full") == "keep\n"
