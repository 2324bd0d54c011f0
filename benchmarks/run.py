"""converge against Ansible, pyinfra and Puppet, on lab nodes: one command runs it all.

    python3 benchmarks/run.py                    (root; see benchmarks/README.md)
    python3 benchmarks/run.py --quick            (local + 1 node, 1 repetition, and a
                                                  10-node converge-only check)

On first use it sets up the peers without touching this machine's system: ansible-core
and pyinfra into a virtual environment under benchmarks/.peers/, Puppet (Debian's
`puppet`) into a lab layer that nodes mount read-only. Every measurement starts on
fresh lab nodes; each tool runs a workload twice (first run, then no-op run), and the
harness fails loudly when a second run changes anything, when a first run changes
nothing, or when the result on the node is not what the workload asks for. Prints the
tables and writes them as markdown (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import re
import shlex
import socket
import statistics
import subprocess
import sys
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from converge import __version__ as converge_version  # noqa: E402
from converge.lab import Lab, Node  # noqa: E402

PEERS = HERE / ".peers"
VENV = PEERS / "venv"
CONVERGE_VENV = PEERS / "converge-venv"  # converge's dependencies; converge from this checkout
CONVERGE_PY = CONVERGE_VENV / "bin" / "python"
CONVERGE_DEPENDENCIES = ("jinja2", "paramiko", "pyyaml", "typer")
WORK = PEERS / "work"
LAB_DIR = PEERS / "lab"
WORKLOADS = HERE / "workloads"
PEER_REQUIREMENTS = ["ansible-core==2.19.14", "pyinfra==3.10.0"]
PEER_LAYER = "peers"
PEER_PACKAGES = ["puppet"]
PACKAGE = "bench-tool"  # W1's package, built into the lab repository
TOOLS = ("converge", "ansible", "pyinfra", "puppet")
PEER_TOOLS = TOOLS[1:]
# "noop": the no-op run right after the first, as users run it by default (converge's
# warm connection, Ansible's ControlPersist); "cold": the same after every persisted
# connection was closed (pushed runs only: a local run has none)
PHASES = ("first", "noop", "cold")
PHASE_TITLES = {"first": "first run", "noop": "no-op run, warm (right after the first)",
                "cold": "no-op run, cold (no persisted connection)"}
PHASE_SHORT = {"first": "first", "noop": "no-op warm", "cold": "no-op cold"}
LOCAL = 0  # the "nodes" value of a local run

W1_CHECKS = [
    ("motd", '[ "$(cat /etc/motd)" = "Hello Tunnelix" ]'),
    ("20 config files", '[ "$(ls /etc/bench | wc -l)" = 20 ]'),
    ("config content", 'grep -qx "weight = 140" /etc/bench/w1-20.conf'),
    ("config mode", '[ "$(stat -c %a /etc/bench/w1-07.conf)" = 644 ]'),
    ("ip_forward", '[ "$(sysctl -n net.ipv4.ip_forward)" = 1 ]'),
    ("somaxconn", '[ "$(sysctl -n net.core.somaxconn)" = 1024 ]'),
    ("panic_on_oom", '[ "$(sysctl -n vm.panic_on_oom)" = 1 ]'),
    ("sysctl.d", "for k in net.ipv4.ip_forward net.core.somaxconn vm.panic_on_oom; do "
                 "grep -Eq \"^$k *= *[0-9]+$\" /etc/sysctl.d/60-bench.conf || exit 1; done"),
    ("cron.d", "grep -qxF '*/10 * * * * root /usr/lib/sysstat/sa1 1 1' /etc/cron.d/sysstat"),
    ("package", "dpkg -s %s >/dev/null 2>&1" % PACKAGE),
    ("sshd oom_score_adj", "n=0; for p in $(pgrep -f '[/]usr/sbin/sshd'); do n=1; "
                           "[ \"$(cat /proc/$p/oom_score_adj)\" = 0 ] || exit 1; done; [ $n = 1 ]"),
]
W2_CHECKS = [
    ("200 files", '[ "$(ls /etc/bench-w2 | wc -l)" = 200 ]'),
    ("content", 'grep -qx "port = 8137" /etc/bench-w2/worker-137.conf && '
                'grep -qx "name = worker-137" /etc/bench-w2/worker-137.conf'),
    ("mode", '[ "$(stat -c %a /etc/bench-w2/worker-200.conf)" = 644 ]'),
]
CHECKS = {"w1": W1_CHECKS, "w2": W2_CHECKS}


class BenchError(Exception):
    """A tool failed, or was not idempotent, or left the wrong state: stop loudly."""


class Run:
    """One timed run of one tool: wall seconds, whether it changed anything, output."""

    def __init__(self, seconds: float, changed: bool, output: str) -> None:
        self.seconds, self.changed, self.output = seconds, changed, output


def tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def timed(fn: Callable[[], subprocess.CompletedProcess]) -> Tuple[float, Any]:
    started = time.monotonic()
    done = fn()
    return time.monotonic() - started, done


def host_env(**extra: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "PYINFRA_"))}
    env.update({"LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"})
    env.update(extra)
    return env


# -- setting up the peers ---------------------------------------------------------------

def setup_venv(venv: Path, requirements: List[str]) -> None:
    """A virtual environment made with this interpreter, holding `requirements`."""
    stamp = venv / "bench-requirements.json"
    wanted = {"python": sys.base_prefix, "requirements": requirements}
    try:
        if json.loads(stamp.read_text()) == wanted:
            return
    except (OSError, ValueError):
        pass
    print("setting up %s in %s" % (", ".join(requirements), venv.relative_to(REPO)), flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
                    *requirements], check=True)
    stamp.write_text(json.dumps(wanted) + "\n")


def converge_requirements() -> List[str]:
    """converge's dependencies at the versions this interpreter has (those it is tested
    with): converge runs from a virtual environment like the Python peers."""
    from importlib.metadata import version

    return ["%s==%s" % (name, version(name)) for name in CONVERGE_DEPENDENCIES]


def setup(lab: Lab, tools: Sequence[str]) -> List[str]:
    """Peers, the lab layer and W1's package; returns the layers nodes need."""
    WORK.mkdir(parents=True, exist_ok=True)
    setup_venv(CONVERGE_VENV, converge_requirements())
    # Bytecode as an installed package has it (nodes see this checkout read-only, and
    # a missing or stale .pyc would be compiled again at every run).
    subprocess.run([str(CONVERGE_PY), "-m", "compileall", "-q", str(REPO / "converge")],
                   check=True)
    if set(tools) & {"ansible", "pyinfra"}:
        setup_venv(VENV, PEER_REQUIREMENTS)
    build_package(lab)
    if "puppet" in tools:
        if PEER_LAYER not in lab.layers():
            print("building the lab layer with Puppet (once; about a minute)", flush=True)
        lab.build_layer(PEER_LAYER, PEER_PACKAGES)
        return [PEER_LAYER]
    return []


