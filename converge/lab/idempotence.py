"""Prove a recipe idempotent in lab nodes: apply, apply again, nothing may change.

Each run is `python3 -m converge apply RECIPE --json FILE` inside the node (the
host's interpreter and this converge, read-only there). A node started from a lab
image runs its release's own python3, which need not run converge's command line:
there the recipe is pushed over SSH (`converge apply -i`), as to any server, and its
agent runs on the image's python3. The JSON report says, resource by resource, what
the second run changed.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from converge.errors import printable
from converge.lab.errors import LabError
from converge.lab.lab import Lab
from converge.lab.node import LAB_LIMITS, Node

WORKDIR = "/tmp/converge-test"
RUN_DIR = "/root"  # the working directory of each run in a node
CHANGED = "updated"


@dataclass
class ApplyRun:
    """One `converge apply` inside a node: its exit code, output and JSON report."""

    returncode: int
    stdout: str
    stderr: str
    report: dict[str, Any] = field(default_factory=dict)

    def resources(self) -> list[dict[str, Any]]:
        return [res for host in self.report.get("hosts", {}).values()
                for res in host.get("resources", [])]

    def with_status(self, status: str) -> list[dict[str, Any]]:
        return [res for res in self.resources() if res.get("status") == status]

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and bool(self.report) and not self.with_status("failed")


@dataclass
class IdempotenceResult:
    """Both runs of a recipe on one node, the services found not running after them
    (``{service: what its status command said}``), and the verdict."""

    node: str
    recipe: str
    first: ApplyRun
    second: ApplyRun
    not_running: dict[str, str] = field(default_factory=dict)

    @property
    def not_idempotent(self) -> list[dict[str, Any]]:
        """Resources the second run changed."""
        return self.second.with_status(CHANGED)

    @property
    def ok(self) -> bool:
        return (self.first.ok and self.second.ok and not self.not_idempotent
                and not self.not_running)

    def verdict(self) -> str:
        lines = [self._verdict()]
        for service, said in self.not_running.items():
            lines.append(f"{self.node}: service[{service}] is not running after the runs "
                         f"(`service {service} status`: {said})")
        for service in sorted(self.lab_limited()):
            lines.append(f"{self.node}: service[{service}]: a lab node cannot give {service} "
                         f"what it needs: {LAB_LIMITS[service]}")
        return "\n".join(lines)

    def lab_limited(self) -> set[str]:
        """Services of the recipe that cannot run in a lab node (see LAB_LIMITS), when
        the test did not pass."""
        if self.ok:
            return set()
        ids = {res["id"] for run in (self.first, self.second) for res in run.resources()}
        return {name for name in LAB_LIMITS if f"service[{name}]" in ids}

    def _verdict(self) -> str:
        if not self.first.ok:
            return f"{self.node}: the first run failed"
        if not self.second.ok:
            return f"{self.node}: the second run failed"
        if self.not_idempotent:
            lines = [f"{self.node}: not idempotent: the second run changed "
                     f"{len(self.not_idempotent)} resource(s):"]
            for res in self.not_idempotent:
                lines.append(f"  - {res['id']}")
                lines += [f"      {change}" for change in res.get("changes", [])]
            return "\n".join(lines)
        if self.not_running:
            return f"{self.node}: the runs passed, but a service they start is not running"
        return f"{self.node}: idempotent: the second run changed nothing"

    def describe(self) -> str:
        """Both runs' output, then the verdict."""
        parts = []
        for label, run in (("first run", self.first), ("second run", self.second)):
            parts.append(f"--- {self.node}: {label} (exit {run.returncode}) ---")
            parts.append(run.stdout.rstrip())
            if run.stderr.strip():
                parts.append(run.stderr.rstrip())
        parts.append(self.verdict())
        return "\n".join(parts)


def recipe_packages(recipe: str | Path, args: Sequence[str] = ()) -> list[str]:
    """Names of the packages the recipe's `package` resources install (compiled with the
    attributes and cookbook folders of ``args``, `converge apply` arguments)."""
    from converge.recipe import compile_recipe, parse_assignments

    given: dict[str, list[str]] = {"-a": [], "--attr": [], "-C": [], "--cookbook-path": []}
    for flag, value in zip(args, args[1:], strict=False):
        given.get(flag, []).append(value)
    plan = compile_recipe(Path(recipe), attrs=parse_assignments(given["-a"] + given["--attr"]),
                          cookbook_path=given["-C"] + given["--cookbook-path"])
    names: list[str] = []
    for step in plan.steps:
        if step.type != "package":
            continue
        value = (step.props.get("package_name") or step.props.get("name")
                 or step.id.split("[", 1)[1].rstrip("]"))
        for name in [value] if isinstance(value, str) else list(value):
            names += str(name).replace(",", " ").split()
    return sorted(set(names))


