"""oom_protect's pattern against a command line a local user forged: alice runs a
process she titles `/usr/sbin/sshd -D`, and neither the run nor the cron entry
that persists the setting may touch it, unless the recipe names her in user=."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from converge.lab import Node
from converge.lab.idempotence import WORKDIR, ApplyRun, apply_in_node, place_recipe

pytestmark = pytest.mark.lab

RECIPE = """\
from converge import oom_protect
oom_protect("sshd", pattern="^/usr/sbin/sshd -D 424", score_adj=300%s)
"""


def sh(node: Node, script: str) -> str:
    done = node.run(["bash", "-c", script])
    assert done.returncode == 0, done.stderr
    return done.stdout


def apply(node: Node, tmp_path: Path, text: str, name: str) -> ApplyRun:
    path = tmp_path / (name + ".py")
    path.write_text(textwrap.dedent(text))
    node.run(["mkdir", "-p", WORKDIR])
    return apply_in_node(node, place_recipe(node, path), "%s/%s.json" % (WORKDIR, name))


def score(node: Node, pid: str) -> str:
    return sh(node, "cat /proc/%s/oom_score_adj" % pid).strip()


def test_a_forged_command_line_of_another_user_is_left_alone(lab_node: Node,
                                                             tmp_path: Path) -> None:
    sh(lab_node, "useradd -m alice")
    uid = sh(lab_node, "id -u alice").strip()
    forge = "exec -a '/usr/sbin/sshd -D' sleep %s </dev/null >/dev/null 2>&1"
    alice = sh(lab_node, "setpriv --reuid=alice --regid=alice --init-groups bash -c \"%s\" & "
               "echo $!" % (forge % 4243)).strip()
    root = sh(lab_node, "bash -c \"%s\" & echo $!" % (forge % 4244)).strip()
    assert sh(lab_node, "cat /proc/%s/cmdline | tr '\\0' ' '" % alice).startswith(
        "/usr/sbin/sshd -D 4243")
    assert sh(lab_node, "stat -c %%u /proc/%s" % alice).strip() == uid

    first = apply(lab_node, tmp_path, RECIPE % "", "root_only")
    assert first.ok, first.stdout + first.stderr
    assert (score(lab_node, root), score(lab_node, alice)) == ("300", "0")
    [resource] = first.resources()
    assert "set oom_score_adj of pid %s (/usr/sbin/sshd -D 4244; user root) from 0 to 300" \
        % root in resource["changes"]
    assert "create cron entry /etc/cron.d/converge-oom-sshd to apply oom_score_adj 300 " \
        "every minute to processes of root" in resource["changes"]
    assert resource["warnings"] == [
        "1 process matching pattern '^/usr/sbin/sshd -D 424' runs as alice, not as root: "
        "left alone (any user can name a process anything); name the user in user= to "
        "include them"]

    # the cron entry applies the same rule: run its command as cron would, through sh
    sh(lab_node, "echo 0 > /proc/%s/oom_score_adj" % root)
    line = sh(lab_node, "tail -n 1 /etc/cron.d/converge-oom-sshd")
    assert line.startswith("* * * * * root ")
    sh(lab_node, line.split(" ", 6)[6])
    assert (score(lab_node, root), score(lab_node, alice)) == ("300", "0")

    # named in user=, her processes are adjusted, by the run and by the cron entry
    second = apply(lab_node, tmp_path, RECIPE % ', user="alice"', "with_alice")
    assert second.ok, second.stdout + second.stderr
    assert (score(lab_node, root), score(lab_node, alice)) == ("300", "300")
    assert "(/usr/sbin/sshd -D 4243; user alice) from 0 to 300" in second.stdout
    assert "every minute to processes of root, alice" in second.stdout
    sh(lab_node, "echo 0 > /proc/%s/oom_score_adj" % alice)
    line = sh(lab_node, "tail -n 1 /etc/cron.d/converge-oom-sshd")
    assert line.split()[-1] == "0," + uid
    sh(lab_node, line.split(" ", 6)[6])
    assert score(lab_node, alice) == "300"
