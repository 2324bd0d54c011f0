"""Issue 12, items 1 to 3, as an attacker does them: a real unprivileged user,
alice, plants symbolic links in a lab node, and root runs ``converge apply`` on
a recipe that names paths she can reach. Nothing outside the declared path
changes, a refused path fails its resource with a message naming the link and
its owner, and root's own links (Debian's /etc/resolv.conf) are managed through
as Chef's ``manage_symlink_source`` does.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Dict

import pytest

from tests.conftest import Alice

pytestmark = pytest.mark.lab

WORK = "/root/work"


def apply(alice: Alice, recipe: str, *args: str) -> Dict[str, Any]:
    """``converge apply`` as root in alice's node: the one host's resources, by id."""
    node = alice.node
    node.write_file(WORK + "/recipe.py", recipe.encode())
    done = node.run([sys.executable, "-m", "converge", *args, "--json", WORK + "/report.json"]
                    if args else [sys.executable, "-m", "converge", "apply", WORK + "/recipe.py",
                                  "--json", WORK + "/report.json"],
                    env={"PYTHONDONTWRITEBYTECODE": "1"}, timeout=300)
    report = json.loads(node.read_file(WORK + "/report.json"))
    host = next(iter(report["hosts"].values()))
    out = {r["id"]: r for r in host["resources"]}
    out["_exit"] = done.returncode
    out["_stdout"] = done.stdout + done.stderr
    return out


def sh(node: Any, script: str) -> str:
    done = node.run(["sh", "-c", script])
    assert done.returncode == 0, done.stderr
    return str(done.stdout)


def test_item1_roots_resolv_conf_link_is_written_through_and_stays_a_link(alice: Alice
                                                                           ) -> None:
    node = alice.node
    sh(node, "mkdir -p /run/systemd/resolve && echo 'nameserver 127.0.0.53' > "
             "/run/systemd/resolve/stub-resolv.conf && chmod 0644 "
             "/run/systemd/resolve/stub-resolv.conf && rm -f /etc/resolv.conf && "
             "ln -s ../run/systemd/resolve/stub-resolv.conf /etc/resolv.conf")
    result = apply(alice, 'from converge import file\n'
                          'file("/etc/resolv.conf", content="nameserver 10.0.0.53\\n")\n')
    assert result["file[/etc/resolv.conf]"]["status"] == "updated", result["_stdout"]
    assert sh(node, "readlink /etc/resolv.conf") == "../run/systemd/resolve/stub-resolv.conf\n"
    assert sh(node, "stat -c %a /run/systemd/resolve/stub-resolv.conf") == "644\n"
    assert sh(node, "cat /etc/resolv.conf") == "nameserver 10.0.0.53\n"
    # alice cannot rewrite root's DNS
    assert alice.sh("echo 'nameserver 6.6.6.6' >> /etc/resolv.conf").returncode != 0
    assert sh(node, "cat /etc/resolv.conf") == "nameserver 10.0.0.53\n"
    # and a rollback puts the content back, through the link, which stays a link
    rolled = apply(alice, "", "rollback")
    assert rolled["_exit"] == 0, rolled["_stdout"]
    assert sh(node, "readlink /etc/resolv.conf") == "../run/systemd/resolve/stub-resolv.conf\n"
    assert sh(node, "cat /run/systemd/resolve/stub-resolv.conf") == "nameserver 127.0.0.53\n"


def test_item1_a_dangling_link_is_refused_not_replaced_by_a_0777_file(alice: Alice) -> None:
    node = alice.node
    sh(node, "rm -f /etc/motd && ln -s /run/motd.dynamic /etc/motd && rm -f /run/motd.dynamic")
    result = apply(alice, 'from converge import file\n'
                          'file("/etc/motd", content="Hello Tunnelix\\n")\n')
    motd = result["file[/etc/motd]"]
    assert motd["status"] == "failed" and result["_exit"] == 1
    assert motd["error"].startswith("refusing to create /run/motd.dynamic through the "
                                    "symbolic link /etc/motd: the link is dangling")
    assert sh(node, "readlink /etc/motd") == "/run/motd.dynamic\n"
    assert node.run(["test", "-e", "/run/motd.dynamic"]).returncode != 0
    assert alice.sh("echo pwned > /etc/motd").returncode != 0


def test_item2_a_mode_change_never_follows_alices_link_to_shadow(alice: Alice) -> None:
    node = alice.node
    before = sh(node, "stat -c '%a %U %G' /etc/shadow")
    assert alice.sh("ln -s /etc/shadow /home/alice/public.txt").returncode == 0
    result = apply(alice, 'from converge import file\n'
                          'file("/home/alice/public.txt", mode="0644", owner="alice")\n')
    public = result["file[/home/alice/public.txt]"]
    assert public["status"] == "failed"
    assert public["error"] == (
        "refusing to follow the symbolic link /home/alice/public.txt -> /etc/shadow: it is "
        "owned by alice (uid %d), and a link a user other than root placed may lead "
        "anywhere\nremove the link, or have the recipe manage the path it points to"
        % alice.uid)
    assert sh(node, "stat -c '%a %U %G' /etc/shadow") == before
    assert alice.sh("cat /etc/shadow").returncode != 0


@pytest.mark.parametrize("recipe, victim", [
    ('file("/home/alice/app/profile.d/alice-env.sh", content="export PWNED=1\\n", '
     'owner="alice")', "/etc/profile.d/alice-env.sh"),
    ('file("/home/alice/app/shadow", action="delete")', "/etc/shadow"),
    ('directory("/home/alice/app/cron.d/alice", owner="alice")', "/etc/cron.d/alice"),
], ids=["file", "delete", "directory"])
def test_item3_a_link_higher_up_the_path_is_not_followed(alice: Alice, recipe: str,
                                                         victim: str) -> None:
    node = alice.node
    listing = sh(node, "ls -la /etc /etc/profile.d /etc/cron.d")
    existed = node.run(["test", "-e", victim]).returncode == 0
    assert alice.sh("ln -s /etc /home/alice/app").returncode == 0
    result = apply(alice, "from converge import directory, file\n" + recipe + "\n")
    [resource] = [r for k, r in result.items() if not k.startswith("_")]
    assert resource["status"] == "failed", result["_stdout"]
    assert ("refusing to follow the symbolic link /home/alice/app -> /etc: it is owned by "
            "alice" in resource["error"])
    assert (node.run(["test", "-e", victim]).returncode == 0) == existed
    assert sh(node, "ls -la /etc /etc/profile.d /etc/cron.d") == listing