def versions(lab: Lab, tools: Sequence[str], layers: List[str]) -> Dict[str, str]:
    found = {"converge": "converge " + converge_version}
    if "ansible" in tools:
        out = subprocess.run([str(VENV / "bin" / "ansible"), "--version"], capture_output=True,
                             text=True, env=host_env()).stdout
        found["ansible"] = out.splitlines()[0] if out else "?"
    if "pyinfra" in tools:
        out = subprocess.run([str(VENV / "bin" / "pyinfra"), "--version"], capture_output=True,
                             text=True, env=host_env()).stdout
        found["pyinfra"] = out.strip()
    if "puppet" in tools:
        node = lab.up(1, layers=layers)[0]
        try:
            found["puppet"] = "puppet " + node.run(["puppet", "--version"]).stdout.strip()
        finally:
            lab.down([node.name])
    return found


# -- nodes --------------------------------------------------------------------------------

def build_package(lab: Lab) -> None:
    """W1's package (PACKAGE) in the lab's repository."""
    lab.repo.build_deb(PACKAGE, "1.0-1", files={
        "/usr/share/%s/README" % PACKAGE: b"a small package from the lab repository\n"})


def fresh_nodes(lab: Lab, count: int, layers: List[str]) -> List[Node]:
    """New nodes, their apt lists read from the lab repository (untimed, for every tool)."""
    nodes = lab.up(count, layers=layers)

    def prepare(node: Node) -> None:
        done = node.run(["apt-get", "update", "-qq"], timeout=300)
        if done.returncode != 0:
            raise BenchError("apt-get update failed in %s: %s" % (node.name, done.stderr))

    try:
        with ThreadPoolExecutor(min(8, count)) as pool:
            list(pool.map(prepare, nodes))
    except BaseException:
        lab.down([n.name for n in nodes])
        raise
    return nodes


