"""package, service and oom_protect end to end in lab nodes: real dpkg/apt-get
against the lab's offline repository, a real sysvinit script, systemd units enabled
offline with systemctl --root, oom_score_adj of real processes read back from /proc."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Dict, List

import pytest

from converge.lab import Lab, Node
from converge.lab.idempotence import WORKDIR, ApplyRun, apply_in_node, place_recipe

pytestmark = pytest.mark.lab

INIT_SCRIPT = """\
#!/bin/sh
### BEGIN INIT INFO
# Provides:          cvgdemo
# Required-Start:
# Required-Stop:
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: converge lab demo daemon
### END INIT INFO
PIDFILE=/run/cvgdemo.pid
case "$1" in
  start) start-stop-daemon --start --quiet --background --make-pidfile --pidfile $PIDFILE \\
           --exec /bin/sleep -- 424242 ;;
  stop) start-stop-daemon --stop --quiet --pidfile $PIDFILE --remove-pidfile --retry 5
        [ $? -le 1 ] ;;
  restart) "$0" stop && "$0" start ;;
  reload) exit 0 ;;
  status) start-stop-daemon --status --pidfile $PIDFILE ;;
  *) echo "usage: $0 start|stop|restart|reload|status"; exit 2 ;;
esac
"""
UNIT = "[Service]\nExecStart=/bin/sleep 1\n\n[Install]\nWantedBy=multi-user.target\n"


def apply(node: Node, tmp_path: Path, text: str, name: str) -> ApplyRun:
    path = tmp_path / (name + ".py")
    path.write_text(textwrap.dedent(text))
    node.run(["mkdir", "-p", WORKDIR])
    return apply_in_node(node, place_recipe(node, path), "%s/%s.json" % (WORKDIR, name))


def by_id(run: ApplyRun) -> Dict[str, List[str]]:
    out: Dict[str, List[str]] = {}
    for res in run.resources():
        out.setdefault(res["id"], []).append(res["status"])
    return out


def sh(node: Node, script: str) -> str:
    done = node.run(["sh", "-c", script])
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def debs(lab: Lab) -> None:
    lab.repo.ensure()
    for name in ("cvg-alpha", "cvg-beta", "cvg-gamma", "cvg-epsilon"):
        lab.repo.build_deb(name, "1.0", files={"/usr/share/cvg/" + name: b"%s\n" % name.encode()})
    lab.repo.build_deb("cvg-alpha", "2.0", files={"/usr/share/cvg/cvg-alpha": b"two\n"})
    lab.repo.build_deb("cvg-broken", "1.0", scripts={"postinst": "#!/bin/sh\nexit 1\n"})


PACKAGES = """\
from converge import package
package("cvg-alpha", version="1.0")
package(["cvg-beta", "cvg-gamma"])
package("cvg-nosuch")
"""
AGAIN = """\
from converge import package
package("cvg-alpha", action="upgrade")
package("cvg-beta", action="remove")
package("cvg-gamma", action="purge")
package("cvg-epsilon")
package("cvg-broken")
"""


def test_packages_batch_and_fail_alone(lab_node: Node, debs: None, tmp_path: Path) -> None:
    sh(lab_node, "apt-get update -qq")
    transactions = "grep -c '^Start-Date' /var/log/apt/history.log || true"
    before = int(sh(lab_node, transactions).strip() or 0)
    first = apply(lab_node, tmp_path, PACKAGES, "packages")
    assert by_id(first) == {"package[cvg-alpha]": ["updated"],
                            "package[cvg-beta,cvg-gamma]": ["updated"],
                            "package[cvg-nosuch]": ["failed"]}, first.stdout
    assert "package cvg-nosuch is not available from any configured repository" in first.stdout
    assert "install package cvg-alpha (1.0)" in first.stdout
    assert int(sh(lab_node, transactions)) == before + 1  # one apt-get for three packages
    assert sh(lab_node, "dpkg-query -W -f='${Package}=${Version} ' cvg-alpha cvg-beta "
                        "cvg-gamma") == "cvg-alpha=1.0 cvg-beta=1.0 cvg-gamma=1.0 "
    second = apply(lab_node, tmp_path, PACKAGES, "packages")
    assert by_id(second) == {"package[cvg-alpha]": ["up_to_date"],
                             "package[cvg-beta,cvg-gamma]": ["up_to_date"],
                             "package[cvg-nosuch]": ["failed"]}
    assert int(sh(lab_node, transactions)) == before + 1
    # a failing batch (cvg-broken's postinst fails) is retried one by one; it comes
    # last because a half-configured package makes every later apt-get fail too
    third = apply(lab_node, tmp_path, AGAIN, "again")
    assert by_id(third) == {"package[cvg-epsilon]": ["updated"],
                            "package[cvg-broken]": ["failed"],
                            "package[cvg-alpha]": ["updated"],
                            "package[cvg-beta]": ["updated"],
                            "package[cvg-gamma]": ["updated"]}, third.stdout
    assert "upgrade package cvg-alpha from 1.0 to 2.0" in third.stdout
    states = sh(lab_node, "dpkg-query -W -f='${Package} ${db:Status-Abbrev}\\n' cvg-epsilon "
                          "cvg-alpha cvg-beta cvg-gamma 2>/dev/null || true")
    assert states.splitlines() == ["cvg-alpha ii ", "cvg-epsilon ii "], states  # no conffiles
    assert sh(lab_node, "cat /usr/share/cvg/cvg-alpha") == "two\n"


SERVICE = """\
from converge import file, oom_protect, service
demo = service("cvgdemo")
file("/etc/cvgdemo.conf", content="x\\n", notifies=demo.restart, immediately=True)
oom_protect("cvgdemo", service="cvgdemo", score_adj=100)
service("cvgunit", action="enable")
"""
STOP = """\
from converge import service
service("cvgdemo", action=["stop", "disable"])
service("cvgunit", action="disable")
"""


def test_sysvinit_service_and_offline_systemd_unit(lab_node: Node, tmp_path: Path) -> None:
    lab_node.write_file("/etc/init.d/cvgdemo", INIT_SCRIPT.encode(), 0o755)
    lab_node.write_file("/etc/systemd/system/cvgunit.service", UNIT.encode())
    first = apply(lab_node, tmp_path, SERVICE, "service")
    assert by_id(first) == {"service[cvgdemo]": ["updated", "updated", "updated"],
                            "file[/etc/cvgdemo.conf]": ["updated"],
                            "oom_protect[cvgdemo]": ["updated"],
                            "service[cvgunit]": ["updated"]}, first.stdout + first.stderr
    for line in ("enable service[cvgdemo]", "start service[cvgdemo]",
                 "restart service[cvgdemo]", "enable service[cvgunit]"):
        assert line in first.stdout
    assert "service cvgdemo has no systemd unit, so its setting is not persisted" in first.stdout
    pid = sh(lab_node, "cat /run/cvgdemo.pid").strip()
    assert sh(lab_node, "cat /proc/%s/cmdline | tr '\\0' ' '" % pid) == "/bin/sleep 424242 "
    assert sh(lab_node, "cat /proc/%s/oom_score_adj" % pid).strip() == "100"
    assert sh(lab_node, "ls /etc/rc2.d | grep cvgdemo").startswith("S")
    assert sh(lab_node, "readlink /etc/systemd/system/multi-user.target.wants/cvgunit.service"
              ).strip() == "/etc/systemd/system/cvgunit.service"
    second = apply(lab_node, tmp_path, SERVICE, "service")
    assert {s for statuses in by_id(second).values() for s in statuses} == {"up_to_date"}, \
        second.stdout
    stop = apply(lab_node, tmp_path, STOP, "stop")
    assert by_id(stop) == {"service[cvgdemo]": ["updated", "updated"],
                           "service[cvgunit]": ["updated"]}, stop.stdout + stop.stderr
    assert lab_node.run(["/etc/init.d/cvgdemo", "status"]).returncode == 3
    assert sh(lab_node, "ls /etc/rc2.d | grep cvgdemo").startswith("K")
    assert lab_node.run(["test", "-e", "/etc/systemd/system/multi-user.target.wants/"
                                       "cvgunit.service"]).returncode == 1
    again = apply(lab_node, tmp_path, STOP, "stop")
    assert {s for statuses in by_id(again).values() for s in statuses} == {"up_to_date"}


SEED_OOM = """\
from converge import oom_protect, sysctl
sysctl("vm.panic_on_oom", 1)
oom_protect("sshd", pattern="/usr/sbin/sshd", score_adj=%d)
oom_protect("sleepers", pattern="^sleep 4242[.]5$", score_adj=100, persist=False)
"""


@pytest.mark.parametrize("score", [-1000, 0])
def test_seed_oom_section(lab_node: Node, tmp_path: Path, score: int) -> None:
    sh(lab_node, "sleep 4242.5 >/dev/null 2>&1 </dev/null & echo 500 > /proc/$!/oom_score_adj")
    listener = sh(lab_node, "cat /proc/1/oom_score_adj").strip()
    first = apply(lab_node, tmp_path, SEED_OOM % score, "seed")
    statuses = by_id(first)
    assert statuses["sysctl[vm.panic_on_oom]"] == ["updated"]
    assert statuses["oom_protect[sleepers]"] == ["updated"], first.stdout
    sleeper = sh(lab_node, "pgrep -x -f 'sleep 4242.5'").split()
    assert [sh(lab_node, "cat /proc/%s/oom_score_adj" % p).strip() for p in sleeper] == ["100"]
    if statuses["oom_protect[sshd]"] == ["failed"]:  # no CAP_SYS_RESOURCE here
        # a failed resource shows its error, not the changes it set out to make
        assert score < 0 and "needs CAP_SYS_RESOURCE" in first.stdout
        assert sh(lab_node, "cat /proc/1/oom_score_adj").strip() == listener
        assert lab_node.run(["test", "-e", "/etc/cron.d/converge-oom-sshd"]).returncode == 1
        return
    assert "of pid 1 (sshd: /usr/sbin/sshd" in first.stdout
    assert sh(lab_node, "cat /proc/1/oom_score_adj").strip() == str(score)
    cron = sh(lab_node, "cat /etc/cron.d/converge-oom-sshd")
    assert cron.splitlines()[-1].startswith("* * * * * root ")
    second = apply(lab_node, tmp_path, SEED_OOM % score, "seed")
    assert {s for statuses in by_id(second).values() for s in statuses} == {"up_to_date"}, \
        second.stdout


# Like chrony's init script in a node: the daemon fails, the script says so and exits 0.
FAILING_SCRIPT = """\
#!/bin/sh
### BEGIN INIT INFO
# Provides:          cvgfail
# Required-Start:
# Required-Stop:
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: a daemon that cannot start
### END INIT INFO
PIDFILE=/run/cvgfail.pid
case "$1" in
  start|restart)
    printf "Starting cvgfail: "
    if start-stop-daemon --start --quiet --pidfile $PIDFILE --make-pidfile \\
         --exec /bin/sh -- -c 'echo "cvgfail: cannot bind 127.0.0.1:323" >&2; exit 1'; then
      echo "cvgfail."
    else
      echo "cvgfail failed!"
    fi
    exit 0 ;;
  stop) exit 0 ;;
  status) start-stop-daemon --status --pidfile $PIDFILE ;;
  *) exit 2 ;;
