"""Start lab nodes: run as a script (`python3 -I -S _spawn.py`), standard library only.

The lab starts one short-lived spawner per `up`, so that forking happens in a small
single-threaded process rather than in the caller (pytest, say, may run threads).
Protocol over stdin/stdout, one JSON line each way:

    stdin:  {"nodes": [spec, ...]}       stdout: {"pids": {"node1": 4242, ...}}
    stdin:  go                           (the caller has moved each node's eth0 in)

Each node is a process that unshares mount, pid, uts, ipc and net namespaces,
forks its PID 1, builds the node's root (read-only host, overlays on a private
tmpfs, fresh /proc /dev /sys /run), waits for `go`, configures its network,
drops capabilities, pivots into the new root and becomes the node's sshd.
"""

from __future__ import annotations

import base64
import ctypes
import fcntl
import json
import os
import socket
import stat
import struct
import sys
from typing import Any, NoReturn

# A node's spec, as the lab sends it (JSON); a snapshot: {"vm": {rel: (mode, data)}}
Spec = dict[str, Any]
Snapshot = dict[str, dict[str, tuple[int, bytes]]]

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWNET = 0x40000000
CLONE_NEWPID = 0x20000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2

PR_CAPBSET_DROP = 24
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
SIOCSIFADDR = 0x8916
SIOCSIFNETMASK = 0x891C
IFF_UP = 0x1

OVERLAY_DIRS = ("etc", "var", "usr", "root", "home", "opt", "srv", "tmp")
# Overlays over an empty lower directory: a node starts with none of the host's homes.
EMPTY_LOWERS = ("root", "home")
SYSCTL_COPIES = ("vm", "kernel")

libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, "%s: %s" % (what, os.strerror(err)))


def mount(source: str | None, target: str, fstype: str | None, flags: int,
          data: str | None = None) -> None:
    """mount(2), with an error that names the target."""
    def enc(s: str | None) -> bytes | None:
        return s.encode() if s is not None else None

    _check(
        libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
        "mount %s on %s" % (fstype or source, target),
    )


def bind(source: str, target: str, readonly: bool = False, flags: int = 0) -> None:
    """Bind `source` on `target`, read-only when asked (a bind needs a remount for that)."""
    mount(source, target, None, MS_BIND | flags)
    if readonly:
        mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | flags)


def umount_detach(target: str) -> None:
    _check(libc.umount2(target.encode(), MNT_DETACH), "umount " + target)


def mountpoints_under(root: str) -> list[tuple[str, list[str]]]:
    """Mount points at or below `root`, with their per-mount flags, parents first."""
    found: list[tuple[str, list[str]]] = []
    with open("/proc/self/mountinfo") as info:
        for line in info:
            fields = line.split()
            point = fields[4].encode().decode("unicode_escape")
            if point == root or point.startswith(root + "/"):
                found.append((point, fields[5].split(",")))
    return found


def readonly_tree(root: str) -> None:
    """Remount every mount of the bound host tree read-only, keeping nosuid/nodev/noexec."""
    keep = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC}
    for point, opts in mountpoints_under(root):
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY
        for opt in opts:
            flags |= keep.get(opt, 0)
        mount(None, point, None, flags)


def makedirs_like(upper: str, rel: str, host_root: str = "/") -> None:
    """Create `upper/rel`'s parents with the host directories' modes and owners."""
    parts = [p for p in rel.split("/") if p][:-1]
    here, host = upper, host_root
    for part in parts:
        here = os.path.join(here, part)
        host = os.path.join(host, part)
        if not os.path.isdir(here):
            st = os.stat(host) if os.path.isdir(host) else None
            os.mkdir(here, st.st_mode & 0o7777 if st else 0o755)
            if st:
                os.chown(here, st.st_uid, st.st_gid)


def layer_home(spec: Spec, name: str) -> str:
    """The directory holding upper/NAME and work/NAME for one overlay."""
    if spec.get("keep_upper") and name in spec["keep_dirs"]:
        return os.path.join(spec["layers"], "kept")
    layers: str = spec["layers"]
    return layers