def verify(workload: str, node: Node, tool: str) -> None:
    script = "\n".join("( %s ) || echo %s" % (check, shlex.quote(name))
                       for name, check in CHECKS[workload])
    done = node.run(["sh", "-c", script])
    failed = done.stdout.split("\n")
    failed = [line for line in failed if line.strip()]
    if failed or done.returncode != 0:
        raise BenchError("%s %s left %s in the wrong state: %s %s"
                         % (tool, workload, node.name, ", ".join(failed), done.stderr))


# -- the tools ----------------------------------------------------------------------------

def workload_dir(workload: str) -> Path:
    return WORKLOADS / workload


def converge_local(node: Node, workload: str) -> Run:
    recipe = workload_dir(workload) / "converge_recipe.py"
    seconds, done = timed(lambda: node.run(
        [str(CONVERGE_PY), "-m", "converge", "apply", str(recipe), "--detailed-exitcode"],
        env={"PYTHONPATH": str(REPO)}, timeout=TIMEOUT))
    return _exit_coded("converge", done, seconds)


def converge_push(lab: Lab, nodes: List[Node], workload: str) -> Run:
    recipe = workload_dir(workload) / "converge_recipe.py"
    argv = [str(CONVERGE_PY), "-m", "converge", "apply", str(recipe), "-i",
            str(lab.inventory_path()), "--forks", str(len(nodes)), "--detailed-exitcode"]
    seconds, done = timed(lambda: subprocess.run(
        argv, capture_output=True, text=True, cwd=WORK, timeout=TIMEOUT,
        env=host_env(PYTHONPATH=str(REPO))))
    return _exit_coded("converge", done, seconds)


def _exit_coded(tool: str, done: subprocess.CompletedProcess, seconds: float) -> Run:
    """converge --detailed-exitcode and puppet --detailed-exitcodes: 0 same, 2 changed."""
    output = done.stdout + done.stderr
    if done.returncode not in (0, 2):
        raise BenchError("%s failed (exit %d):\n%s" % (tool, done.returncode, tail(output)))
    return Run(seconds, done.returncode == 2, output)


ANSIBLE_CFG = """\
[defaults]
forks = {forks}
host_key_checking = True
retry_files_enabled = False
interpreter_python = /usr/bin/python3
nocows = True

[ssh_connection]
pipelining = True
ssh_common_args = -F /dev/null -o UserKnownHostsFile={known_hosts} \
-o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes
control_path_dir = {work}/cp
"""
ANSIBLE_RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+"
                           r"failed=(\d+)", re.M)


def ansible_local(node: Node, workload: str) -> Run:
    cfg = WORK / "ansible-local.cfg"
    cfg.write_text(ANSIBLE_CFG.format(forks=1, known_hosts="/dev/null", work="/tmp"))
    argv = [str(VENV / "bin" / "ansible-playbook"), "-i", "localhost,", "-c", "local",
            str(workload_dir(workload) / "playbook.yml")]
    seconds, done = timed(lambda: node.run(argv, timeout=TIMEOUT, env={
        "ANSIBLE_CONFIG": str(cfg), "ANSIBLE_NOCOLOR": "1", "LC_ALL": "C.UTF-8"}))
    return _ansible_result(done, seconds, 1)


