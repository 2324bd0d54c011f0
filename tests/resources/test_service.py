"""service: validation; systemd enable/disable offline under a temporary root, with
the real ``systemctl --root`` and with the unit-symlink fallback; sysvinit state
from rc?.d links. Starting and stopping real services runs in lab nodes."""

from __future__ import annotations

import os
import shutil

import pytest

from converge.errors import PropertyError
from tests.conftest import Converger, statuses

UNIT = """\
[Unit]
Description=demo

[Service]
ExecStart=/bin/true

[Install]
WantedBy=multi-user.target
"""
STATIC = "[Service]\nExecStart=/bin/true\n"
LINK = "/etc/systemd/system/multi-user.target.wants/demo.service"
SYSTEMCTL = shutil.which("systemctl")


@pytest.mark.parametrize("call, message", [
    pytest.param('service("-x")', "'-x' is not a valid service name", id="option"),
    pytest.param('service("a b")', "'a b' is not a valid service name", id="space"),
    pytest.param('service("../x")', "'../x' is not a valid service name", id="path"),
    pytest.param('service("demo", init="upstart")', "init 'upstart' is not one of: systemd, "
                 "sysvinit", id="init"),
    pytest.param('service("demo", action="bounce")', "action 'bounce' is not one of: enable, "
                 "start, stop, disable, restart, reload, nothing", id="action"),
])
def test_bad_input_refused_at_compile_time(converger: Converger, call: str, message: str) -> None:
    with pytest.raises(PropertyError) as info:
        converger.compile("from converge import service\n" + call + "\n")
    assert message in str(info.value) and "recipe.py:2" in str(info.value)


def test_default_is_enable_then_start_and_restart_is_a_notification(
        converger: Converger) -> None:
    plan = converger.compile('from converge import file, service\n'
                             'svc = service("chrony")\n'
                             'file("/etc/x", content="x", notifies=svc.restart)\n')
    assert [(s.id, s.action) for s in plan.steps] == [
        ("service[chrony]", "enable"), ("service[chrony]", "start"), ("file[/etc/x]", "create")]
    assert plan.steps[2].notifies == [["restart", "service[chrony]", "delayed"]]


def unit_root(converger: Converger, with_systemctl: bool) -> Converger:
    lib = converger.root / "lib/systemd/system"
    lib.mkdir(parents=True)
    (lib / "demo.service").write_text(UNIT)
    (lib / "plain.service").write_text(STATIC)
    (converger.root / "etc/systemd/system").mkdir(parents=True)
    if with_systemctl:
        (converger.root / "usr/bin").mkdir(parents=True)
        (converger.root / "usr/bin/systemctl").symlink_to(str(SYSTEMCTL))
    return converger


# Both cases always collected: without systemctl the first is reported skipped (a
# failure under CI=true, tests/strict.py), not left out of the run unseen.
OFFLINE = [pytest.param(True, id="systemctl-root", marks=pytest.mark.skipif(
               not SYSTEMCTL, reason="systemctl is not installed here")),
           pytest.param(False, id="unit-symlinks")]


@pytest.mark.parametrize("with_systemctl", OFFLINE)
def test_enable_disable_offline(converger: Converger, with_systemctl: bool) -> None:
    root = unit_root(converger, with_systemctl)
    enable = 'from converge import service\nservice("demo", action="enable")\n'
    planned = root.run(enable, mode="plan")
    assert planned[0]["changes"] == ["enable service[demo]"]
    assert not root.path(LINK).is_symlink()
    first = root.run(enable)
    assert (first[0]["status"], first[0]["changes"]) == ("updated", ["enable service[demo]"])
    assert os.readlink(root.path(LINK)) == "/lib/systemd/system/demo.service"
    assert statuses(root.run(enable)) == ["up_to_date"]
    disable = 'from converge import service\nservice("demo", action="disable")\n'
    assert root.run(disable)[0]["changes"] == ["disable service[demo]"]
    assert not root.path(LINK).is_symlink()
    assert statuses(root.run(disable)) == ["up_to_date"]


@pytest.mark.parametrize("with_systemctl", OFFLINE)
def test_static_unit_warns_and_start_fails_without_systemd(converger: Converger,
                                                           with_systemctl: bool) -> None:
    root = unit_root(converger, with_systemctl)
    events = root.run('from converge import service\nservice("plain")\n')
    assert statuses(events) == ["up_to_date", "failed"]
    assert events[0]["warnings"] == [
        "plain.service is static (its unit file has no [Install] section to enable); it "
        "starts only when another unit or a socket asks for it"]
    assert events[1]["error"].startswith(
        "cannot start plain.service: systemd is not running on this machine (PID 1 is not "
        "systemd)")


def test_masked_unit_fails(converger: Converger) -> None:
    root = unit_root(converger, False)
    (root.root / "etc/systemd/system/demo.service").symlink_to("/dev/null")
    events = root.run('from converge import service\nservice("demo", action="enable")\n')
    assert events[0]["error"].startswith("demo.service is masked")


@pytest.mark.parametrize("links, action, lines", [
    pytest.param([], "enable", ["enable service[demo]"], id="no-links"),
    pytest.param(["rc2.d/K01demo", "rc3.d/K01demo"], "enable", ["enable service[demo]"],
                 id="disabled-links"),
    pytest.param(["rc2.d/S01demo", "rc3.d/S01demo"], "enable", [], id="enabled"),
    pytest.param(["rc2.d/S01demo"], "disable", ["disable service[demo]"], id="disable"),
    pytest.param(["rc2.d/K01demo"], "disable", [], id="already-disabled"),
])
def test_sysvinit_state_from_rc_links(converger: Converger, links, action, lines) -> None:
    (converger.root / "etc/init.d").mkdir(parents=True)
    (converger.root / "etc/init.d/demo").write_text("#!/bin/sh\n")
    for link in links:
        (converger.root / "etc" / link).parent.mkdir(parents=True, exist_ok=True)
        (converger.root / "etc" / link).symlink_to("../init.d/demo")
    events = converger.run('from converge import service\nservice("demo", action="%s")\n'
                           % action, mode="plan")
    assert events[0]["changes"] == lines


def test_unknown_service_fails_clearly(converger: Converger) -> None:
    events = converger.run('from converge import service\nservice("nosuch")\n')
    assert events[0]["error"].startswith(
        "no service nosuch on this machine: no systemd unit nosuch.service and no "
        "/etc/init.d/nosuch")