def build_layers(spec: Spec) -> None:
    """A private tmpfs holding each overlay's upper and work directories, seeded.

    With spec["keep_upper"] (a directory on the host), the upper and work
    directories of spec["keep_dirs"] (etc, var, usr) are that directory's instead:
    what the node writes there outlives it (how the lab builds an extra layer).
    """
    layers = spec["layers"]
    mount("tmpfs", layers, "tmpfs", MS_NOSUID, "mode=700")
    os.mkdir(os.path.join(layers, "empty"))
    if spec.get("keep_upper"):  # one bind: upper and work must share a mount
        os.mkdir(os.path.join(layers, "kept"))
        bind(spec["keep_upper"], os.path.join(layers, "kept"))
    for name in OVERLAY_DIRS:
        for kind in ("upper", "work"):
            os.makedirs(os.path.join(layer_home(spec, name), kind, name))
    for name in OVERLAY_DIRS:
        upper = os.path.join(layer_home(spec, name), "upper", name)
        st = os.stat("/" + name) if name != "root" and os.path.isdir("/" + name) else None
        os.chmod(upper, st.st_mode & 0o7777 if st else 0o700)
        if st:
            os.chown(upper, st.st_uid, st.st_gid)
    for seed in spec["seeds"]:
        top, rel = seed["path"].lstrip("/").split("/", 1)
        upper = os.path.join(layer_home(spec, top), "upper", top)
        write_seed(upper, rel, seed, "/" + top if top not in EMPTY_LOWERS
                   else os.path.join(layers, "empty"))


def write_seed(upper: str, rel: str, seed: dict[str, Any], lower: str) -> None:
    """One seed (a file, directory, link, opaque directory or whiteout) at upper/rel,
    its parents made like the lower layer's."""
    makedirs_like(upper, rel, lower)
    target = os.path.join(upper, rel)
    if seed.get("whiteout"):  # overlayfs: a 0/0 character device hides the lower path
        os.mknod(target, 0o600 | stat.S_IFCHR, os.makedev(0, 0))
        return
    if seed.get("symlink"):
        os.symlink(seed["symlink"], target)
        return
    if seed.get("dir"):
        os.makedirs(target, exist_ok=True)
        os.chmod(target, seed["mode"])
        return
    if seed.get("opaque"):  # empty whatever lies below; mode and owner as the lower's
        os.makedirs(target, exist_ok=True)
        os.setxattr(target, "trusted.overlay.opaque", b"y")
        below = os.path.join(lower, rel)
        if os.path.isdir(below):
            st = os.stat(below)
            os.chown(target, st.st_uid, st.st_gid)
            os.chmod(target, st.st_mode & 0o7777)
        return
    with open(target, "wb") as out:
        out.write(base64.b64decode(seed["data"]))
    os.chmod(target, seed["mode"])


def mount_overlays(spec: Spec) -> None:
    """Each overlay: the node's upper over spec["lowers"] (extra layers, first on
    top) over the host's directory."""
    root, layers = spec["root"], spec["layers"]
    for name in OVERLAY_DIRS:
        lower = "/" + name if name not in EMPTY_LOWERS else os.path.join(layers, "empty")
        if not os.path.isdir(lower):
            lower = os.path.join(layers, "empty")
        extra = [os.path.join(layer, name) for layer in spec.get("lowers", ())]
        lower = ":".join([path for path in extra if os.path.isdir(path)] + [lower])
        target = os.path.join(root, name)
        if not os.path.isdir(target):
            continue
        home = layer_home(spec, name)
        opts = "lowerdir=%s,upperdir=%s,workdir=%s" % (
            lower, os.path.join(home, "upper", name), os.path.join(home, "work", name))
        mount("overlay", target, "overlay", 0, opts)


def write_sysctl_copy(directory: str, files: dict[str, tuple[int, bytes]]) -> None:
    for rel, (mode, data) in sorted(files.items()):
        path = os.path.join(directory, rel)
        parent = os.path.dirname(path)
        if not os.path.isdir(parent):
            os.makedirs(parent)
        with open(path, "wb") as out:
            out.write(data)
        os.chmod(path, mode)


def mount_proc(spec: Spec, snapshot: Snapshot) -> None:
    """A /proc for the node's pid namespace; vm and kernel knobs become writable copies."""
    proc = os.path.join(spec["root"], "proc")
    flags = MS_NOSUID | MS_NODEV | MS_NOEXEC
    mount("proc", proc, "proc", flags)
    sys_dir = os.path.join(proc, "sys")
    bind(sys_dir, sys_dir, readonly=True, flags=flags)
    net = os.path.join(sys_dir, "net")
    bind(net, net, flags=flags)
    mount(None, net, None, MS_REMOUNT | MS_BIND | flags)
    for name in SYSCTL_COPIES:
        target = os.path.join(sys_dir, name)
        mount("tmpfs", target, "tmpfs", flags, "mode=555")
        write_sysctl_copy(target, snapshot[name])
    random_dir = os.path.join(sys_dir, "kernel", "random")
    os.makedirs(random_dir, exist_ok=True)
    bind("/proc/sys/kernel/random", random_dir, readonly=True, flags=flags)
    for sub in ("irq", "bus", "fs"):
        path = os.path.join(proc, sub)
        if os.path.isdir(path):
            bind(path, path, readonly=True, flags=flags)
    sysrq = os.path.join(proc, "sysrq-trigger")
    if os.path.exists(sysrq):
        bind(os.path.join(spec["root"], "dev", "null"), sysrq)