def place_recipe(node: Node, recipe: str | Path) -> str:
    """The recipe's path inside the node: the host path when the node sees it, else a copy."""
    path = Path(recipe).absolute()
    if not path.exists():
        raise LabError(f"recipe {recipe} not found")
    if node.run(["test", "-e", str(path)]).returncode == 0:
        return str(path)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(path, arcname=path.name)
    target = f"{WORKDIR}/recipe"
    done = node.run(["sh", "-c", 'mkdir -p "$1" && tar -x -C "$1" -f -', "sh", target],
                    input=buffer.getvalue(), text=False)
    if done.returncode != 0:
        raise LabError(f"cannot copy {recipe} into {node.name}: {done.stderr.decode().strip()}")
    return f"{target}/{path.name}"


def place_args(node: Node, args: Sequence[str]) -> list[str]:
    """`converge apply` arguments for a run in the node: each cookbook folder (-C) at a
    path the node sees (copied in when it does not see the host's)."""
    placed = list(args)
    for index, arg in enumerate(placed[:-1]):
        if arg in ("-C", "--cookbook-path"):
            placed[index + 1] = place_recipe(node, placed[index + 1])
    return placed


def apply_in_node(node: Node, recipe: str, report: str, args: Sequence[str] = (),
                  timeout: float | None = 600) -> ApplyRun:
    """Run `converge apply` inside the node, as root in root's home (/root, where a
    login would start: the recipe's relative paths land there), and read its JSON report."""
    argv = ["env", f"--chdir={RUN_DIR}", sys.executable, "-m", "converge", "apply", recipe,
            "--json", report, *args]
    done = node.run(argv, env={"PYTHONDONTWRITEBYTECODE": "1"}, timeout=timeout)
    try:
        data = json.loads(node.read_file(report))
    except (FileNotFoundError, ValueError):
        data = {}
    return ApplyRun(done.returncode, done.stdout, done.stderr, data)


def push_to_node(lab: Lab, node: Node, recipe: str | Path, report: Path,
                 args: Sequence[str] = (), timeout: float | None = 600) -> ApplyRun:
    """`converge apply -i` from this machine to the node over SSH (its agent on the
    node's python3), with a run store and state directory beside ``report``, never
    this machine's own; connecting afresh (--no-persist): a test keeps nothing open."""
    work = report.parent
    inventory = work / f"{node.name}.yml"
    lab.write_inventory(inventory, [node])
    argv = [sys.executable, "-m", "converge", "apply", str(Path(recipe).absolute()),
            "-i", str(inventory), "--json", str(report),
            "--store", f"sqlite:///{work / 'runs.db'}", "--no-persist", *args]
    env = {**os.environ, "CONVERGE_STATE_DIR": str(work / "state"),
           "PYTHONDONTWRITEBYTECODE": "1"}
    report.unlink(missing_ok=True)
    done = subprocess.run(argv, capture_output=True, text=True, errors="replace", env=env,
                          timeout=timeout, cwd=str(work))
    try:
        data = json.loads(report.read_text())
    except (FileNotFoundError, ValueError):
        data = {}
    return ApplyRun(done.returncode, done.stdout, done.stderr, data)


def check_idempotence(node: Node, recipe: str | Path,
                      args: Sequence[str] = (), lab: Lab | None = None) -> IdempotenceResult:
    """Apply the recipe twice in the node; the result says what the second run changed.

    The node's apt reads the lab repository's index as it is (no `apt-get update`).
    A node from an image is reached over SSH (``lab``: the lab it runs in)."""
    if node.image:
        with tempfile.TemporaryDirectory(prefix="converge-test-") as work:
            runs = [push_to_node(lab or Lab(), node, recipe, Path(work) / f"{label}.json", args)
                    for label in ("first", "second")]
        return IdempotenceResult(node.name, str(recipe), runs[0], runs[1],
                                 services_not_running(node, runs))
    inside = place_recipe(node, recipe)
    args = place_args(node, args)
    node.run(["mkdir", "-p", WORKDIR])
    first = apply_in_node(node, inside, f"{WORKDIR}/first.json", args)
    second = apply_in_node(node, inside, f"{WORKDIR}/second.json", args)
    return IdempotenceResult(node.name, str(recipe), first, second,
                             services_not_running(node, [first, second]))


