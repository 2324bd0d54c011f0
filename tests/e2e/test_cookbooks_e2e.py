"""Every cookbook and example, converged in a lab node as the docs show it: the
first run converges, the second is all up to date. Real packages (sysstat, chrony,
dstat) are mirrored into the lab's offline repository first, as `converge test`
does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from converge.lab.idempotence import (
    WORKDIR,
    apply_in_node,
    assert_idempotent,
    mirror_for,
    place_recipe,
    recipe_packages,
)

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parent.parent.parent
# This machine's root lacks CAP_SYS_RESOURCE: negative oom_score_adj is refused.
NO_CAP = ["-a", "oom_guard.sshd_score_adj=0"]


@pytest.mark.parametrize("cookbook, args", [
    pytest.param("hello", ["-a", "hello.path=/root/file.txt"], id="hello"),
    pytest.param("oom_guard", NO_CAP, id="oom_guard"),
    pytest.param("oom_guard", NO_CAP + ["-a", "oom_guard.panic_on_oom=1",
                                        "-a", "oom_guard.install_dstat=false"],
                 id="oom_guard-overrides"),
    pytest.param("sysstat", [], id="sysstat"),
    pytest.param("sysstat", ["-a", "sysstat.interval=5", "-a", "sysstat.history=7"],
                 id="sysstat-overrides"),
    pytest.param("web_hardening", [], id="web_hardening"),
])
def test_cookbook_converges_then_is_up_to_date(cookbook: str, args: list, lab, lab_node) -> None:
    path = REPO / "cookbooks" / cookbook
    if cookbook == "web_hardening":
        install_fake_nginx(lab_node)
    mirror_for(lab, recipe_packages(path))
    result = assert_idempotent(lab_node, path, args)
    assert result.first.with_status("updated"), result.describe()
    if cookbook == "sysstat" and args:
        assert b"*/5 * * * * root" in lab_node.read_file("/etc/cron.d/sysstat-converge")
        assert b"HISTORY=7\n" in lab_node.read_file("/etc/sysstat/sysstat")
    if cookbook == "oom_guard" and "oom_guard.panic_on_oom=1" in args:
        assert lab_node.read_file("/proc/sys/vm/panic_on_oom") == b"1\n"
    if cookbook == "web_hardening":
        snippet = lab_node.read_file("/etc/nginx/conf.d/security-headers.conf")
        assert b'Strict-Transport-Security "max-age=31536000; includeSubDomains" always' \
            in snippet
        assert lab_node.read_file("/var/log/fake-nginx.log") == b"reload\n"


def has_cap_sys_resource() -> bool:
    """Whether this process (root, and so lab nodes) has CAP_SYS_RESOURCE (bit 24)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> 24 & 1)
    return False


def converge_test(lab, *args: str) -> subprocess.CompletedProcess:
    """`converge test ARGS` from the repository root, as the docs show it (the session
    lab's repository shared, so packages are mirrored once)."""
    env = {**os.environ, "CONVERGE_LAB_DIR": str(lab.directory)}
    return subprocess.run([sys.executable, "-m", "converge", "test", *args], cwd=REPO,
                          capture_output=True, text=True, env=env, timeout=900)


@pytest.mark.parametrize("cookbook", ["hello", "sysstat", "web_hardening", "oom_guard"])
def test_converge_test_passes_each_cookbook_with_its_defaults(cookbook: str, lab) -> None:
    done = converge_test(lab, f"cookbooks/{cookbook}")
    output = done.stdout + done.stderr
    if cookbook == "oom_guard" and not has_cap_sys_resource():
        # the documented refusal, then the documented override
        assert done.returncode == 1, output
        assert "the kernel refused oom_score_adj -1000" in output
        assert "needs CAP_SYS_RESOURCE" in output
        done = converge_test(lab, f"cookbooks/{cookbook}", "-a", "oom_guard.sshd_score_adj=0")
        output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "node1: idempotent: the second run changed nothing" in output
    if cookbook == "hello":
        assert "* file[file.txt] action create (up to date)" in output


def test_converge_test_of_chrony_says_a_node_cannot_run_chronyd(lab) -> None:
    """chronyd dies at start in a node (no CAP_SYS_TIME) while its init script exits 0:
    the test fails, saying so, instead of blessing a dead daemon."""
    done = converge_test(lab, "cookbooks/chrony")
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "node1: service[chrony] is not running after the runs (`service chrony status`: " \
        in output
    assert ("node1: service[chrony]: a lab node cannot give chrony what it needs: it sets the "
            "system clock, which needs CAP_SYS_TIME, and lab nodes do not have it") in output
    readme = (REPO / "cookbooks/chrony/README.md").read_text()
    assert "Not testable in a lab node" in readme and "CAP_SYS_TIME" in readme


FAKE_NGINX = """#!/bin/sh
case "$1" in
    start|stop|restart|reload) echo "$1" >> /var/log/fake-nginx.log ;;
    status) exit 0 ;;
esac
"""


def install_fake_nginx(node) -> None:
    """An nginx binary and init script that only log what they are asked to do."""
    script = ("mkdir -p /etc/nginx/conf.d && printf '#!/bin/sh\\nexit 0\\n' > /usr/sbin/nginx"
              " && cat > /etc/init.d/nginx && chmod 0755 /usr/sbin/nginx /etc/init.d/nginx")
    done = node.run(["sh", "-c", script], input=FAKE_NGINX)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("example, args", [
    pytest.param("oom.py", ["-a", "score_adj=0"], id="oom"),
    pytest.param("sysstat.py", [], id="sysstat"),
])
def test_example_runs_as_documented(example: str, args: list, lab, lab_node) -> None:
    path = REPO / "examples" / example
    mirror_for(lab, recipe_packages(path))
    result = assert_idempotent(lab_node, path, args)
    assert result.first.ok and result.second.ok


def test_chrony_cookbook_fails_where_chronyd_cannot_run(lab, lab_node) -> None:
    """chronyd needs to set the clock (CAP_SYS_TIME), which no lab node can give it:
    Debian's init script prints 'chronyd failed!' and exits 0, and the service's
    restart fails with chronyd's own words instead of passing on that exit code."""
    path = REPO / "cookbooks" / "chrony"
    mirror_for(lab, recipe_packages(path))
    lab_node.run(["mkdir", "-p", WORKDIR])
    assert lab_node.run(["apt-get", "update", "-qq"], timeout=300).returncode == 0
    run = apply_in_node(lab_node, place_recipe(lab_node, path), WORKDIR + "/chrony.json",
                        ["-a", "chrony.servers=[ntp1.example.net]"])
    assert run.returncode == 1, run.stdout + run.stderr
    assert b"server ntp1.example.net iburst minpoll 6 maxpoll 10\n" in lab_node.read_file(
        "/etc/chrony/chrony.conf")
    failed = run.with_status("failed")
    assert [r["id"] for r in failed] == ["service[chrony]"], run.stdout
    error = failed[0]["error"]
    assert error.startswith("chrony did not start: `service chrony start` exited 0, but its "
                            "status command exited"), error
    assert "chronyd failed!" in error and "Operation not permitted" in error, error