def ansible_push(lab: Lab, nodes: List[Node], workload: str) -> Run:
    cfg = WORK / "ansible-push.cfg"
    cfg.write_text(ANSIBLE_CFG.format(forks=len(nodes), known_hosts=lab.known_hosts_path,
                                      work=WORK))
    inventory = WORK / "ansible-inventory.ini"
    inventory.write_text(
        "[nodes]\n" + "".join("%s ansible_host=%s\n" % (n.name, n.address) for n in nodes)
        + "[nodes:vars]\nansible_user=root\nansible_ssh_private_key_file=%s\n" % lab.key_path)
    argv = [str(VENV / "bin" / "ansible-playbook"), "-i", str(inventory), "-f", str(len(nodes)),
            str(workload_dir(workload) / "playbook.yml")]
    env = host_env(ANSIBLE_CONFIG=str(cfg), ANSIBLE_NOCOLOR="1",
                   ANSIBLE_HOME=str(WORK / "ansible-home"),
                   ANSIBLE_LOCAL_TEMP=str(WORK / "ansible-home" / "tmp"))
    seconds, done = timed(lambda: subprocess.run(argv, capture_output=True, text=True, cwd=WORK,
                                                 env=env, timeout=TIMEOUT))
    return _ansible_result(done, seconds, len(nodes))


def _ansible_result(done: subprocess.CompletedProcess, seconds: float, hosts: int) -> Run:
    output = done.stdout + done.stderr
    recap = ANSIBLE_RECAP.findall(done.stdout)
    bad = [r for r in recap if int(r[3]) or int(r[4])]
    if done.returncode != 0 or len(recap) != hosts or bad:
        raise BenchError("ansible-playbook failed (exit %d, %d of %d hosts in the recap):\n%s"
                         % (done.returncode, len(recap), hosts, tail(output)))
    return Run(seconds, any(int(r[2]) for r in recap), output)


PYINFRA_TOTAL = re.compile(r"Grand total\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)")


def pyinfra_local(node: Node, workload: str) -> Run:
    argv = [str(VENV / "bin" / "pyinfra"), "@local",
            str(workload_dir(workload) / "pyinfra_deploy.py"), "-y"]
    seconds, done = timed(lambda: node.run(argv, timeout=TIMEOUT, env={"LC_ALL": "C.UTF-8"}))
    return _pyinfra_result(done, seconds)


def pyinfra_push(lab: Lab, nodes: List[Node], workload: str) -> Run:
    data = {"ssh_user": "root", "ssh_key": str(lab.key_path),
            "ssh_known_hosts_file": str(lab.known_hosts_path),
            "ssh_strict_host_key_checking": "yes"}
    inventory = WORK / "pyinfra_inventory.py"
    inventory.write_text("nodes = %r\n" % [(n.address, data) for n in nodes])
    argv = [str(VENV / "bin" / "pyinfra"), str(inventory),
            str(workload_dir(workload) / "pyinfra_deploy.py"), "-y",
            "--parallel", str(len(nodes))]
    seconds, done = timed(lambda: subprocess.run(argv, capture_output=True, text=True, cwd=WORK,
                                                 env=host_env(), timeout=TIMEOUT))
    return _pyinfra_result(done, seconds)


def _pyinfra_result(done: subprocess.CompletedProcess, seconds: float) -> Run:
    """pyinfra's results table: Grand total, hosts, success (= changed), error, no change."""
    output = done.stdout + done.stderr
    total = PYINFRA_TOTAL.search(output)
    if done.returncode != 0 or not total or total.group(3) != "-":
        raise BenchError("pyinfra failed (exit %d):\n%s" % (done.returncode, tail(output)))
    return Run(seconds, total.group(2) != "-", output)


def puppet_command(directory: str) -> List[str]:
    return ["puppet", "apply", "--detailed-exitcodes", "--color=false",
            "--modulepath", directory + "/modules", directory + "/manifest.pp"]


