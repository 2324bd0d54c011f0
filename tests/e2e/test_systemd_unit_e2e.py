"""systemd_unit in a lab node (systemd is not PID 1 there): unit files written
and checked by the real systemd-analyze verify, enabled and disabled offline by
the real ``systemctl --root``, through the real CLI: second run up to date (the
unit file's mtime kept), drift by hand corrected, plan changing nothing,
rollback, a unit systemd-analyze refuses put back, and start failing with the
reason while the other resources still run.

Peers' reported bugs covered: a unit changed on disk but not reloaded (Ansible's
systemd module needs daemon_reload: true; here a changed unit reloads by itself
where systemd runs); enable on a system where systemd does not run (a chroot or a
container build: ansible/ansible#60291, fixed there by #66062), done offline
through systemctl --root."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from converge.lab import Node
from converge.lab.idempotence import place_recipe
from tests.e2e.node_helpers import apply, converge, sh

pytestmark = pytest.mark.lab

RECIPE = """\
from converge import systemd_unit
systemd_unit("hello.service", {
    "Unit": {"Description": "Say hello"},
    "Service": {"ExecStart": "/usr/bin/sleep infinity", "Environment": ["A=1", "B=2"]},
    "Install": {"WantedBy": "multi-user.target"},
}, action=["create", "enable"])
"""

UNIT = ("[Unit]\nDescription=Say hello\n\n[Service]\nExecStart=/usr/bin/sleep infinity\n"
        "Environment=A=1\nEnvironment=B=2\n\n[Install]\nWantedBy=multi-user.target\n")
LINK = "/etc/systemd/system/multi-user.target.wants/hello.service"


def test_systemd_unit_create_enable_drift_rollback(lab_node: Node, tmp_path: Path) -> None:
    assert lab_node.run(["test", "-d", "/run/systemd/system"]).returncode == 1
    first = apply(lab_node, tmp_path, RECIPE)
    assert first.ok, first.stdout + first.stderr
    assert [(r["action"], r["changes"]) for r in first.resources()] == [
        ("create", ["create /etc/systemd/system/hello.service"]),
        ("enable", ["enable systemd_unit[hello.service]"])]
    assert lab_node.read_file("/etc/systemd/system/hello.service").decode() == UNIT
    assert sh(lab_node, f"readlink {LINK}") == "/etc/systemd/system/hello.service\n"
    assert sh(lab_node, "systemctl --root=/ is-enabled hello.service") == "enabled\n"
    stamp = sh(lab_node, "stat -c %y /etc/systemd/system/hello.service")
    second = apply(lab_node, tmp_path, RECIPE)
    assert [r["status"] for r in second.resources()] == ["up_to_date"] * 2, second.stdout
    assert sh(lab_node, "stat -c %y /etc/systemd/system/hello.service") == stamp

    # drift: edited and disabled by hand; plan shows it, changes nothing
    sh(lab_node, "sed -i s/hello/bye/ /etc/systemd/system/hello.service "
                 "&& systemctl --root=/ disable hello.service")
    code, out = converge(lab_node, "plan", place_recipe(lab_node, tmp_path / "recipe.py"))
    assert code == 0, out
    assert "- would update content in /etc/systemd/system/hello.service" in out
    assert "-Description=Say bye" in out and "+Description=Say hello" in out
    assert "- would enable systemd_unit[hello.service]" in out
    assert lab_node.run(["test", "-e", LINK]).returncode == 1
    third = apply(lab_node, tmp_path, RECIPE)
    assert [r["status"] for r in third.resources()] == ["updated"] * 2
    assert lab_node.read_file("/etc/systemd/system/hello.service").decode() == UNIT

    # rollback of that run: the hand-edited file and the disabled unit again
    code, out = converge(lab_node, "rollback")
    assert code == 0, out
    assert "Say bye" in lab_node.read_file("/etc/systemd/system/hello.service").decode()
    assert lab_node.run(["test", "-e", LINK]).returncode == 1

    # stop, disable, delete
    gone = apply(lab_node, tmp_path, """\
from converge import systemd_unit
systemd_unit("hello.service", action=["disable", "delete"])
""", "gone.py")
    assert gone.ok, gone.stdout
    assert lab_node.run(["test", "-e", "/etc/systemd/system/hello.service"]).returncode == 1


def test_systemd_unit_failures(lab_node: Node, tmp_path: Path) -> None:
    run = apply(lab_node, tmp_path, """\
from converge import file, systemd_unit
systemd_unit("bad.service", "[Service]\\nExecStart=relative/path\\n")
systemd_unit("hello.service", "[Service]\\nExecStart=/usr/bin/true\\n",
             action=["create", "start"])
file("/tmp/after", content="ran\\n")
""")
    assert run.returncode == 1
    got = [(r["action"], r["status"], r.get("error") or "") for r in run.resources()]
    assert got[0][1] == "failed", got
    assert got[0][2].startswith("systemd-analyze verify refused bad.service (it was put back "
                                "as it was): "), got[0][2]
    assert "/etc/systemd/system/bad.service:2: Neither a " in got[0][2]
    assert lab_node.run(["test", "-e", "/etc/systemd/system/bad.service"]).returncode == 1
    assert got[1][:2] == ("create", "updated")
    assert got[2] == ("start", "failed", "cannot start hello.service: systemd is not running "
                      "on this machine (PID 1 is not systemd); units can only be enabled or "
                      "disabled here")
    assert got[3][1] == "updated"


ONLINE_RECIPE = """\
from converge import service, systemd_unit
for name in ("a", "b"):
    systemd_unit(name + ".service", {"Service": {"ExecStart": "/usr/bin/sleep infinity"},
                                     "Install": {"WantedBy": "multi-user.target"}})
