"""kill -9 of the agent in the middle of a 200-file run, in one lab node.

Each trial converges the files towards the other version ("old" <-> "new", of
different lengths, every tenth one 64 KiB or more) and kills the agent after the
k-th resource line it printed (k from a seeded RNG), some trials a few random
milliseconds later so that the kill lands inside a write. After every kill each
managed file must be exactly its old or its new content (sha256), never empty or
partial; every run journal must be readable (a finished run's JSON; a killed
run's write-ahead log of JSON lines, of which only the last may be torn), and the
newest must be the killed run's (unfinished, unless the kill came after its end).
Every fifth trial `converge history` must list that run, as interrupted when it
was, and `converge rollback RUN` must put every file back as it was before it;
every tenth trial, and at the end, the next run must converge with no temp file
left behind. The same is done over SSH, killing the
remote agent inside the node.

Each test has its own node and converges it to the "old" version first, so that
either passes alone, in any order and on any xdist worker.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from converge.lab import Lab, Node
from converge.lab.idempotence import place_recipe
from tests.faults.helpers import (
    TALLY,
    NodeProcess,
    in_node_converge,
    node_state,
    planned_files,
    remote_agents,
)

pytestmark = pytest.mark.lab

SEED = 20240804  # issue #8, item 4: the trials are the same on every run
TRIALS = 50
SSH_TRIALS = 4
MANAGED = "/srv/faults"
FILES = 200
RECIPE = '''\
from converge import directory, file

GEN = attrs["gen"]


def body(i):
    """Old and new differ in content and length; every tenth file is 64 KiB or more."""
    size = 65536 if i % 10 == 0 else 40 + 13 * i
    grow = (i // 10) % 2 if i % 10 == 0 else i % 2
    if GEN == "new":
        size = size * 3 // 2 + 7 if grow else size // 2 + 3
    unit = "%s %03d|" % (GEN, i)
    return (unit * (size // len(unit) + 1))[:size]


directory("/srv/faults")
for i in range(200):
    file("/srv/faults/f%03d" % i, content=body(i))
'''


@pytest.fixture(scope="module")
def recipe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("faults") / "recipe.py"
    path.write_text(RECIPE)
    return path


@pytest.fixture(scope="module")
def versions(recipe: Path) -> dict[str, dict[str, tuple[int, str]]]:
    """(size, sha256) of every managed file, per version."""
    found = {gen: planned_files(recipe, {"gen": gen}) for gen in ("old", "new")}
    assert len(found["old"]) == FILES
    assert all(found["old"][p] != found["new"][p] for p in found["old"])
    assert all(found["old"][p][0] != found["new"][p][0] for p in found["old"])
    return found


def resource_line(line: str) -> bool:
    return line.strip().startswith("* ")


class Checker:
    """The checks made after every fault; problems are collected, not raised, so
    that every trial runs and the figures count them all."""

    def __init__(self, node: Node, versions: dict[str, dict[str, tuple[int, str]]]) -> None:
        self.node = node
        self.versions = versions
        self.problems: list[str] = []
        self.temps: set[str] = set()  # temp files seen after a fault
        self.journals_read: set[str] = set()

    def after_fault(self, label: str) -> dict:
        state = node_state(self.node, MANAGED)
        old, new = self.versions["old"], self.versions["new"]
        for path in old:
            got = tuple(state["files"].get(path) or ())
            TALLY["files_checked"] += 1
            if got not in (old[path], new[path]):
                TALLY["files_bad"] += 1
                self.problems.append("%s: %s is neither its old nor its new content "
                                     "(size, sha256 = %s)" % (label, path, got or "missing"))
        fresh = set(state["temps"]) - self.temps
        TALLY["temps_after_fault"] += len(fresh)
        self.temps |= fresh
        for name, journal in state["journals"].items():
            if name not in self.journals_read:  # counted once, checked after every fault
                self.journals_read.add(name)
                TALLY["journals_read"] += 1
                TALLY["journals_torn_last_line"] += bool(journal.get("torn"))
            if "error" in journal:
                TALLY["journals_bad"] += 1
                self.problems.append("%s: journal %s does not load: %s"
                                     % (label, name, journal["error"]))
        return state

    def killed_run(self, label: str, state: dict, known: set[str], start: dict
                   ) -> str | None:
        """The id of the killed run: its journal (the newest, not in ``known``) is an
        unfinished apply; a run killed before it changed anything may have none."""
        fresh = {name.rpartition(".")[0]: journal for name, journal
                 in state["journals"].items() if name.rpartition(".")[0] not in known}
        if not fresh:
            if state["files"] != start:
                self.problems.append("%s: the killed run changed files but left no "
                                     "journal" % label)
            return None
        run_id = max(fresh)
        journal = fresh[run_id]
        if journal.get("kind") != "apply":
            self.problems.append("%s: the newest journal %s is not an apply: %s"
                                 % (label, run_id, journal))
        if journal.get("finished") is not None:  # killed on its way out, journal written
            TALLY["kills_after_the_journal_was_finished"] += 1
        return run_id

    def rolled_back(self, label: str, run_id: str, start: dict,
                    history: tuple[int, str], rollback: tuple[int, str]) -> None:
        """`converge history` lists the killed run, as interrupted unless it had
        finished its journal; `converge rollback RUN` puts every file back as it
        was before that run."""
        code, output = history
        try:
            entry = {e["id"]: e for e in json.loads(output)}.get(run_id) if code == 0 else None
        except ValueError:
            entry = None
        if not entry or entry.get("interrupted") != (entry.get("finished") is None):
            self.problems.append("%s: converge history does not list run %s as interrupted "
                                 "(exit %d):\n%s" % (label, run_id, code, output[-1000:]))
        code, output = rollback
        files = node_state(self.node, MANAGED)["files"]
        wrong = [p for p in start if files.get(p) != start[p]]
        if code != 0 or wrong:
            self.problems.append("%s: rollback of %s (exit %d) left %d files unlike before "
                                 "the run: %s\n%s" % (label, run_id, code, len(wrong),
                                                       wrong[:5], output[-1500:]))
        else:
            TALLY["rollbacks"] += 1

    def converged(self, label: str, gen: str, code: int, output: str) -> None:
        """After a run that should have converged everything to ``gen``."""
        if code != 0:
            self.problems.append("%s: the next run failed (exit %d):\n%s"
                                 % (label, code, output[-2000:]))
            return
        state = node_state(self.node, MANAGED)
        wrong = [p for p, want in self.versions[gen].items()
                 if tuple(state["files"].get(p) or ()) != want]
        if wrong:
            self.problems.append("%s: after the next run %d files are not %s: %s"
                                 % (label, len(wrong), gen, wrong[:5]))
        TALLY["temps_after_next_run"] += len(state["temps"])
        if state["temps"]:
            self.problems.append("%s: temp files left after the next run: %s"
                                 % (label, state["temps"]))
        if not wrong and not state["temps"]:
            TALLY["next_runs"] += 1


def test_kill_9_at_random_points_of_a_200_file_run(lab_node: Node, recipe: Path,
                                                   versions: dict) -> None:
    node = lab_node  # one node for every trial (a node per trial would cost more than them)
    inside = place_recipe(node, recipe)
    check = Checker(node, versions)

    def converge(*args: str) -> tuple[int, str]:
        done = node.run([sys.executable, "-m", "converge", *args],
                        env={"PYTHONDONTWRITEBYTECODE": "1"}, timeout=120)
        return done.returncode, done.stdout + done.stderr

    def apply(gen: str) -> tuple[int, str]:
        return converge("apply", inside, "-a", "gen=" + gen)

    check.converged("baseline", "old", *apply("old"))
    assert not check.problems, check.problems
    rng = random.Random(SEED)
    for trial in range(TRIALS):
        gen = ("new", "old")[trial % 2]
        after = rng.randint(1, FILES - 10)
        inside_write = trial % 3 == 2
        delay = rng.uniform(0, 0.003) if inside_write else 0.0
        label = "trial %d (towards %s, kill after %d lines%s)" % (
            trial, gen, after, " + %.1f ms" % (delay * 1000) if delay else "")
        before = len(check.problems)
        start_state = node_state(node, MANAGED)
        start = start_state["files"]
        known = {name.rpartition(".")[0] for name in start_state["journals"]}
        agent = NodeProcess(node, in_node_converge(inside, "-a", "gen=" + gen),
                            env={"PYTHONDONTWRITEBYTECODE": "1"})
        seen = 0
        for line in agent.lines():
            seen += resource_line(line)
            if seen == after:
                break
        if delay:
            time.sleep(delay)  # a kill point inside the next writes; nothing timed is asserted
        killed = agent.kill()
        code, out, err = agent.finish()
        TALLY["trials"] += 1
        if not killed or code != -9:
            check.problems.append("%s: the kill did not land (exit %s)\n%s%s"
                                  % (label, code, out[-500:], err[-500:]))
            continue
        TALLY["injected"] += 1
        run_id = check.killed_run(label, check.after_fault(label), known, start)
        if trial % 5 == 4 and run_id:
            check.rolled_back(label, run_id, start, converge("history", "--json"),
                              converge("rollback", run_id))
        if trial % 10 == 9:
            check.converged(label, gen, *apply(gen))
        if len(check.problems) == before:
            TALLY["survived"] += 1
    last = ("new", "old")[(TRIALS - 1) % 2]
    check.converged("final run", last, *apply(last))
    code, output = apply(last)
    assert code == 0, output
    assert output.count("(up to date)") == FILES + 1, output[-2000:]
    assert not check.problems, "\n".join(check.problems)


def converge_over_ssh(tmp_path: Path, recipe: Path, inventory: Path, gen: str
                      ) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "converge", "apply", str(recipe), "-i", str(inventory),
         "-a", "gen=" + gen], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"})


def test_kill_9_of_the_agent_over_ssh(lab: Lab, lab_node: Node, recipe: Path, versions: dict,
                                      tmp_path: Path) -> None:
    node = lab_node
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(json.dumps({"hosts": {node.name: {
        "address": node.address, "user": "root", "key": str(lab.key_path),
        "known_hosts": str(lab.known_hosts_path)}}}))
    check = Checker(node, versions)
    baseline = converge_over_ssh(tmp_path, recipe, inventory, "old")
    out, err = baseline.communicate(timeout=120)
    check.converged("ssh baseline", "old", baseline.returncode, out + err)
    assert not check.problems, check.problems
    rng = random.Random(SEED + 1)
    for trial in range(SSH_TRIALS):
        gen = ("new", "old")[trial % 2]
        after = rng.randint(1, FILES * 3 // 4)  # the controller prints behind its agent
        before = len(check.problems)
        for _attempt in range(3):
            label = "ssh trial %d (towards %s, kill after %d lines)" % (trial, gen, after)
            controller = converge_over_ssh(tmp_path, recipe, inventory, gen)
            assert controller.stdout is not None
            seen, killed = 0, []
            for line in controller.stdout:
                seen += resource_line(line)
                if seen == after:
                    killed = remote_agents(node)
                    for pid in killed:
                        os.kill(pid, 9)
                    break
            try:
                out, err = controller.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                controller.kill()
                controller.communicate()
                pytest.fail("%s: the controller hung after its agent was killed" % label)
            if controller.returncode != 0:
                break
            # The agent had finished before the controller printed that line (it
            # prints behind its agent, the more so on a busy machine; under --cov it
            # may still be saving its coverage data when killed): nothing was
            # injected. Put the files back and try again with an earlier line.
            TALLY["ssh_kills_too_late"] += 1
            back = converge_over_ssh(tmp_path, recipe, inventory, ("old", "new")[trial % 2])
            back_out, back_err = back.communicate(timeout=120)
            assert back.returncode == 0, back_out + back_err
            after = max(1, after // 4)
        TALLY["ssh_trials"] += 1
        if len(killed) != 1:
            check.problems.append("%s: expected one agent in the node, found %s"
                                  % (label, killed))
            continue
        TALLY["injected"] += 1
        if controller.returncode != 1 or "failed: connection lost mid-run" not in out:
            check.problems.append("%s: the controller did not report the host failed "
                                  "(exit %s):\n%s%s" % (label, controller.returncode,
                                                        out[-1500:], err[-500:]))
        check.after_fault(label)
        again = converge_over_ssh(tmp_path, recipe, inventory, gen)
        out, err = again.communicate(timeout=60)
        check.converged(label, gen, again.returncode, out + err)
        if len(check.problems) == before:
            TALLY["survived"] += 1
    assert not check.problems, "\n".join(check.problems)