def puppet_local(node: Node, workload: str) -> Run:
    argv = puppet_command(str(workload_dir(workload)))
    seconds, done = timed(lambda: node.run(argv, timeout=TIMEOUT))
    return _exit_coded("puppet", done, seconds)


def puppet_push(lab: Lab, nodes: List[Node], workload: str) -> Run:
    """Puppet has no push: copy the manifest and run `puppet apply` over SSH on every
    node at once (one OpenSSH connection each)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(str(workload_dir(workload)), arcname=".")
    bundle = buffer.getvalue()
    remote = "/tmp/bench-puppet"
    command = "rm -rf %s && mkdir -p %s && tar -x -C %s && %s" % (
        remote, remote, remote, " ".join(puppet_command(remote)))

    def one(node: Node) -> subprocess.CompletedProcess:
        return subprocess.run(lab.ssh_command(node, [command]), input=bundle,
                              capture_output=True, timeout=TIMEOUT)

    def all_nodes() -> List[subprocess.CompletedProcess]:
        with ThreadPoolExecutor(len(nodes)) as pool:
            return list(pool.map(one, nodes))

    started = time.monotonic()
    results = all_nodes()
    seconds = time.monotonic() - started
    output = "".join((r.stdout + r.stderr).decode(errors="replace") for r in results)
    failed = [(n.name, r.returncode) for n, r in zip(nodes, results, strict=True)
              if r.returncode not in (0, 2)]
    if failed:
        raise BenchError("puppet apply failed on %s:\n%s" % (failed, tail(output)))
    return Run(seconds, any(r.returncode == 2 for r in results), output)


LOCAL_RUNNERS = {"converge": converge_local, "ansible": ansible_local,
                 "pyinfra": pyinfra_local, "puppet": puppet_local}
PUSH_RUNNERS = {"converge": converge_push, "ansible": ansible_push,
                "pyinfra": pyinfra_push, "puppet": puppet_push}
TIMEOUT = 3600.0


def floor(lab: Lab, nodes: List[Node], workers: Optional[int] = None) -> float:
    """Parallel paramiko connections running `python3 -c pass`, one thread per node
    (or ``workers`` at a time, as converge's --forks)."""
    import paramiko

    key = paramiko.PKey.from_path(str(lab.key_path))
    known = paramiko.HostKeys()

    def one(node: Node) -> None:
        sock = socket.create_connection((node.address, 22))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client = paramiko.SSHClient()
        found = known.lookup(node.address) or {}
        for kind in found:  # the node's own key only: checking it against the whole
            client.get_host_keys().add(node.address, kind, found[kind])  # file is O(nodes)
        client.connect(node.address, username="root", pkey=key, sock=sock,
                       allow_agent=False, look_for_keys=False)
        _, out, _ = client.exec_command("python3 -c pass")
        if out.channel.recv_exit_status() != 0:
            raise BenchError("python3 -c pass failed on %s" % node.name)
        client.close()

    started = time.monotonic()
    known.load(str(lab.known_hosts_path))  # once (a line per node), as converge does
    with ThreadPoolExecutor(workers or len(nodes)) as pool:
        list(pool.map(one, nodes))
    return time.monotonic() - started


# -- one measurement ----------------------------------------------------------------------

Results = Dict[Tuple[str, int, str, str], List[float]]


def measure(lab: Lab, layers: List[str], workload: str, count: int, tool: str,
            results: Results, floors: Dict[int, List[float]], with_floor: bool) -> None:
    """Fresh nodes; the tool's first run and no-op run; checks; nodes down."""
    nodes = fresh_nodes(lab, max(count, 1), layers)
    try:
        if with_floor and count:
            floors.setdefault(count, []).append(floor(lab, nodes))
        runs = []
        for phase in PHASES:
            if count == LOCAL:
                if phase != "cold":
                    runs.append(LOCAL_RUNNERS[tool](nodes[0], workload))
                continue
            if phase == "cold":
                drop_connections(tool)
            runs.append(PUSH_RUNNERS[tool](lab, nodes, workload))
        first, noop = runs[:2]
        where = "locally" if count == LOCAL else "on %d node(s)" % count
        if not first.changed:
            raise BenchError("%s %s %s: the first run changed nothing (nodes not fresh?):\n%s"
                             % (tool, workload, where, tail(first.output)))
        for again in runs[1:]:
            if again.changed:
                raise BenchError("%s %s %s is not idempotent: a no-op run changed something:"
                                 "\n%s" % (tool, workload, where, tail(again.output, 60)))
        for node in {nodes[0], nodes[-1]}:
            verify(workload, node, tool)
    finally:
        lab.down([n.name for n in nodes])
    for phase, run in zip(PHASES, runs, strict=False):
        results.setdefault((workload, count, tool, phase), []).append(run.seconds)
    print("  %-8s %-3s %-6s first %7.2fs  no-op %7.2fs%s"
          % (tool, workload, "local" if count == LOCAL else "%d" % count,
             first.seconds, noop.seconds,
             "  cold %7.2fs" % runs[2].seconds if len(runs) > 2 else ""), flush=True)


def drop_connections(tool: str) -> None:
    """Close what the tool keeps open between runs, so that its next run is cold:
    converge's warm connections (converge disconnect), Ansible's ControlPersist
    masters (ssh -O exit); pyinfra and Puppet keep nothing."""
    if tool == "converge":
        subprocess.run([str(CONVERGE_PY), "-m", "converge", "disconnect"], check=True,
                       capture_output=True, env=host_env(PYTHONPATH=str(REPO)))
    elif tool == "ansible":
        for path in sorted((WORK / "cp").glob("*")) if (WORK / "cp").is_dir() else []:
            subprocess.run(["ssh", "-F", "/dev/null", "-O", "exit", "-o",
                            "ControlPath=%s" % path, "node"], capture_output=True)


def cases(args: argparse.Namespace) -> List[Tuple[str, int, List[str]]]:
    """(workload, nodes, tools) to measure, in order; nodes 0 is a local run."""
    todo = []
    for workload in args.workloads:
        scales = ([LOCAL] if args.local else []) + args.nodes
        for count in scales:
            limit = args.ansible_max_nodes if workload == "w1" else args.ansible_w2_max_nodes
            tools = [t for t in args.tools if t != "ansible" or count <= limit]
            todo.append((workload, count, tools))
        if args.quick and "converge" in args.tools:
            todo.append((workload, 10, ["converge"]))
    return todo


# -- reporting ----------------------------------------------------------------------------

def cell(samples: Optional[List[float]]) -> str:
    if not samples:
        return "–"
    med = statistics.median(samples)
    if len(samples) == 1:
        return "%.2f" % med
    return "%.2f (%.2f–%.2f)" % (med, min(samples), max(samples))


def med(samples: Optional[List[float]]) -> Optional[float]:
    return statistics.median(samples) if samples else None


def scale_name(count: int) -> str:
    return "local" if count == LOCAL else str(count)


def report(results: Results, floors: Dict[int, List[float]], args: argparse.Namespace,
           found: Dict[str, str], elapsed: float) -> str:
    workloads = sorted({k[0] for k in results})
    scales = sorted({k[1] for k in results})
    tools = [t for t in TOOLS if any(k[2] == t for k in results)]
    out = ["# Benchmark results%s" % (" (--quick: one repetition, noisy)" if args.quick else ""),
           "",
           "Wall seconds, median (min–max) of %d repetition(s) on fresh lab nodes; "
           "`python3 benchmarks/run.py %s`; %s, %d CPUs, Linux %s; total %.0f s."
           % (args.reps, " ".join(args.argv), time.strftime("%Y-%m-%d %H:%M"),
              os.cpu_count() or 0, platform.release(), elapsed),
           "", "Versions: " + "; ".join("%s" % v for v in found.values()), ""]
    for workload in workloads:
        for phase, title in PHASE_TITLES.items():
            if not any(k[0] == workload and k[3] == phase for k in results):
                continue
            out += ["## %s %s" % (workload.upper(), title), "",
                    "| nodes | floor | " + " | ".join(tools) + " |",
                    "|---|---|" + "---|" * len(tools)]
            for count in scales:
                if not any(k[0] == workload and k[1] == count and k[3] == phase
                           for k in results):
                    continue
                row = [scale_name(count), cell(floors.get(count)) if count else "–"]
                row += [cell(results.get((workload, count, t, phase))) for t in tools]
                out.append("| " + " | ".join(row) + " |")
            out.append("")
    peers = [t for t in tools if t != "converge"]
    out += ["## Ratios (medians)", "",
            "peer/converge: how many times longer the peer took; converge/floor: converge's "
            "time over parallel `ssh NODE python3 -c pass`.", "",
            "| workload | nodes | run | " + " | ".join("%s/converge" % p for p in peers)
            + " | fastest peer/converge | converge/floor |",
            "|---|---|---|" + "---|" * (len(peers) + 2)]
    for workload in workloads:
        for count in scales:
            for phase in PHASES:
                ours = med(results.get((workload, count, "converge", phase)))
                if ours is None:
                    continue
                times = {p: med(results.get((workload, count, p, phase))) for p in peers}
                ratios = ["%.1fx" % (t / ours) if t else "–" for t in times.values()]
                known = [t for t in times.values() if t]
                fastest = "%.1fx" % (min(known) / ours) if known else "–"
                fl = med(floors.get(count)) if count else None
                out.append("| %s | %s | %s | %s | %s | %s |" % (
                    workload.upper(), scale_name(count), PHASE_SHORT[phase],
                    " | ".join(ratios), fastest, "%.2fx" % (ours / fl) if fl else "–"))
    out += ["", "## Targets", ""] + ["- " + line for line in targets(results, floors)]
    return "\n".join(out) + "\n"


def targets(results: Results, floors: Dict[int, List[float]]) -> List[str]:
    lines = []

    def verdict(ok: bool) -> str:
        return "**met**" if ok else "**NOT met**"

    for (workload, count, tool, phase) in sorted(results):
        if tool != "converge":
            continue
        ours = med(results[(workload, count, tool, phase)])
        peers = [med(results.get((workload, count, p, phase))) for p in PEER_TOOLS]
        known = [p for p in peers if p]
        if not known or not ours:
            continue
        if phase == "cold":
            continue  # peers are compared warm, as their users run them
        need = 10 if phase == "noop" else 5
        ratio = min(known) / ours
        lines.append("%s %s %s: converge %.2fs, fastest peer %.2fs: %.1fx (want >= %dx) %s"
                     % (workload.upper(), scale_name(count), PHASE_SHORT[phase], ours,
                        min(known), ratio, need, verdict(ratio >= need)))
    warm1 = med(results.get(("w1", 1, "converge", "noop")))
    if warm1:
        lines.append("W1 no-op warm push to 1 node: %.3fs (want <= 0.15s) %s"
                     % (warm1, verdict(warm1 <= 0.15)))
    for workload in ("w1", "w2"):
        cold1, floor1 = med(results.get((workload, 1, "converge", "cold"))), med(floors.get(1))
        if cold1 and floor1:
            lines.append("%s no-op cold push to 1 node: %.2fs, floor %.2fs: %.2fx (want <= "
                         "1.2x) %s" % (workload.upper(), cold1, floor1, cold1 / floor1,
                                       verdict(cold1 <= 1.2 * floor1)))
    noop30 = med(results.get(("w1", 30, "converge", "cold")))
    floor30 = med(floors.get(30))
    if noop30 and floor30:
        lines.append("W1 no-op cold push to 30 nodes: %.2fs, floor %.2fs: %.2fx (want <= 2x) %s"
                     % (noop30, floor30, noop30 / floor30, verdict(noop30 <= 2 * floor30)))
    for workload in ("w1", "w2"):
        for phase in PHASES:
            t10 = med(results.get((workload, 10, "converge", phase)))
            t30 = med(results.get((workload, 30, "converge", phase)))
            f10, f30 = med(floors.get(10)), med(floors.get(30))
            if t10 and t30 and f10 and f30:
                lines.append(
                    "%s %s, 10 -> 30 nodes: converge +%.2fs (x%.2f), floor +%.2fs (x%.2f) %s"
                    % (workload.upper(), PHASE_SHORT[phase],
                       t30 - t10, t30 / t10, f30 - f10, f30 / f10, verdict(t30 - t10 <= f30 - f10)))
    for phase in PHASES:
        w1 = med(results.get(("w1", LOCAL, "converge", phase)))
        w2 = med(results.get(("w2", LOCAL, "converge", phase)))
        if w1 and w2:
            lines.append("W1 -> W2 local %s: x%.2f (want < 3x) %s"
                         % (PHASE_SHORT[phase], w2 / w1,
                            verdict(w2 / w1 < 3)))
    return lines


# -- main ---------------------------------------------------------------------------------

def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tools", default=",".join(TOOLS),
                        help="comma-separated, from %s (default: all)" % ",".join(TOOLS))
    parser.add_argument("--workloads", default="w1,w2", help="w1, w2 or both (default)")
    parser.add_argument("--nodes", default="1,10,30", help="push sizes (default 1,10,30)")
    parser.add_argument("--no-local", dest="local", action="store_false",
                        help="skip the local runs on one node")
    parser.add_argument("--reps", type=int, default=3, help="repetitions (default 3)")
    parser.add_argument("--ansible-max-nodes", type=int, default=10,
                        help="largest push Ansible runs W1 on (default 10: 30 takes minutes)")
    parser.add_argument("--ansible-w2-max-nodes", type=int, default=1,
                        help="largest push Ansible runs W2 on (default 1)")
    parser.add_argument("--quick", action="store_true",
                        help="local and 1 node, one repetition, plus 10 nodes converge-only")
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"),
                        help="markdown file to write (default benchmarks/RESULTS.md)")
    parser.add_argument("--timeout", type=float, default=TIMEOUT,
                        help="seconds one run may take (default 3600)")
    args = parser.parse_args(argv)
    args.argv = list(argv)
    args.tools = [t for t in args.tools.split(",") if t]
    args.workloads = [w for w in args.workloads.split(",") if w]
    args.nodes = [int(n) for n in args.nodes.split(",") if n]
    for tool in args.tools:
        if tool not in TOOLS:
            parser.error("unknown tool %r" % tool)
    for workload in args.workloads:
        if workload not in CHECKS:
            parser.error("unknown workload %r" % workload)
    if args.quick:
        args.reps, args.nodes = 1, [1]
    return args


