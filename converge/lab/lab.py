"""Lab: bring throwaway nodes up, find them again from another process, take them down."""

from __future__ import annotations

import base64
import fcntl
import ipaddress
import json
import os
import re
import resource
import select
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import converge
from converge.lab import _coverage, net
from converge.lab._files import atomic_write, read_json
from converge.lab.errors import LabError
from converge.lab.images import Images
from converge.lab.node import DROPPED_CAPS, IMAGE_PYTHONPATH, NODE_ENV, Node, process_start
from converge.lab.repo import LIST_FILE, LISTS_DIR, SOURCES_LINE, LocalRepo
from converge.lab.repo import NODE_PATH as REPO_NODE_PATH

DEFAULT_DIRECTORY = "/run/converge-lab"
SSHD = "/usr/sbin/sshd"
READY_TIMEOUT = 30.0
DOWN_TIMEOUT = 15.0
# Open files that starting nodes takes, in this process and the spawner each: per
# node, an ssh-keygen's pipe then a probe of its sshd here, its go pipe there; and
# what the process holds besides.
FILES_PER_NODE = 2
RESERVED_FILES = 64
OOM_SCORE_ADJ = 500
SPAWNER = Path(__file__).with_name("_spawn.py")
# converge's package, which a node from an image sees read-only at SOURCE_TARGET (its
# PYTHONPATH there: see node.IMAGE_PYTHONPATH), to run with the image's own python3.
SOURCE = Path(converge.__file__).resolve().parent
SOURCE_TARGET = IMAGE_PYTHONPATH + "/converge"
TOOLS = {"ip": "iproute2", "ssh-keygen": "openssh-client", "nsenter": "util-linux",
         "setpriv": "util-linux"}

SSHD_CONFIG = """\
# converge lab node: key-only root login, no PAM, host key below
Port 22
ListenAddress 0.0.0.0
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PubkeyAuthentication yes
AuthorizedKeysFile .ssh/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
PrintMotd no
PidFile none
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
"""
LAYER_DIRS = ("etc", "var", "usr")  # what a layer holds
LAYER_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
LAB_NAME = LAYER_NAME
DPKG_STATUS = "/var/lib/dpkg/status"
# What a layer must not carry: apt's lists and cache (a node runs apt-get update
# against the lab repository itself) and the builder node's own seeded files.
LAYER_DROPS = ("var/lib/apt/lists", "var/cache/apt")
# converge's own state on this machine (runs, backups, run lock, agent cache): a node
# starts without it, as a fresh machine would.
HOST_STATE = ("/var/lib/converge",)
# Users' crontabs (cron's spool): a node starts with none, whatever root's crontab on
# this machine says; the directory stays, made like the machine's, for crontab(1).
EMPTY_SPOOLS = ("/var/spool/cron/crontabs",)
# Overlaid directories (see _spawn.OVERLAY_DIRS) and those whose lower layer is empty.
OVERLAID = ("etc", "var", "usr", "root", "home", "opt", "srv", "tmp")
EMPTY_HOMES = ("/root", "/home")
PASSWD = "/etc/passwd"
POLICY_RC_D = "#!/bin/sh\n# converge lab: package scripts start no daemon in a node\nexit 101\n"


