"""converge pull on a bare Debian node: a node from the debian-12 lab image (Debian's
python3 with no converge, no pip, no package index) is bootstrapped by pushing
examples/pull/bootstrap.py, which ships wheels made on this machine
(python3 -m converge.wheels build) and installs them with converge's own installer;
a second push changes nothing; then the real cron daemon of the node runs the
command of the cron entry that --install wrote, with cron's environment, and that
run pulls a signed commit with the installed converge."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest

from converge.lab import Lab, Node
from converge.lab.idempotence import push_to_node
from converge.wheels import build

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parent.parent.parent
BOOTSTRAP = REPO / "examples" / "pull" / "bootstrap.py"
GIT = "git -c user.name=ops -c user.email=ops@example.com -c gpg.format=ssh"
RECIPE = 'from converge import file\nfile("/etc/pulled", content="pulled by cron\\n")\n'
BARE = ["env", "-u", "PYTHONPATH"]  # the image's python3 as cron runs it: no lab PYTHONPATH


def sh(node: Node, script: str) -> str:
    done = node.run(["sh", "-c", script], timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture
def bare_node(lab: Lab):
    node = lab.up(1, image="debian-12", mirror=["git"])[0]
    try:
        yield node
    finally:
        lab.down([node.name])


def test_bootstrap_installs_converge_from_wheels_and_the_cron_job_pulls(
        lab: Lab, bare_node: Node, tmp_path: Path) -> None:
    node = bare_node
    wheels = tmp_path / "wheels"
    build(wheels)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "trusted", "-f",
                    str(tmp_path / "trusted")], check=True)
    signers = tmp_path / "allowed_signers"
    signers.write_text("ops@example.com " + (tmp_path / "trusted.pub").read_text())
    assert node.run([*BARE, "python3", "-c", "import converge"]).returncode == 1
    assert node.run([*BARE, "python3", "-m", "pip", "--version"]).returncode == 1

    args = ["-a", "wheels=%s" % wheels, "-a", "repo=/srv/ops", "-a", "signers=%s" % signers,
            "-a", "pull_options=--every 15m --splay 5m"]
    first = push_to_node(lab, node, BOOTSTRAP, tmp_path / "first.json", args)
    assert first.ok, first.stdout + first.stderr
    installed = [r["id"] for r in first.with_status("updated")]
    assert any(i.startswith("execute[env PYTHONPATH=") for i in installed), installed
    second = push_to_node(lab, node, BOOTSTRAP, tmp_path / "second.json", args)
    assert second.ok and not second.with_status("updated"), second.stdout
    assert {r["status"] for r in second.resources()} <= {"up_to_date", "skipped"}, second.stdout

    where = sh(node, "cd / && env -u PYTHONPATH python3 -c "
               "'import converge; print(converge.__file__)'")
    assert where.startswith("/usr/local/lib/python3.11/dist-packages/converge/"), where
    assert sh(node, "env -u PYTHONPATH /usr/local/bin/converge --version").strip()

    # converge runs now: --install --wheels installs from the folder (nothing new here)
    out = sh(node, "cd / && env -u PYTHONPATH converge pull /srv/ops --allowed-signers "
             "/etc/converge/allowed-signers --install --wheels /var/lib/converge/wheels "
             "--every 15m --splay 5m")
    assert "wheels: 0 installed, %d up to date, for /usr/bin/python3" % len(
        list(wheels.glob("*.whl"))) in out, out

    [line] = [x for x in sh(node, "cat /etc/cron.d/converge-pull").splitlines()
              if x and not x.startswith("#")]
    command = line.split(None, 6)[6]
    assert command.startswith("/usr/bin/python3 -m converge pull --config "
                              "/etc/converge/pull.json"), command

    # a signed commit in the repository the settings name
    node.write_file("/srv/keys/trusted", (tmp_path / "trusted").read_bytes(), 0o600)
    sh(node, "mkdir -p /srv/ops && cd /srv/ops && git init -q -b main && printf '%%s' %s > "
       "recipe.py && git add -A && %s -c user.signingkey=/srv/keys/trusted commit -S -q -m v1"
       % (shlex.quote(RECIPE), GIT))

    # the node's cron daemon runs the entry's command (as @reboot: once, when cron starts,
    # with cron's environment), so no test waits for the minute the schedule names
    node.write_file("/etc/cron.d/converge-pull-now", ("@reboot root %s\n" % command).encode(),
                    0o644)
    sh(node, "rm -f /run/crond.reboot && /usr/sbin/cron")
    try:
        done = node.run(["timeout", "120", "sh", "-c", "until grep -qs last_applied "
                         "/var/lib/converge/pull/*/state.json; do sleep 0.1; done"],
                        timeout=180)
        assert done.returncode == 0, sh(node, "ls -lR /var/lib/converge; ps -ef")
    finally:
        node.run(["sh", "-c", "kill $(cat /run/crond.pid)"])
    assert node.read_file("/etc/pulled") == b"pulled by cron\n"
    state = json.loads(sh(node, "cat /var/lib/converge/pull/*/state.json"))
    assert state["last_result"] == "ok" and "last_error" not in state, state