esac
"""
# Starts, but its restart stops the daemon and cannot start it again (exit 0 all the same).
FLAKY_SCRIPT = INIT_SCRIPT.replace("cvgdemo", "cvgflaky").replace(
    '  restart) "$0" stop && "$0" start ;;',
    '  restart) "$0" stop; echo "cvgflaky failed!"; exit 0 ;;')
STARTS = """\
from converge import file, service
good = service("cvgdemo", action="start")
bad = service("cvgfail", action="start")
flaky = service("cvgflaky", action="start")
file("/etc/cvgdemo.conf", content="x\\n", notifies=[good.restart, bad.restart, flaky.restart])
"""


def test_a_service_that_does_not_run_after_start_fails(lab_node: Node, tmp_path: Path) -> None:
    """The init script's exit code is not trusted: after start (or restart) the
    service's status must say it runs, or the resource fails with the script's words."""
    lab_node.write_file("/etc/init.d/cvgdemo", INIT_SCRIPT.encode(), 0o755)
    lab_node.write_file("/etc/init.d/cvgfail", FAILING_SCRIPT.encode(), 0o755)
    lab_node.write_file("/etc/init.d/cvgflaky", FLAKY_SCRIPT.encode(), 0o755)
    first = apply(lab_node, tmp_path, STARTS, "starts")
    assert first.returncode == 1, first.stdout + first.stderr
    assert by_id(first) == {"service[cvgdemo]": ["updated", "updated"],
                            "service[cvgfail]": ["failed", "failed"],
                            "service[cvgflaky]": ["updated", "failed"],
                            "file[/etc/cvgdemo.conf]": ["updated"]}, first.stdout
    errors = [r["error"] for r in first.with_status("failed")]
    assert errors[0].startswith("cvgfail did not start: `service cvgfail start` exited 0, but "
                                "its status command exited 1 (dead, its pid file left "
                                "behind); it said: Starting cvgfail: "), errors[0]
    assert "cvgfail: cannot bind 127.0.0.1:323" in errors[0] and "cvgfail failed!" in errors[0]
    # the notified restart of a stopped service is a start, and is checked the same way
    assert errors[1].startswith("cvgfail did not start: `service cvgfail start` exited 0")
    assert errors[2].startswith("cvgflaky did not start: `service cvgflaky restart` exited 0, "
                                "but its status command exited 3 (not running); it said: "), \
        errors[2]
    assert "cvgflaky failed!" in errors[2]
    assert lab_node.run(["/etc/init.d/cvgdemo", "status"]).returncode == 0
    second = apply(lab_node, tmp_path, STARTS, "starts")
    assert by_id(second) == {"service[cvgdemo]": ["up_to_date"],
                             "service[cvgfail]": ["failed"],
                             "service[cvgflaky]": ["updated"],
                             "file[/etc/cvgdemo.conf]": ["up_to_date"]}, second.stdout