class Lab:
    """The nodes recorded in one lab directory (`/run/converge-lab` by default).

    A named lab (``name="ci-1"``) lives in DIRECTORY/labs/NAME, DIRECTORY being
    ``directory`` or the default lab's; each lab has its own nodes, key, inventory
    and address range, so labs on one machine never touch each other's nodes.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        name: str | None = None,
        network: str | None = None,
        repo: LocalRepo | None = None,
        sshd: str = SSHD,
        platform: str = sys.platform,
        filesystems: str = "/proc/filesystems",
        images: Images | None = None,
    ) -> None:
        chosen = Path(directory or os.environ.get("CONVERGE_LAB_DIR") or DEFAULT_DIRECTORY)
        if name is not None:
            if not LAB_NAME.match(name):
                raise LabError(f"lab name {name!r}: use lower-case letters, digits, '-' and "
                               "'_', 32 at most")
            chosen = chosen / "labs" / name
        self.name = name
        self.directory = chosen.absolute()
        self.pool = net.parse_pool(network or os.environ.get("CONVERGE_LAB_NET")
                                   or net.DEFAULT_POOL)
        self.sshd = sshd
        self.platform = platform
        self.filesystems = filesystems
        self.repo = repo or LocalRepo(self.directory / "repo")
        self.images = images or Images()

    def private(self, prefix: str = "test") -> Lab:
        """A new lab of this process's own, in this lab's directory, sharing this lab's
        apt repository (what `converge test` runs in); remove it with :meth:`destroy`."""
        name = f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        return Lab(self.directory, name=name, network=str(self.pool), repo=self.repo,
                   sshd=self.sshd, platform=self.platform, filesystems=self.filesystems,
                   images=self.images)

    def reap_private(self, prefix: str = "test") -> list[str]:
        """Destroy the private labs (see :meth:`private`) whose process is gone (killed
        with SIGKILL, say); return their names."""
        reaped = []
        top = self.directory / "labs"
        for path in sorted(top.glob(f"{prefix}-*")) if top.is_dir() else []:
            parts = path.name.split("-")
            if len(parts) == 3 and parts[1].isdigit() and not _pid_exists(int(parts[1])):
                Lab(self.directory, name=path.name, network=str(self.pool),
                    repo=self.repo).destroy()
                reaped.append(path.name)
        return reaped

    def destroy(self) -> None:
        """Take every node down and delete the lab's directory (a private lab's end)."""
        self.down()
        shutil.rmtree(self.directory, ignore_errors=True)

    @property
    def label(self) -> str:
        """How commands name this lab: `--name NAME`, or nothing for the default one."""
        return f"--name {self.name} " if self.name else ""

    # -- paths ---------------------------------------------------------------

    @property
    def key_path(self) -> Path:
        """The lab's private SSH key; nodes accept only it."""
        return self.directory / "ssh" / "id_ed25519"

    @property
    def known_hosts_path(self) -> Path:
        return self.directory / "ssh" / "known_hosts"

    def inventory_path(self) -> Path:
        """A YAML inventory of the running nodes (written at every up and down)."""
        path = self.directory / "inventory.yml"
        if not path.exists():
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._write_inventory(self.nodes())
        return path

    # -- public operations ---------------------------------------------------

    def check_host(self) -> None:
        """Refuse early, saying what to do, when this machine cannot run nodes."""
        if not self.platform.startswith("linux"):
            raise LabError(f"the lab needs Linux namespaces; this is {self.platform}")
        if os.geteuid() != 0:
            raise LabError("the lab needs root (namespaces, mounts, veth links): run it with sudo")
        if not os.access(self.sshd, os.X_OK):
            raise LabError(f"sshd not found at {self.sshd}: install openssh-server "
                           "(apt-get install openssh-server; the lab starts no host sshd)")
        if not _has_overlayfs(self.filesystems):
            raise LabError("overlayfs is not available in this kernel: load it with "
                           "`modprobe overlay` (kernel option CONFIG_OVERLAY_FS)")
        for tool, package in TOOLS.items():
            if shutil.which(tool) is None:
                raise LabError(f"{tool} not found: install {package}")
        if any(c in str(self.directory) for c in ",:\n"):
            raise LabError(f"lab directory {self.directory} must not contain ',' or ':'")

    def nodes(self) -> list[Node]:
        """Every recorded node, alive or not (see Node.alive)."""
        return [_node(name, info) for name, info in self._state()["nodes"].items()]

    def node(self, name: str) -> Node:
        for node in self.nodes():
            if node.name == name:
                return node
        raise LabError(f"no lab node named {name!r} in {self.directory}")

    def up(self, n: int = 1, mirror: Iterable[str] = (),
           layers: Iterable[str] = (), image: str | None = None,
           echo: Callable[[str], None] = print) -> list[Node]:
        """Start n nodes; return when every node's sshd answers.

        ``layers`` names layers made by :meth:`build_layer`; each node sees them
        between its own writable layer and the host's /etc, /var and /usr.
        ``image`` (debian-12, say) starts the nodes from that lab image instead of
        this machine's root (built first, its progress passed to ``echo``, if it is
        not); their apt source is the image's own repository.
        """
        if n < 1:
            raise LabError(f"cannot bring up {n} nodes; ask for 1 or more")
        _open_files_for(n)
        lowers = [str(self._layer(name)) for name in layers]
        if image is not None and lowers:
            raise LabError("layers are built from this machine's packages: start nodes "
                           "from an image without them")
        self.check_host()
        extra: dict[str, Any] = {"lowers": lowers}
        repo = self.repo
        if image is not None:
            built = self.images.ensure(image, echo=echo)
            repo = self.images.repo(image)
            extra.update({"image": str(built.rootfs), "image_name": image,
                          "repo": str(repo.directory), "binds": [], "hide": []})
        self._prepare()
        repo.mirror(list(mirror))
        repo.ensure()
        with self._lock():
            state = self._state()
            names = _free_names(state["nodes"], n)
            with net.machine_lock():
                slots = self._allocate(state, n)
                nodes = self._start(state, names, slots, extra)
        try:
            _wait_for_sshd(nodes, self._log_tail, READY_TIMEOUT)
        except LabError:
            self.down([node.name for node in nodes])
            raise
        return nodes

    def down(self, names: Iterable[str] | None = None) -> list[str]:
        """Stop nodes (all when none named) and check nothing of them is left."""
        with self._lock():
            state = self._state()
            chosen = list(state["nodes"]) if names is None else list(names)
            unknown = [name for name in chosen if name not in state["nodes"]]
            if unknown:
                raise LabError(f"no lab node named {', '.join(unknown)} in {self.directory}")
            nodes = [_node(name, state["nodes"][name]) for name in chosen]
            _disconnect(nodes)
            leftovers = self._stop(nodes)
            self._forget(state, [node.name for node in nodes])
        if leftovers:
            raise LabError("lab down left things behind: " + "; ".join(leftovers))
        return chosen

    def build_layer(self, name: str, packages: Iterable[str], rebuild: bool = False) -> Path:
        """A layer of /etc, /var and /usr with distribution packages installed, for
        ``up(layers=[name])``; built once, and again when this machine's packages
        (or the list asked for) change. Returns its directory.

        The packages (and what they need beyond this machine's own) are mirrored
        into the lab repository unless it holds them already, then installed with
        apt-get in a throwaway node whose /etc, /var and /usr writable layers are
        kept on disk: package scripts run as in any node (offline, no daemon
        started), and nothing touches this machine. Many nodes then share one
        copy, read-only.
        """
        wanted = sorted(set(packages))
        if not wanted:
            raise LabError(f"layer {name!r}: name at least one package to install")
        path = self._layer_dir(name)
        stamp = {"packages": wanted, "host_packages": _host_packages_digest()}
        if not rebuild and read_json(path / "layer.json") == stamp:
            return path
        self.check_host()
        self._prepare()
        self.repo.mirror([pkg for pkg in wanted if pkg not in self.repo.names()])
        self.repo.ensure()
        build = path.with_name(path.name + ".build")
        shutil.rmtree(build, ignore_errors=True)
        build.mkdir(parents=True)
        with self._lock():
            state = self._state()
            names = _free_names(state["nodes"], 1)
            with net.machine_lock():
                slots = self._allocate(state, 1)
                builder = self._start(state, names, slots, {"keep_upper": str(build),
                                                              "keep_dirs": list(LAYER_DIRS)})[0]
        try:
            _wait_for_sshd([builder], self._log_tail, READY_TIMEOUT)
            env = {"DEBIAN_FRONTEND": "noninteractive"}
            for argv in (["apt-get", "update", "-qq"],
                         ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *wanted],
                         ["apt-get", "clean"]):
                done = builder.run(argv, env=env)
                if done.returncode != 0:
                    tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-5:])
                    raise LabError(f"layer {name!r}: `{' '.join(argv)}` failed in a lab "
                                   f"node: {tail}")
            seeds = [seed["path"].lstrip("/") for seed in self._seeds(builder.name, slots[0])]
        finally:
            self.down([builder.name])
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        for top in LAYER_DIRS:
            os.rename(build / "upper" / top, path / top)
        for rel in [*seeds, *LAYER_DROPS]:
            target = path / rel
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
        shutil.rmtree(build)
        atomic_write(path / "layer.json", json.dumps(stamp, indent=2) + "\n")
        return path

    def layers(self) -> list[str]:
        """Names of the layers built in this lab directory."""
        top = self.directory / "layers"
        return sorted(p.parent.name for p in top.glob("*/layer.json")) if top.is_dir() else []

    def remove_layer(self, name: str) -> None:
        """Delete a layer (no running node may use it)."""
        shutil.rmtree(self._layer(name))

    def ssh_command(self, node: Node, command: Iterable[str] = ()) -> list[str]:
        """An OpenSSH client command line for the node, host key checking on."""
        return [
            "ssh", "-F", "/dev/null", "-i", str(self.key_path),
            "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
            "-o", f"UserKnownHostsFile={self.known_hosts_path}",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes",
            "-o", "LogLevel=ERROR", "-p", str(node.port), f"root@{node.address}", *command,
        ]

    # -- bring-up ------------------------------------------------------------

    def _allocate(self, state: dict[str, Any], count: int) -> list[net.Slot]:
        """/30s in this lab's range (kept while it has nodes; under the machine lock)."""
        own = {info["link"] for info in state["nodes"].values()}
        recorded = state.get("network")
        if recorded and any(net.link_exists(link) for link in own):
            chosen = ipaddress.IPv4Network(recorded)  # kept while the lab has nodes
        else:
            chosen = net.pick_range(self.pool, own, recorded)
        state["network"] = str(chosen)
        return net.allocate(chosen, count)

    def _prepare(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        (self.directory / "nodes").mkdir(exist_ok=True)
        if not self.key_path.exists():
            self.key_path.parent.mkdir(mode=0o700, exist_ok=True)
            _keygen([self.key_path], comment="converge-lab")

    def _start(self, state: dict[str, Any], names: list[str], slots: list[net.Slot],
               extra: dict[str, Any] | None = None) -> list[Node]:
        for name in names:
            node_dir = self._node_dir(name)
            shutil.rmtree(node_dir, ignore_errors=True)
            for sub in ("root", "layers"):
                (node_dir / sub).mkdir(parents=True)
        _keygen([self._node_dir(name) / "ssh_host_ed25519_key" for name in names], comment="")
        specs = [{**self._spec(name, slot, image=bool((extra or {}).get("image"))),
                  **(extra or {})}
                 for name, slot in zip(names, slots, strict=True)]
        spawner = subprocess.Popen(
            [sys.executable, "-I", "-S", str(SPAWNER)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        assert spawner.stdin and spawner.stdout
        spawner.stdin.write(json.dumps({"nodes": specs}) + "\n")
        spawner.stdin.flush()
        reply = spawner.stdout.readline()
        if not reply:  # nodes already forked exit when their go pipe closes
            _, err = spawner.communicate()
            self._forget(state, names)
            raise LabError(f"could not start nodes: {err.strip()}")
        pids = json.loads(reply)["pids"]
        nodes = []
        for name, slot in zip(names, slots, strict=True):
            info = {"address": str(slot.node), "host_address": str(slot.host), "link": slot.link,
                    "pid": pids[name], "start": process_start(pids[name]) or 0}
            if extra and extra.get("image_name"):
                info["image"] = extra["image_name"]
            state["nodes"][name] = info
            nodes.append(_node(name, info))
        self._save(state)
        try:
            net.create_links([(slot, node.pid) for slot, node in zip(slots, nodes, strict=True)])
        except LabError:
            spawner.communicate("abort\n")
            self._stop(nodes)
            self._forget(state, names)
            raise
        _, err = spawner.communicate("go\n")
        if spawner.returncode != 0:
            raise LabError(f"could not start nodes: {err.strip()}")
        return nodes

    def _spec(self, name: str, slot: net.Slot, image: bool = False) -> dict[str, Any]:
        node_dir = self._node_dir(name)
        return {
            "name": name, "root": str(node_dir / "root"), "layers": str(node_dir / "layers"),
            "log": str(node_dir / "node.log"), "repo": str(self.repo.directory),
            "repo_target": REPO_NODE_PATH, "address": str(slot.node),
            "netmask": "255.255.255.252", "sshd": self.sshd, "env": NODE_ENV,
            "drop_caps": sorted(DROPPED_CAPS.values()), "oom_score_adj": OOM_SCORE_ADJ,
            "binds": [] if image else _interpreter_binds(),
            "seeds": self._seeds(name, slot, image),
            "hide": [] if image else [home for home in user_homes() if not _overlaid(home)],
            "source": [str(SOURCE), SOURCE_TARGET] if image else None,
        }

    def _seeds(self, name: str, slot: net.Slot, image: bool = False) -> list[dict[str, Any]]:
        node_dir = self._node_dir(name)
        pub = self.key_path.with_suffix(".pub").read_bytes()
        hosts = (f"127.0.0.1\tlocalhost\n{slot.node}\t{name}\n"
                 "::1\tlocalhost ip6-localhost ip6-loopback\n")
        # OpenSSH before 8.7 (bullseye's) knows no KbdInteractiveAuthentication; without
        # PAM keyboard-interactive has nothing to ask anyway.
        config = SSHD_CONFIG.replace("KbdInteractiveAuthentication no\n", "") if image \
            else SSHD_CONFIG
        files = [
            ("/etc/ssh/sshd_config", config.encode(), 0o644),
            ("/etc/ssh/ssh_host_ed25519_key",
             (node_dir / "ssh_host_ed25519_key").read_bytes(), 0o600),
            ("/etc/ssh/ssh_host_ed25519_key.pub",
             (node_dir / "ssh_host_ed25519_key.pub").read_bytes(), 0o644),
            ("/etc/hostname", f"{name}\n".encode(), 0o644),
            ("/etc/hosts", hosts.encode(), 0o644),
            ("/etc/machine-id", f"{uuid.uuid4().hex}\n".encode(), 0o444),
            ("/etc/apt/sources.list", SOURCES_LINE.encode(), 0o644),
            ("/usr/sbin/policy-rc.d", POLICY_RC_D.encode(), 0o755),
            ("/root/.ssh/authorized_keys", pub, 0o600),
        ]
        for skel in () if image else (".bashrc", ".profile"):  # an image has its own
            path = Path("/etc/skel") / skel
            if path.exists():
                files.append((f"/root/{skel}", path.read_bytes(), 0o644))
        hidden = [] if image else [*HOST_STATE,
                                   *(home for home in user_homes() if _overlaid(home))]
        seeds: list[dict[str, Any]] = [
            {"path": "/etc/apt/sources.list.d", "opaque": True},
            # apt's lists: the lab repository's index only (never the machine's lists),
            # current from the node's first second; no cache built from other lists.
            {"path": LISTS_DIR, "opaque": True},
            {"path": LISTS_DIR + "/partial", "dir": True, "mode": 0o700},
            {"path": LIST_FILE, "symlink": REPO_NODE_PATH + "/Packages"},
            {"path": "/var/cache/apt", "opaque": True},
            {"path": "/var/cache/apt/archives/partial", "dir": True, "mode": 0o700},
            {"path": "/root/.ssh", "dir": True, "mode": 0o700},
            *({"path": path, "opaque": True} for path in (() if image else EMPTY_SPOOLS)),
            *({"path": path, "whiteout": True} for path in hidden),
            # under coverage only (not from an image: its python3 has no coverage)
            *([] if image else _coverage.seeds()),
        ]
        seeds += [{"path": path, "data": base64.b64encode(data).decode(), "mode": mode}
                  for path, data, mode in files]
        return seeds

    # -- teardown ------------------------------------------------------------

    def _stop(self, nodes: list[Node]) -> list[str]:
        """Kill each node's PID 1 (its pid namespace goes with it); return what remains."""
        pidfds = []
        for node in nodes:
            fd = _pidfd(node)
            if fd is not None:
                _coverage.collect(node.pid)
                signal.pidfd_send_signal(fd, signal.SIGKILL)
                pidfds.append(fd)
        deadline = time.monotonic() + DOWN_TIMEOUT
        for fd in pidfds:
            select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            os.close(fd)
        _poll(lambda: not any(net.link_exists(node.link) for node in nodes), deadline)
        leftovers = []
        for node in nodes:
            if node.alive:
                leftovers.append(f"{node.name}: process {node.pid} still running")
            if net.link_exists(node.link):
                net.delete_link(node.link)
                if net.link_exists(node.link):
                    leftovers.append(f"{node.name}: link {node.link} still present")
            for point in _host_mounts_under(self._node_dir(node.name)):
                leftovers.append(f"{node.name}: mount {point} still present")
        return leftovers

    def _forget(self, state: dict[str, Any], names: list[str]) -> None:
        """Drop nodes from the record and remove their directories."""
        for name in names:
            shutil.rmtree(self._node_dir(name), ignore_errors=True)
            state["nodes"].pop(name, None)
        self._save(state)

    # -- state ---------------------------------------------------------------

    def _node_dir(self, name: str) -> Path:
        return self.directory / "nodes" / name

    def _layer_dir(self, name: str) -> Path:
        if not LAYER_NAME.match(name):
            raise LabError(f"layer name {name!r}: use lower-case letters, digits, '-' and '_'")
        return self.directory / "layers" / name

    def _layer(self, name: str) -> Path:
        """An existing layer's directory."""
        path = self._layer_dir(name)
        if not (path / "layer.json").exists():
            raise LabError(f"no lab layer named {name!r} in {self.directory}: build it first "
                           "(Lab.build_layer)")
        return path

    def _log_tail(self, name: str) -> str:
        path = self._node_dir(name) / "node.log"
        try:
            lines = path.read_text(errors="replace").strip().splitlines()
        except FileNotFoundError:
            return "(no log)"
        return " | ".join(lines[-5:]) or "(empty log)"

    @contextmanager
    def _lock(self) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _state(self) -> dict[str, Any]:
        state: dict[str, Any]
        try:
            state = json.loads((self.directory / "state.json").read_text())
        except FileNotFoundError:
            state = {}
        state.setdefault("nodes", {})
        return state

    def _save(self, state: dict[str, Any]) -> None:
        atomic_write(self.directory / "state.json", json.dumps(state, indent=2) + "\n")
        nodes = [_node(name, info) for name, info in state["nodes"].items()]
        lines = []
        for node in nodes:
            pub = self._node_dir(node.name) / "ssh_host_ed25519_key.pub"
            if pub.exists():
                keytype, key = pub.read_text().split()[:2]
                lines.append(f"{node.address} {keytype} {key}\n")
        self.known_hosts_path.parent.mkdir(mode=0o700, exist_ok=True)
        atomic_write(self.known_hosts_path, "".join(lines))
        self._write_inventory(nodes)

    def _write_inventory(self, nodes: list[Node]) -> None:
        self.write_inventory(self.directory / "inventory.yml", nodes)

    def write_inventory(self, path: Path, nodes: list[Node]) -> None:
        """A YAML inventory of these nodes (the lab's key and known hosts) at path."""
        q = json.dumps
        lines = [f"# converge lab inventory: the nodes running in {self.directory}",
                 "hosts:" if nodes else "hosts: {}"]
        for node in nodes:
            lines += [f"  {node.name}:", f"    address: {q(node.address)}",
                      f"    port: {node.port}", "    user: root",
                      f"    key: {q(str(self.key_path))}",
                      f"    known_hosts: {q(str(self.known_hosts_path))}"]
        lines += ["vars:", f"  known_hosts: {q(str(self.known_hosts_path))}"]
        atomic_write(path, "\n".join(lines) + "\n")


def _node(name: str, info: dict[str, Any]) -> Node:
    return Node(name=name, address=info["address"], pid=info["pid"], start=info["start"],
                host_address=info["host_address"], link=info["link"],
                image=info.get("image", ""))


def _disconnect(nodes: list[Node]) -> None:
    """Close this user's warm SSH connections to the nodes (converge/transport/persist.py),
    if a broker keeps any: a new node at the same address is a new host."""
    from converge.transport.persist import disconnect

    if nodes:
        disconnect([(node.address, node.port) for node in nodes])


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _free_names(existing: dict[str, Any], count: int) -> list[str]:
    names: list[str] = []
    number = 1
    while len(names) < count:
        name = f"node{number}"
        if name not in existing:
            names.append(name)
        number += 1
    return names


def _has_overlayfs(filesystems: str) -> bool:
    try:
        with open(filesystems) as handle:
            return any(line.split()[-1:] == ["overlay"] for line in handle)
    except OSError:
        return False


def user_homes(passwd: str = PASSWD) -> list[str]:
    """Home directories of this machine's people (root and login users, uid 1000 and up),
    other than /root and /home, which nodes never see: a node hides these too."""
    homes: set[str] = set()
    try:
        lines = Path(passwd).read_text(errors="replace").splitlines()
    except OSError:
        return []
    for line in lines:
        fields = line.split(":")
        if len(fields) < 7 or not fields[2].isdigit():
            continue
        uid, home = int(fields[2]), os.path.normpath(fields[5] or "/")
        if not (uid == 0 or 1000 <= uid < 65534) or home.count("/") < 2:
            continue  # system accounts, and homes such as / or /srv themselves
        if any(home == top or home.startswith(top + "/") for top in EMPTY_HOMES):
            continue
        if os.path.isdir(home) and not os.path.islink(home):
            homes.add(home)
    return sorted(homes)


def _overlaid(path: str) -> bool:
    """The path lies in one of a node's overlays (hidden there with a whiteout)."""
    return path.lstrip("/").split("/", 1)[0] in OVERLAID


def _interpreter_binds() -> list[str]:
    """Host paths a node must see read-only to run this converge with this Python.

    A node sees none of this machine's homes (its /root is a plain Debian one), so
    what lives in one (a pyenv interpreter under /root, a checkout under /home) is
    bound in; elsewhere the overlays or the read-only host tree show it.
    """
    package_root = Path(converge.__file__).resolve().parent.parent
    wanted = {Path(p).resolve() for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    wanted.add(package_root)
    hidden = [Path(home) for home in (*EMPTY_HOMES, *user_homes())]
    in_homes = sorted(p for p in wanted if any(h == p or h in p.parents for h in hidden))
    binds: list[str] = []
    for path in in_homes:
        if not any(Path(b) in path.parents for b in binds):
            binds.append(str(path))
    return binds


def _open_files_for(nodes: int) -> None:
    """Raise this process's soft open-file limit (the spawner inherits it) to what
    starting ``nodes`` at once takes, up to the hard limit. Else a soft limit of
    1024 (a common one) stops a lab at about 480 nodes, and 128 at about 60, with
    "Too many open files" part way through. A hard limit below that is an error
    saying so."""
    need = RESERVED_FILES + FILES_PER_NODE * nodes
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= need:
        return
    if hard != resource.RLIM_INFINITY and hard < need:
        raise LabError(f"starting {nodes} nodes takes about {need} open files, and this "
                       f"process may open {hard} (ulimit -Hn): raise that limit, or start "
                       "fewer nodes at a time")
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


def _keygen(paths: list[Path], comment: str) -> None:
    """Generate ed25519 keys, in parallel."""
    procs = []
    for path in paths:
        for old in (path, path.with_name(path.name + ".pub")):
            old.unlink(missing_ok=True)
        procs.append(subprocess.Popen(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise LabError(f"ssh-keygen failed: {err.decode().strip()}")


def _pidfd(node: Node) -> int | None:
    """A pidfd for the node's PID 1 if it is still that process, else None."""
    try:
        fd = os.pidfd_open(node.pid)
    except ProcessLookupError:
        return None
    if not node.alive:
        os.close(fd)
        return None
    return fd


def _poll(done: Callable[[], bool], deadline: float, interval: float = 0.01) -> bool:
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def _host_mounts_under(path: Path) -> list[str]:
    prefix = str(path)
    found = []
    with open("/proc/self/mountinfo") as info:
        for line in info:
            point = line.split()[4]
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return found


def _host_packages_digest() -> str:
    """Changes when this machine's packages do: a layer lies over its /usr and /etc,
    and overlayfs is undefined when a lower layer changes under it."""
    import hashlib

    try:
        return hashlib.sha256(Path(DPKG_STATUS).read_bytes()).hexdigest()
    except OSError:
        return ""




def _wait_for_sshd(nodes: list[Node], log_tail: Callable[[str], str], timeout: float) -> None:
    """Return when every node's sshd has sent its banner; raise if a node dies."""
    deadline = time.monotonic() + timeout
    pending = {node.name: node for node in nodes}
    probes: dict[str, socket.socket] = {}
    retry_at: dict[str, float] = {}
    selector = selectors.DefaultSelector()
    try:
        while pending:
            now = time.monotonic()
            for name, node in pending.items():
                if name not in probes and retry_at.get(name, 0) <= now and net.link_up(node.link):
                    probes[name] = _probe(node, log_tail)
                    selector.register(probes[name], selectors.EVENT_READ, name)
            for name, node in pending.items():
                if name not in probes and not node.alive:
                    raise LabError(f"lab node {name} died while starting: {log_tail(name)}")
            for key, _ in selector.select(timeout=0.01):
                sock = probes.pop(key.data)
                selector.unregister(sock)
                retry_at[key.data] = time.monotonic() + 0.01
                try:
                    banner = sock.recv(64)
                except OSError:
                    banner = b""
                sock.close()
                if banner.startswith(b"SSH-"):
                    del pending[key.data]
            if pending and time.monotonic() > deadline:
                raise LabError(f"lab nodes {', '.join(sorted(pending))} did not answer on "
                               f"port 22 within {timeout:.0f} s: {log_tail(next(iter(pending)))}")
    finally:
        for sock in probes.values():
            sock.close()
        selector.close()


def _probe(node: Node, log_tail: Callable[[str], str]) -> socket.socket:
    """Start connecting to the node's sshd, over its own link only (never a default route)."""
    if not node.alive or not net.link_exists(node.link):
        raise LabError(f"lab node {node.name} died while starting: {log_tail(node.name)}")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, node.link.encode())
        sock.setblocking(False)
        sock.connect_ex((node.address, node.port))
    except OSError as exc:  # the link went with its node
        sock.close()
        raise LabError(f"lab node {node.name} died while starting: "
                       f"{log_tail(node.name)}") from exc
    return sock
