"""The package manager failing mid-batch, with real apt-get and dpkg in a lab node
and the lab's offline repository.

- A maintainer script fails in the middle of a batched install: that package is
  reported failed with apt's own message and a hint saying what to do, the others
  of the batch are installed (one-by-one retry), and once a fixed version is
  published the next run converges and dpkg is left consistent (`dpkg --audit`).
- Another process holds dpkg's lock: every package of the run fails saying so,
  nothing is half-installed, and once the lock is free the next run converges.
- The agent is killed (-9) while apt-get installs a batch: the journal already
  names every package of the batch, and `converge rollback` removes them.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from converge.lab import Lab, Node
from converge.lab.idempotence import WORKDIR, ApplyRun, apply_in_node, place_recipe
from converge.lab.node import _python_path
from tests.faults.helpers import TALLY, NodeProcess, in_node_converge

pytestmark = pytest.mark.lab

BAD_POSTINST = """\
#!/bin/sh
set -e
if [ "$1" = configure ]; then
    echo "cvgf-bad: /etc/cvgf-bad.conf is missing" >&2
    exit 1
fi
"""
BATCH = """\
from converge import package
package("cvgf-one")
package("cvgf-bad")
package("cvgf-two")
"""
LOCKED = """\
from converge import package
package("cvgf-three")
package("cvgf-four")
"""
HOLD_LOCK = """\
import fcntl, sys
lock = open("/var/lib/dpkg/lock-frontend", "w")
fcntl.lockf(lock, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.read()
"""


@pytest.fixture(scope="module")
def debs(lab: Lab) -> None:
    lab.repo.ensure()
    for name in ("cvgf-one", "cvgf-two", "cvgf-three", "cvgf-four"):
        lab.repo.build_deb(name, "1.0", files={"/usr/share/cvgf/" + name: name.encode() + b"\n"})
    lab.repo.build_deb("cvgf-bad", "1.0", files={"/usr/share/cvgf/cvgf-bad": b"1.0\n"},
                       scripts={"postinst": BAD_POSTINST})


def sh(node: Node, *argv: str) -> str:
    done = node.run(list(argv), timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def apply(node: Node, tmp_path: Path, text: str, name: str) -> ApplyRun:
    path = tmp_path / (name + ".py")
    path.write_text(textwrap.dedent(text))
    node.run(["mkdir", "-p", WORKDIR])
    return apply_in_node(node, place_recipe(node, path), "%s/%s.json" % (WORKDIR, name))


def statuses(run: ApplyRun) -> dict[str, str]:
    return {res["id"]: res["status"] for res in run.resources()}


def dpkg_states(node: Node, *names: str) -> dict[str, str]:
    done = node.run(["dpkg-query", "-W", "-f=${Package} ${db:Status-Abbrev}\\n", *names])
    return dict(line.split(" ", 1) for line in done.stdout.splitlines())


def test_a_failing_postinst_mid_batch_fails_alone(lab: Lab, lab_node: Node, debs: None,
                                                  tmp_path: Path) -> None:
    node = lab_node
    sh(node, "apt-get", "update", "-qq")
    first = apply(node, tmp_path, BATCH, "batch")
    TALLY["package_faults"] += 1
    assert first.returncode == 1, first.stdout + first.stderr
    assert statuses(first) == {"package[cvgf-one]": "updated", "package[cvgf-bad]": "failed",
                               "package[cvgf-two]": "updated"}, first.stdout
    error = first.with_status("failed")[0]["error"]
    assert "apt-get install failed (exit 100)" in error, error
    assert "cvgf-bad: /etc/cvgf-bad.conf is missing" in error, error  # the script's own words
    assert "post-installation script subprocess returned error exit status 1" in error, error
    assert "dpkg --audit" in error and "dpkg --configure -a" in error, error  # what to do
    assert dpkg_states(node, "cvgf-one", "cvgf-two", "cvgf-bad") == {
        "cvgf-one": "ii ", "cvgf-two": "ii ", "cvgf-bad": "iF "}
    assert "cvgf-bad" in sh(node, "dpkg", "--audit")

    lab.repo.build_deb("cvgf-bad", "1.1", files={"/usr/share/cvgf/cvgf-bad": b"1.1\n"})
    sh(node, "apt-get", "update", "-qq")
    second = apply(node, tmp_path, BATCH, "batch")
    assert second.returncode == 0, second.stdout + second.stderr
    assert statuses(second) == {"package[cvgf-one]": "up_to_date",
                                "package[cvgf-bad]": "updated",
                                "package[cvgf-two]": "up_to_date"}, second.stdout
    assert "install package cvgf-bad (1.1), which is only partly installed" in second.stdout
    assert sh(node, "dpkg", "--audit") == ""
    assert node.read_file("/usr/share/cvgf/cvgf-bad") == b"1.1\n"
    third = apply(node, tmp_path, BATCH, "batch")
    assert set(statuses(third).values()) == {"up_to_date"}, third.stdout
    TALLY["survived"] += 1
    TALLY["injected"] += 1
    TALLY["next_runs"] += 1


def test_dpkg_lock_held_fails_every_package_and_harms_nothing(lab_node: Node, debs: None,
                                                              tmp_path: Path) -> None:
    node = lab_node
    sh(node, "apt-get", "update", "-qq")
    holder = NodeProcess(node, [sys.executable, "-I", "-c", HOLD_LOCK])
    try:
        assert next(holder.lines()) == "locked\n"
        first = apply(node, tmp_path, LOCKED, "locked")
    finally:
        code, _, err = holder.finish()
    assert code == 0, err
    TALLY["package_faults"] += 1
    assert first.returncode == 1, first.stdout + first.stderr
    assert statuses(first) == {"package[cvgf-three]": "failed",
                               "package[cvgf-four]": "failed"}, first.stdout
    for res in first.with_status("failed"):
        assert "Could not get lock /var/lib/dpkg/lock-frontend" in res["error"], res["error"]
        assert "another package manager is running" in res["error"], res["error"]
    assert dpkg_states(node, "cvgf-three", "cvgf-four") == {}
    assert sh(node, "dpkg", "--audit") == ""

    second = apply(node, tmp_path, LOCKED, "locked")
    assert second.returncode == 0, second.stdout + second.stderr
    assert set(statuses(second).values()) == {"updated"}, second.stdout
    assert dpkg_states(node, "cvgf-three", "cvgf-four") == {"cvgf-three": "ii ",
                                                             "cvgf-four": "ii "}
    TALLY["survived"] += 1
    TALLY["injected"] += 1
    TALLY["next_runs"] += 1


# kill -9 during a batched install: the slow package's postinst says it runs (a fifo
# the test reads), then waits for the test's word (another fifo).
SLOW_POSTINST = """\
#!/bin/sh
set -e
if [ "$1" = configure ]; then
    echo configuring > /tmp/cvgk-configuring
    read word < /tmp/cvgk-go
fi
"""
WAIT_FOR_DPKG = """\
import fcntl
fcntl.lockf(open("/var/lib/dpkg/lock-frontend", "w"), fcntl.LOCK_EX)
"""


@pytest.fixture(scope="module")
def kill_debs(lab: Lab) -> None:
    lab.repo.ensure()
    for name in ("cvgk-one", "cvgk-two"):
        lab.repo.build_deb(name, "1.0", files={"/usr/share/cvgk/" + name: b"1\n"})
    lab.repo.build_deb("cvgk-slow", "1.0", files={"/usr/share/cvgk/cvgk-slow": b"1\n"},
                       scripts={"postinst": SLOW_POSTINST})


def wait_for_fifo(node: Node, fifo: str, timeout: float = 300) -> str:
    """What a process in the node writes into the fifo (opening it blocks until then)."""
    path = "/proc/%d/root%s" % (node.pid, fifo)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(Path(path).read_text()), daemon=True)
    reader.start()
    reader.join(timeout)
    if reader.is_alive():
        with open(path, "w"):
            pass
        pytest.fail("nothing came through %s" % fifo)
    return got[0]


def killed_run(node: Node, recipe: str) -> dict:
    """The journal (write-ahead log) of the killed run of this recipe."""
    runs = "/proc/%d/root/var/lib/converge/runs" % node.pid
    found, seen = [], []
    for name in os.listdir(runs):
        if name.endswith(".partial"):
            seen.append(Path(runs, name).read_text()[:300])
            lines = Path(runs, name).read_text().splitlines()
            entries = [json.loads(line) for line in lines]
            if entries[0]["header"]["recipe"].lstrip("/") == recipe.lstrip("/"):
                found.append({"id": entries[0]["header"]["id"],
                              "records": {e["i"]: e["record"] for e in entries[1:]}})
    assert len(found) == 1, seen
    return found[0]


@pytest.mark.parametrize("order", [["cvgk-one", "cvgk-slow", "cvgk-two"],
                                   ["cvgk-one", "cvgk-two", "cvgk-slow"]],
                         ids=["slow-in-the-middle", "slow-last"])
def test_kill_during_a_package_batch_is_journaled_and_rolled_back(
        lab_node: Node, kill_debs: None, tmp_path: Path, order: list) -> None:
    """kill -9 of the agent while apt-get installs a batch: the journal already names
    every package of the batch, and a rollback removes what got installed."""
    node = lab_node
    sh(node, "apt-get", "update", "-qq")
    sh(node, "mkfifo", "/tmp/cvgk-configuring", "/tmp/cvgk-go")
    recipe = tmp_path / "batch.py"
    recipe.write_text("from converge import package\n"
                      + "".join('package("%s")\n' % name for name in order))
    placed = place_recipe(node, recipe)
    run = NodeProcess(node, in_node_converge(placed), env=_python_path())
    assert wait_for_fifo(node, "/tmp/cvgk-configuring") == "configuring\n"
    assert run.kill()  # apt-get is in the middle of the batch's transaction
    code, out, err = run.finish()
    TALLY["package_faults"] += 1
    TALLY["injected"] += 1
    assert code == -9, out + err
    Path("/proc/%d/root/tmp/cvgk-go" % node.pid).write_text("go\n")  # apt-get may finish
    assert node.run([sys.executable, "-I", "-c", WAIT_FOR_DPKG], timeout=300).returncode == 0
    assert dpkg_states(node, *order) == {name: "ii " for name in order}

    journal = killed_run(node, placed)
    records = [journal["records"][i] for i in sorted(journal["records"])]
    assert [(r["id"], r["status"]) for r in records] == [
        ("package[%s]" % name, "applying") for name in order]
    assert [r["before"]["packages"] for r in records] == [{name: None} for name in order]

    back = node.run([sys.executable, "-m", "converge", "rollback", journal["id"], "--yes"],
                    env=_python_path(), timeout=600)
    assert back.returncode == 0, back.stdout + back.stderr
    assert dpkg_states(node, *order) == {}
    assert sh(node, "dpkg", "--audit") == ""
    TALLY["rollbacks"] += 1
    TALLY["survived"] += 1