def mount_dev(spec: Spec) -> None:
    dev = os.path.join(spec["root"], "dev")
    mount("tmpfs", dev, "tmpfs", MS_NOSUID, "mode=755,size=64k")
    for name, major, minor in (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7),
                               ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)):
        path = os.path.join(dev, name)
        os.mknod(path, 0o666 | 0o020000, os.makedev(major, minor))
        os.chmod(path, 0o666)
    for name in ("pts", "shm"):
        os.mkdir(os.path.join(dev, name))
    mount("devpts", os.path.join(dev, "pts"), "devpts", MS_NOSUID | MS_NOEXEC,
          "newinstance,ptmxmode=0666,mode=0620,gid=5")
    mount("tmpfs", os.path.join(dev, "shm"), "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    os.symlink("pts/ptmx", os.path.join(dev, "ptmx"))
    os.symlink("/proc/self/fd", os.path.join(dev, "fd"))
    for number, name in enumerate(("stdin", "stdout", "stderr")):
        os.symlink("/proc/self/fd/%d" % number, os.path.join(dev, name))


def mount_run(spec: Spec) -> None:
    run = os.path.join(spec["root"], "run")
    mount("tmpfs", run, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755")
    os.mkdir(os.path.join(run, "sshd"), 0o755)
    os.mkdir(os.path.join(run, "lock"))
    os.chmod(os.path.join(run, "lock"), 0o1777)
    repo_target = os.path.join(run, spec["repo_target"].lstrip("/").split("/", 1)[1])
    os.makedirs(repo_target)
    bind(spec["repo"], repo_target, readonly=True)


def build_image_root(spec: Spec) -> None:
    """The node's root from a lab image: one overlay, the image (read-only, never a
    live directory of this machine) under the node's own upper layer on a tmpfs."""
    root, layers, image = spec["root"], spec["layers"], spec["image"]
    mount("tmpfs", layers, "tmpfs", MS_NOSUID, "mode=700")
    upper, work = os.path.join(layers, "upper"), os.path.join(layers, "work")
    os.mkdir(upper)
    os.mkdir(work)
    st = os.stat(image)
    os.chmod(upper, st.st_mode & 0o7777)
    for seed in spec["seeds"]:
        write_seed(upper, seed["path"].lstrip("/"), seed, image)
    mount("overlay", root, "overlay", 0,
          "lowerdir=%s,upperdir=%s,workdir=%s" % (image, upper, work))
    if spec.get("source"):  # converge's package, for the image's python3
        source, target = spec["source"]
        target = root + target
        os.makedirs(target, exist_ok=True)
        bind(source, target, readonly=True, flags=MS_NOSUID | MS_NODEV)


def build_root(spec: Spec, snapshot: Snapshot) -> None:
    """Assemble the node's root under spec['root'] in this (private) mount namespace."""
    root = spec["root"]
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    if spec.get("image"):
        build_image_root(spec)
    else:
        mount("/", root, None, MS_BIND | MS_REC)
        for sub in ("proc", "sys", "dev", "run"):
            path = os.path.join(root, sub)
            if any(point == path for point, _ in mountpoints_under(path)):
                umount_detach(path)
        readonly_tree(root)
        build_layers(spec)
        mount_overlays(spec)
    mount_dev(spec)
    mount_proc(spec, snapshot)
    mount("sysfs", os.path.join(root, "sys"), "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    mount_run(spec)
    for path in spec.get("hide", ()):  # host homes outside the overlays: an empty tmpfs
        mount("tmpfs", root + path, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=64k")
    for path in spec["binds"]:
        target = root + path
        os.makedirs(target, exist_ok=True)
        bind(path, target, readonly=True)


def ifreq(name: str, payload: bytes = b"") -> bytes:
    return name.encode().ljust(16, b"\0") + payload.ljust(24, b"\0")


def link_up(sock: socket.socket, name: str) -> None:
    flags = struct.unpack("H", fcntl.ioctl(sock, SIOCGIFFLAGS, ifreq(name))[16:18])[0]
    fcntl.ioctl(sock, SIOCSIFFLAGS, ifreq(name, struct.pack("H", flags | IFF_UP)))


def configure_network(spec: Spec) -> None:
    """lo up; eth0 gets the node's address on its /30 (the kernel adds the link route)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        link_up(sock, "lo")
        for request, addr in ((SIOCSIFADDR, spec["address"]), (SIOCSIFNETMASK, spec["netmask"])):
            sin = struct.pack("=H", socket.AF_INET) + b"\0\0" + socket.inet_aton(addr)
            fcntl.ioctl(sock, request, ifreq("eth0", sin))
        link_up(sock, "eth0")
    finally:
        sock.close()


def drop_capabilities(caps: list[int]) -> None:
    for cap in caps:
        _check(libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), "drop capability %d" % cap)


def pivot(root: str) -> None:
    os.chdir(root)
    _check(libc.syscall(SYS_PIVOT_ROOT[os.uname().machine], b".", b"."), "pivot_root")
    umount_detach(".")
    os.chdir("/")


def node_main(spec: Spec, snapshot: Snapshot, go_fd: int) -> NoReturn:
    """PID 1 of a node: build, wait for the network, become sshd. Never returns."""
    log = os.open(spec["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(log, 1)
    os.dup2(log, 2)
    try:
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        libc.sethostname(spec["name"].encode(), len(spec["name"]))
        build_root(spec, snapshot)
        if os.read(go_fd, 1) != b"g":
            os._exit(3)
        configure_network(spec)
        pivot(spec["root"])
        with open("/proc/self/oom_score_adj", "w") as oom:
            oom.write(str(spec["oom_score_adj"]))
        drop_capabilities(spec["drop_caps"])
        for fd in (log, null, go_fd):
            os.close(fd)
        os.execve(spec["sshd"], [spec["sshd"], "-D", "-e"], spec["env"])
    except BaseException as exc:  # noqa: B036 - PID 1 must report, then exit
        os.write(2, ("converge-lab: node %s failed to start: %s\n" % (spec["name"], exc)).encode())
        os._exit(2)


def start_node(spec: Spec, snapshot: Snapshot) -> tuple[int, int]:
    """Fork a node; return (pid of its PID 1 on the host, write end of its go pipe)."""
    go_read, go_write = os.pipe()
    report_read, report_write = os.pipe()
    first = os.fork()
    if first == 0:
        try:
            os.close(go_write)
            os.close(report_read)
            flags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWPID
            _check(libc.unshare(flags), "unshare")
            pid = os.fork()
            if pid == 0:
                os.close(report_write)
                node_main(spec, snapshot, go_read)
            os.write(report_write, str(pid).encode())
            os._exit(0)
        except BaseException as exc:  # noqa: B036
            os.write(2, ("converge-lab: %s\n" % exc).encode())
            os._exit(1)
    os.close(go_read)
    os.close(report_write)
    data = os.read(report_read, 32)
    os.close(report_read)
    os.waitpid(first, 0)
    if not data:
        raise OSError("could not start node %s (unshare failed)" % spec["name"])
    return int(data), go_write


def snapshot_sysctls() -> Snapshot:
    """Host values of /proc/sys/vm and /proc/sys/kernel (minus kernel/random), read once."""
    snapshot: Snapshot = {}
    for name in SYSCTL_COPIES:
        top = os.path.join("/proc/sys", name)
        files: dict[str, tuple[int, bytes]] = {}
        for dirpath, dirnames, filenames in os.walk(top):
            if dirpath == "/proc/sys/kernel":
                dirnames[:] = [d for d in dirnames if d != "random"]
            for filename in filenames:
                path = os.path.join(dirpath, filename)
                mode = os.stat(path).st_mode & 0o777
                try:
                    with open(path, "rb") as handle:
                        data = handle.read()
                except OSError:
                    data = b""
                files[os.path.relpath(path, top)] = (mode, data)
        snapshot[name] = files
    return snapshot


def main() -> None:
    request = json.loads(sys.stdin.readline())
    snapshot = snapshot_sysctls()
    pids: dict[str, int] = {}
    pipes: dict[str, int] = {}
    for spec in request["nodes"]:
        node_snapshot = dict(snapshot)
        kernel = dict(snapshot["kernel"])
        kernel["hostname"] = (0o644, spec["name"].encode() + b"\n")
        node_snapshot["kernel"] = kernel
        pids[spec["name"]], pipes[spec["name"]] = start_node(spec, node_snapshot)
    sys.stdout.write(json.dumps({"pids": pids}) + "\n")
    sys.stdout.flush()
    go = sys.stdin.readline().strip() == "go"
    for fd in pipes.values():
        if go:
            os.write(fd, b"g")
        os.close(fd)


if __name__ == "__main__":
    main()
