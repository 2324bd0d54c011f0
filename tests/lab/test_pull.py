"""converge pull in lab nodes: a node converges itself from a signed git
repository (a bare repository on another lab node, reached over real SSH, and a
local path), with real git signatures made by ssh-keygen and gpg keys the test
generates. A commit signed by a key the node does not trust, an unsigned commit,
an older signed commit and a recipe that does not compile are each refused and
recorded, and the node keeps its state; runs missed by an unreachable store are
carried by the next pull that reaches it; --install puts a cron entry (systemd is
not PID 1 in a lab node) whose command, run as cron runs it, pulls."""

from __future__ import annotations

import json
import shlex
import sys

import pytest

from converge.lab import Node
from tests.e2e.node_helpers import converge, sh

pytestmark = pytest.mark.lab

GIT = "git -c user.name=ops -c user.email=ops@example.com"
RECIPE = """\
from converge import attrs, file, node
file("/etc/pulled", content="%s from " + attrs.get("message", "nobody") + "\\n")
"""
INVENTORY = "hosts:\n  web1:\n    vars:\n      message: web1's vars\n"
STORE = "sqlite:///srv/shared/store.db"


def make_repo(node: Node) -> None:
    """/srv/ops: a work tree whose branch main the node pulls; keys in /srv/keys:
    trusted (listed in /srv/keys/allowed) and stranger (not)."""
    sh(node, "mkdir -p /srv/keys /srv/ops && cd /srv/keys && "
       "ssh-keygen -q -t ed25519 -N '' -C trusted -f trusted && "
       "ssh-keygen -q -t ed25519 -N '' -C stranger -f stranger && "
       "echo \"ops@example.com $(cat trusted.pub)\" > allowed && "
       "cd /srv/ops && git init -q -b main")
    sh(node, "cd /srv/ops && printf '%%s' %s > inventory.yaml" % shlex.quote(INVENTORY))


def commit(node: Node, version: str, key: str | None = "trusted",
           recipe: str = RECIPE) -> str:
    signing = ("-c gpg.format=ssh -c user.signingkey=/srv/keys/%s commit -S" % key
               if key else "commit")
    sh(node, "cd /srv/ops && printf '%%s' %s > recipe.py && git add -A && "
       "%s %s -q -m %s" % (shlex.quote(recipe % version), GIT, signing, version))
    return sh(node, "cd /srv/ops && git rev-parse HEAD").strip()


def pull(node: Node, *extra: str, repo: str = "/srv/ops") -> tuple[int, str]:
    return converge(node, "pull", repo, "--allowed-signers", "/srv/keys/allowed",
                    "--inventory", "inventory.yaml", "--host", "web1", *extra)


def pulled(node: Node) -> str:
    return node.run(["cat", "/etc/pulled"]).stdout


def store_runs(node: Node, url: str | None = None) -> list[dict]:
    code, out = converge(node, "runs", "--json", *(["--store", url] if url else []))
    assert code == 0, out
    return [run for run in json.loads(out) if run["kind"] == "pull"]


def test_pull_applies_signed_commits_only_and_never_goes_back(lab_node: Node) -> None:
    node = lab_node
    make_repo(node)
    first = commit(node, "v1")
    code, out = pull(node)
    assert code == 0, out
    assert "applying %s of main, signed by ops@example.com" % first[:12] in out
    assert pulled(node) == "v1 from web1's vars\n"  # the inventory's host vars
    mtime = sh(node, "stat -c %Y.%y /etc/pulled")

    code, out = pull(node)  # the same commit again: up to date, nothing touched
    assert code == 0 and "(up to date)" in out, out
    assert sh(node, "stat -c %Y.%y /etc/pulled") == mtime

    code, out = pull(node, "--only-if-changed", "--check-every", "1h")
    assert code == 0 and "is applied already, next drift check in" in out, out

    sh(node, "echo drift > /etc/pulled")  # by hand: the next pull puts it back
    code, out = pull(node)
    assert code == 0 and pulled(node) == "v1 from web1's vars\n", out

    for version, key, reason in (
            ("v2", "stranger", "it is signed by a key the allowed signers do not list"),
            ("v3", None, "it is not signed")):
        sha = commit(node, version, key=key)
        code, out = pull(node)
        assert code == 1, out
        assert "commit %s of /srv/ops is refused: %s" % (sha[:12], reason) in out
        assert pulled(node) == "v1 from web1's vars\n"  # the node keeps its state

    second = commit(node, "v4")
    code, out = pull(node)
    assert code == 0 and pulled(node) == "v4 from web1's vars\n", out

    sh(node, "cd /srv/ops && git reset -q --hard %s" % first)  # the branch goes back
    code, out = pull(node)
    assert code == 1, out
    assert ("commit %s of /srv/ops is not a descendant of %s, the commit this node last "
            "applied: refused" % (first[:12], second[:12])) in out
    assert pulled(node) == "v4 from web1's vars\n"
    code, out = pull(node, "--allow-older")
    assert code == 0 and pulled(node) == "v1 from web1's vars\n", out

    # newest first; the --only-if-changed pull that skipped records nothing
    runs = store_runs(node)
    assert [run["result"] for run in runs] == [
        "changed", "failed", "changed", "failed", "failed", "changed", "ok", "changed"]
    assert "is not a descendant of" in runs[1]["hosts"]["web1"]["error"]
    assert all(run["git_commit"] for run in runs if run["result"] != "failed")