def main(argv: Sequence[str]) -> int:
    global TIMEOUT
    args = parse(argv)
    TIMEOUT = args.timeout
    if os.geteuid() != 0:
        print("benchmarks/run.py needs root (lab nodes)", file=sys.stderr)
        return 1
    started = time.monotonic()
    lab = Lab(LAB_DIR)
    if lab.nodes():
        lab.down()  # a run that was interrupted
    layers = setup(lab, args.tools)
    found = versions(lab, args.tools, layers)
    print("versions: " + "; ".join(found.values()), flush=True)
    results: Results = {}
    floors: Dict[int, List[float]] = {}
    try:
        for workload, count, tools in cases(args):
            print("%s, %s:" % (workload.upper(), "local" if count == LOCAL
                               else "pushed to %d node(s)" % count), flush=True)
            for _rep in range(args.reps):
                for index, tool in enumerate(tools):
                    measure(lab, layers, workload, count, tool, results, floors,
                            with_floor=(index == 0))
    except BenchError as exc:
        print("\nFAILED: %s" % exc, file=sys.stderr)
        return 1
    finally:
        if lab.nodes():
            lab.down()
    text = report(results, floors, args, found, time.monotonic() - started)
    print()
    print(text)
    Path(args.output).write_text(text)
    print("written to %s" % args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