def services_not_running(node: Node, runs: Sequence[ApplyRun]) -> dict[str, str]:
    """Services the runs started or restarted (not skipped) whose status says they do
    not run: a daemon that dies at start is no converged service, whatever its init
    script's exit code said."""
    wanted = sorted({res["id"][len("service["):-1] for run in runs for res in run.resources()
                     if res.get("type") == "service" and res.get("status") != "skipped"
                     and res.get("action") in ("start", "restart")})
    found = {}
    for name in wanted:
        done = node.run(["service", name, "status"], timeout=60)
        if done.returncode != 0:
            said = " | ".join(line.strip() for line in (done.stdout + done.stderr).splitlines()
                              if line.strip())[-300:]
            found[name] = printable(f"exit {done.returncode}: {said or '(nothing)'}")
    return found


def assert_idempotent(node: Node, recipe: str | Path,
                      args: Sequence[str] = ()) -> IdempotenceResult:
    """check_idempotence, failing with both runs' output unless all is well."""
    result = check_idempotence(node, recipe, args)
    if not result.ok:
        raise AssertionError(result.describe())
    return result


def mirror_for(lab: Lab, packages: Iterable[str], image: str | None = None) -> list[str]:
    """Mirror the packages the lab repository (or the image's) does not hold yet;
    return their names."""
    repo = lab.images.repo(image) if image else lab.repo
    have = repo.names()
    wanted = [name for name in packages if name not in have]
    repo.mirror(wanted)
    return wanted


def write_report(results: list[IdempotenceResult], json_file: str) -> None:
    """`converge test --json FILE`: each node's verdict and both runs' JSON reports."""
    data = {"ok": all(result.ok for result in results),
            "nodes": {result.node: {"idempotent": result.ok, "verdict": result.verdict(),
                                    "first": result.first.report,
                                    "second": result.second.report}
                      for result in results}}
    text = json.dumps(data, indent=2) + "\n"
    if json_file == "-":
        sys.stdout.write(text)
    else:
        Path(json_file).write_text(text)


def run_test(recipe: str | Path, nodes: int = 1, keep: bool = False, lab: Lab | None = None,
             args: Sequence[str] = (), echo: Callable[[str], None] = print,
             json_file: str | None = None, images: Sequence[str] = ()) -> int:
    """`converge test`: fresh nodes in a private lab of its own (sharing ``lab``'s apt
    repository, never its nodes), the recipe's packages mirrored, apply twice; exit code.

    With ``images`` (debian-11, debian-12...): ``nodes`` nodes from each image instead
    (each image built first if it is not), and a table of the results, image by image.
    The private lab is removed afterwards (unless ``keep``), also when SIGINT or SIGTERM
    interrupts the test."""
    parent = lab or Lab()
    for image in images:
        parent.images.check_name(image)
    packages = recipe_packages(recipe, args)
    for image in images:
        parent.images.ensure(image, echo=echo)
    chosen: list[str | None] = [*images] or [None]  # None: this machine's root
    for each in chosen:
        fetched = mirror_for(parent, packages, each) if packages else []
        if fetched:
            where = f"image {each}'s" if each else "the lab"
            echo(f"mirrored {' '.join(fetched)} (and what they need) into {where} repository")
    parent.reap_private()  # those of `converge test` runs killed outright
    private = parent.private()
    started: list[Node] = []
    with _terminate_as_interrupt():
        try:
            with _signals_deferred():
                for each in chosen:
                    started += private.up(nodes, image=each, echo=echo)
            echo(f"nodes up: {', '.join(f'{n.name} ({n.address})' for n in started)}")
            results = [check_idempotence(node, recipe, args, private) for node in started]
        finally:
            with _signals_deferred():
                if keep and started:
                    echo(f"kept: converge lab ssh {private.label}{started[0].name}; "
                         f"remove with: converge lab down {private.label}".rstrip())
                else:
                    private.destroy()
    for result in results:
        echo(result.describe())
    if images:
        echo(matrix(started, results))
    if json_file:
        write_report(results, json_file)
    return 0 if all(result.ok for result in results) else 1


def matrix(nodes: Sequence[Node], results: Sequence[IdempotenceResult]) -> str:
    """The results as a table, a node (and its image) a line."""
    rows = [("IMAGE", "NODE", "RESULT")]
    for node, result in zip(nodes, results, strict=True):
        verdict = result.verdict().splitlines()[0].split(": ", 1)[-1]
        rows.append((node.image or "(this machine)", node.name,
                     ("ok: " if result.ok else "FAILED: ") + verdict))
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    return "\n".join(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]}"
                     for row in rows)


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block ends (a lab's record and its nodes stay in
    step); they are delivered then."""
    deferred = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, deferred)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM ends the block as Ctrl-C does (KeyboardInterrupt), so cleanup runs."""
    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        old = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