def test_a_compile_error_is_recorded_and_the_node_keeps_its_state(lab_node: Node) -> None:
    node = lab_node
    make_repo(node)
    commit(node, "v1")
    assert pull(node)[0] == 0
    broken = commit(node, "v2", recipe="from converge import file\nfile(%r, mode='999')\n")
    code, out = pull(node)
    assert code == 1 and "recipe.py" in out and "mode" in out, out
    assert pulled(node) == "v1 from web1's vars\n"
    state = json.loads(sh(node, "cat /var/lib/converge/pull/*/state.json"))
    assert state["last_error"]["commit"] == broken
    assert state["last_applied"] != broken


def test_an_unreachable_repository_is_recorded_and_the_next_tick_applies(
        lab_node: Node) -> None:
    node = lab_node
    make_repo(node)
    commit(node, "v1")
    assert pull(node)[0] == 0
    sh(node, "mv /srv/ops /srv/ops.away")  # the git server is gone
    code, out = pull(node)
    assert code == 1 and "error: git fetch:" in out, out
    assert pulled(node) == "v1 from web1's vars\n"
    state = json.loads(sh(node, "cat /var/lib/converge/pull/*/state.json"))
    assert "git fetch" in state["last_error"]["error"], state
    assert store_runs(node)[0]["result"] == "failed"
    sh(node, "mv /srv/ops.away /srv/ops")  # back: the next tick applies what is new
    commit(node, "v2")
    code, out = pull(node)
    assert code == 0 and pulled(node) == "v2 from web1's vars\n", out
    assert "last_error" not in json.loads(sh(node, "cat /var/lib/converge/pull/*/state.json"))


def test_runs_missed_by_an_unreachable_store_are_carried_by_the_next_pull(
        lab_node: Node) -> None:
    node = lab_node
    make_repo(node)
    commit(node, "v1")
    sh(node, "touch /srv/shared")  # a file where the store's folder goes: unreachable
    code, out = pull(node, "--store", STORE)
    assert code == 0, out
    assert "1 run(s) kept here, sent with the next pull that reaches it" in out
    commit(node, "v2", key="stranger")
    code, out = pull(node, "--store", STORE)
    assert code == 1 and "2 run(s) kept here" in out, out
    sh(node, "rm /srv/shared && mkdir /srv/shared")
    commit(node, "v3")
    code, out = pull(node, "--store", STORE)
    assert code == 0 and "kept here" not in out, out
    shared = store_runs(node, STORE)
    assert [run["result"] for run in shared] == ["changed", "failed", "changed"]
    assert [r["id"] for r in shared] == [r["id"] for r in store_runs(node)]


def test_install_puts_a_cron_entry_that_pulls_and_uninstall_removes_it(
        lab_node: Node) -> None:
    node = lab_node
    make_repo(node)
    commit(node, "v1")
    code, out = pull(node, "--install", "--every", "15m", "--splay", "5m")
    assert code == 0 and "installed: /etc/cron.d/converge-pull" in out, out
    assert node.run(["test", "-e", "/etc/pulled"]).returncode == 1  # installing pulls nothing
    assert sh(node, "stat -c %a /etc/converge/pull.json").strip() == "600"
    settings = json.loads(sh(node, "cat /etc/converge/pull.json"))
    assert settings["allowed_signers"] == "/etc/converge/pull-trust/allowed-signers"
    [line] = [x for x in sh(node, "cat /etc/cron.d/converge-pull").splitlines()
              if x and not x.startswith("#")]
    fields = line.split(None, 6)
    assert fields[0].endswith("-59/15") and fields[1:5] == ["*"] * 4 and fields[5] == "root"
    assert fields[6].startswith(shlex.quote(sys.executable) + " -m converge pull --config "
                                "/etc/converge/pull.json")
    sh(node, "rm /srv/keys/allowed")  # the installed copy is what is trusted now
    sh(node, fields[6].replace("\\%", "%"))  # what cron runs (its output goes nowhere)
    assert pulled(node) == "v1 from web1's vars\n"
    code, out = converge(node, "pull", "--uninstall")
    assert code == 0, out
    for path in ("/etc/cron.d/converge-pull", "/etc/converge/pull.json",
                 "/etc/converge/pull-trust"):
        assert node.run(["test", "-e", path]).returncode == 1, path