service("a", action="enable")
systemd_unit("d.service", "[Service]\\nExecStart=/usr/bin/true\\n")
"""

#: a systemctl first on PATH that logs how converge calls it, then runs the real one
#: told to act offline (SYSTEMD_OFFLINE=1: unit files handled on disk, and verbs that
#: need a running systemd, daemon-reload among them, print "Running in chroot,
#: ignoring command" and exit 0)
WRAPPER = """#!/bin/sh
printf '%s\\n' "$*" >> /var/log/systemctl-argv
SYSTEMD_OFFLINE=1 exec /usr/bin/systemctl "$@"
"""


def test_daemon_reload_once_before_the_service(lab_node: Node, tmp_path: Path) -> None:
    """Where systemd runs, changed units reload systemd once per run: before the
    first resource that needs systemd to see them (here a service), and once more
    at the end for a unit changed after it; plan says so, the journal records it,
    a second run reloads nothing. The node pretends systemd runs
    (/run/systemd/system exists), and the real systemctl behind a logging wrapper
    counts what converge ran. A rollback that puts unit files back reloads once too."""
    lab_node.write_file("/usr/local/sbin/systemctl", WRAPPER.encode(), 0o755)
    sh(lab_node, "mkdir -p /run/systemd/system")
    first = apply(lab_node, tmp_path, ONLINE_RECIPE)
    assert first.ok, first.stdout + first.stderr
    reload = "execute[systemctl daemon-reload]"
    assert [(r["id"], r["status"], r.get("notified_by")) for r in first.resources()] == [
        ("systemd_unit[a.service]", "updated", None),
        ("systemd_unit[b.service]", "updated", None),
        (reload, "updated", "systemd_unit[a.service], systemd_unit[b.service]"),
        ("service[a]", "updated", None),
        ("systemd_unit[d.service]", "updated", None),
        (reload, "updated", "systemd_unit[d.service]")]
    assert sh(lab_node, "cat /var/log/systemctl-argv").splitlines() == [
        "daemon-reload", "is-enabled -- a.service", "enable -- a.service", "daemon-reload"]
    journal = json.loads(sh(lab_node, "cat $(ls /var/lib/converge/runs/*.json | tail -1)"))
    assert [(r["id"], r["status"], r.get("notified_by")) for r in journal["resources"]
            if r["id"] == reload] == [
        (reload, "updated", "systemd_unit[a.service], systemd_unit[b.service]"),
        (reload, "updated", "systemd_unit[d.service]")]

    sh(lab_node, ": > /var/log/systemctl-argv")
    second = apply(lab_node, tmp_path, ONLINE_RECIPE)
    assert [r["status"] for r in second.resources()] == ["up_to_date"] * 4, second.stdout
    assert sh(lab_node, "cat /var/log/systemctl-argv") == "is-enabled -- a.service\n"

    # two units edited by hand: the plan shows one reload, notified by both, and runs none
    sh(lab_node, ": > /var/log/systemctl-argv; for u in a b; do "
                 "sed -i s/infinity/1/ /etc/systemd/system/$u.service; done")
    code, out = converge(lab_node, "plan", place_recipe(lab_node, tmp_path / "recipe.py"))
    assert code == 0, out
    assert out.count("- would execute systemctl daemon-reload") == 1, out
    assert ("* execute[systemctl daemon-reload] action run (notified by "
            "systemd_unit[a.service], systemd_unit[b.service])") in out
    assert "daemon-reload" not in sh(lab_node, "cat /var/log/systemctl-argv")

    # applied: the reload once, before the service (up to date); rolled back: the
    # hand-edited units put back by file steps, which leave one reload at the end
    sh(lab_node, ": > /var/log/systemctl-argv")
    third = apply(lab_node, tmp_path, ONLINE_RECIPE)
    assert [r["id"] for r in third.with_status("updated")] == [
        "systemd_unit[a.service]", "systemd_unit[b.service]", reload], third.stdout
    assert sh(lab_node, "cat /var/log/systemctl-argv").splitlines() == [
        "daemon-reload", "is-enabled -- a.service"]
    sh(lab_node, ": > /var/log/systemctl-argv")
    code, out = converge(lab_node, "rollback")
    assert code == 0, out
    assert out.count("* execute[systemctl daemon-reload] action run (notified by") == 1, out
    assert "* execute[systemctl daemon-reload] action run (notified by " \
        "file[/etc/systemd/system/b.service], file[/etc/systemd/system/a.service])" in out
    assert sh(lab_node, "cat /var/log/systemctl-argv") == "daemon-reload\n"
    assert "ExecStart=/usr/bin/sleep 1\n" in sh(lab_node, "cat /etc/systemd/system/a.service")