def test_pull_over_ssh_from_a_bare_repository(lab_node: Node) -> None:
    """The repository on a git server reached over SSH: the node's own sshd serves
    a bare repository (lab nodes do not reach each other)."""
    node = lab_node
    make_repo(node)
    commit(node, "v1")
    sh(node, "git clone -q --bare /srv/ops /srv/git/ops.git && "
       "ssh-keygen -q -t ed25519 -N '' -f /root/.ssh/id_pull && "
       "cat /root/.ssh/id_pull.pub >> /root/.ssh/authorized_keys && "
       "ssh-keyscan -t ed25519 %s > /root/.ssh/known_hosts 2>/dev/null && "
       "printf 'Host %s\\n  IdentityFile /root/.ssh/id_pull\\n  BatchMode yes\\n' "
       "> /root/.ssh/config" % (node.address, node.address))
    url = "ssh://root@%s/srv/git/ops.git" % node.address
    code, out = pull(node, repo=url)
    assert code == 0 and pulled(node) == "v1 from web1's vars\n", out
    second = commit(node, "v2")
    sh(node, "cd /srv/ops && git push -q /srv/git/ops.git main")
    code, out = pull(node, repo=url)
    assert code == 0 and "applying %s of main" % second[:12] in out, out
    assert pulled(node) == "v2 from web1's vars\n"


def test_pull_trusts_openpgp_keys_given_with_gpg_key(lab_node: Node) -> None:
    node = lab_node
    make_repo(node)
    for name in ("ops", "other"):
        sh(node, "export GNUPGHOME=/srv/gpg-%s && mkdir -m 700 $GNUPGHOME && "
           "gpg --batch --quiet --passphrase '' --quick-gen-key %s@example.com ed25519 sign "
           "never && gpg --armor --export > /srv/keys/%s.asc" % (name, name, name))

    def signed(version: str, key: str) -> str:
        sh(node, "cd /srv/ops && printf '%%s' %s > recipe.py && git add -A && GNUPGHOME=/srv/"
           "gpg-%s %s -c user.signingkey=%s@example.com commit -S -q -m %s"
           % (shlex.quote(RECIPE % version), key, GIT, key, version))
        return sh(node, "cd /srv/ops && git rev-parse HEAD").strip()

    args = ("pull", "/srv/ops", "--gpg-key", "/srv/keys/ops.asc", "--inventory",
            "inventory.yaml", "--host", "web1")
    signed("v1", "ops")
    code, out = converge(node, *args)
    assert code == 0 and pulled(node) == "v1 from web1's vars\n", out
    sha = signed("v2", "other")
    code, out = converge(node, *args)
    assert code == 1, out
    assert "commit %s of /srv/ops is refused: its signature cannot be checked" % sha[:12] in out
    assert pulled(node) == "v1 from web1's vars\n"


def test_install_where_systemd_runs_writes_units_that_systemd_analyze_verifies(
        lab_node: Node) -> None:
    """systemd is not PID 1 in a lab node: /run/systemd/system says it runs and a
    systemctl on PATH records what it is asked; the unit files --install wrote are
    checked by the node's own systemd-analyze."""
    node = lab_node
    if node.run(["sh", "-c", "command -v systemd-analyze"]).returncode != 0:
        pytest.skip("systemd-analyze is not installed in this node")
    make_repo(node)
    sh(node, "mkdir -p /run/systemd/system /srv/bin && printf '#!/bin/sh\\necho \"$@\" >> "
       "/srv/systemctl.log\\n' > /srv/bin/systemctl && chmod 755 /srv/bin/systemctl")
    done = node.run(["env", "PATH=/srv/bin:/usr/sbin:/usr/bin:/sbin:/bin", sys.executable,
                     "-m", "converge", "pull", "/srv/ops", "--allowed-signers",
                     "/srv/keys/allowed", "--install", "--every", "30m", "--splay", "5m"],
                    env={"PYTHONDONTWRITEBYTECODE": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "installed: converge-pull.timer every 1800s (splay 300s)" in done.stdout
    assert sh(node, "cat /srv/systemctl.log").splitlines() == [
        "daemon-reload", "enable --now converge-pull.timer"]
    units = ["/etc/systemd/system/converge-pull.service",
             "/etc/systemd/system/converge-pull.timer"]
    verify = node.run(["systemd-analyze", "verify", "--man=no", *units])
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "RandomizedDelaySec=300s" in sh(node, "cat %s" % units[1])
    assert node.run(["test", "-e", "/etc/cron.d/converge-pull"]).returncode == 1
    sh(node, "rm /srv/systemctl.log")
    done = node.run(["env", "PATH=/srv/bin:/usr/sbin:/usr/bin:/sbin:/bin", sys.executable,
                     "-m", "converge", "pull", "--uninstall"], env={"PYTHONDONTWRITEBYTECODE": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert sh(node, "cat /srv/systemctl.log").splitlines() == [
        "disable --now converge-pull.timer", "daemon-reload"]
    for path in units:
        assert node.run(["test", "-e", path]).returncode == 1, path
