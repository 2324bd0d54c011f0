"""mount in a lab node (nodes keep CAP_SYS_ADMIN), through the real CLI, against
the real mount(8), umount(8) and the node's own mount table: a tmpfs and an ext4
image the test makes (loop-mounted by mount(8)), fstab lines, second run up to
date (fstab's mtime kept), options compared as the kernel reports them, drift
(a remount by hand) corrected, plan changing nothing, rollback, and mount's own
failures.

Peers' reported bugs covered: 'size=1g' read back by the kernel as
'size=1048576k' remounted on every run (saltstack/salt#20164); a stale fstab line
for the same mount point replaced, not duplicated, comments kept; a mount point
with a space (written \\040 in fstab and mountinfo); a mount point that is a link
planted by an unprivileged user."""

from __future__ import annotations

from pathlib import Path

import pytest

from converge.lab import Node
from converge.lab.idempotence import place_recipe
from tests.e2e.node_helpers import apply, converge, sh

pytestmark = pytest.mark.lab

RECIPE = """\
from converge import mount
mount("/srv/mnt/scratch", "tmpfs", fstype="tmpfs", options=["size=8m", "mode=1777"],
      action=["mount", "enable"])
mount("/srv/mnt/my data", "tmpfs", fstype="tmpfs", options="size=4m,noexec", action="mount")
"""

IMAGE = """\
from converge import mount
mount("/srv/mnt/img", "/srv/disk.img", fstype="ext4", options=["noatime"], fsck_pass=2,
      action=["mount", "enable"])
"""

FSTAB = "# /etc/fstab: kept as it is\n/dev/sda1 / ext4 errors=remount-ro 0 1\n" \
        "tmpfs /srv/mnt/scratch tmpfs size=1m 0 0\n"


def options(node: Node, point: str) -> str:
    return sh(node, f"findmnt -n -o FSTYPE,OPTIONS --target '{point}'").strip()


def test_mount_tmpfs_fstab_drift_rollback(lab_node: Node, tmp_path: Path) -> None:
    sh(lab_node, "mkdir -p /srv/mnt/scratch '/srv/mnt/my data'")
    lab_node.write_file("/etc/fstab", FSTAB.encode())
    first = apply(lab_node, tmp_path, RECIPE)
    assert first.ok, first.stdout + first.stderr
    assert [(r["action"], r["changes"]) for r in first.resources()] == [
        ("mount", ["mount tmpfs on /srv/mnt/scratch"]),
        ("enable", ["update /srv/mnt/scratch in /etc/fstab from 'tmpfs /srv/mnt/scratch tmpfs "
                    "size=1m 0 0' to 'tmpfs /srv/mnt/scratch tmpfs size=8m,mode=1777 0 0'"]),
        ("mount", ["mount tmpfs on /srv/mnt/my data"])]
    assert "size=8192k" in options(lab_node, "/srv/mnt/scratch")
    assert "noexec" in options(lab_node, "/srv/mnt/my data")
    assert lab_node.read_file("/etc/fstab").decode() == FSTAB.replace(
        "tmpfs /srv/mnt/scratch tmpfs size=1m 0 0",
        "tmpfs /srv/mnt/scratch tmpfs size=8m,mode=1777 0 0")
    stamp = sh(lab_node, "stat -c %Y.%y /etc/fstab")
    second = apply(lab_node, tmp_path, RECIPE)
    assert [r["status"] for r in second.resources()] == ["up_to_date"] * 3, second.stdout
    assert sh(lab_node, "stat -c %Y.%y /etc/fstab") == stamp

    # drift: remounted by hand with another size; plan says so and changes nothing
    sh(lab_node, "mount -o remount,size=16m /srv/mnt/scratch")
    code, out = converge(lab_node, "plan", place_recipe(lab_node, tmp_path / "recipe.py"))
    assert code == 0, out
    assert "- would remount /srv/mnt/scratch with size=8m,mode=1777 (size=8m differs)" in out
    assert "size=16384k" in options(lab_node, "/srv/mnt/scratch")
    third = apply(lab_node, tmp_path, RECIPE)
    assert third.resources()[0]["changes"] == [
        "remount /srv/mnt/scratch with size=8m,mode=1777 (size=8m differs)"]
    assert "size=8192k" in options(lab_node, "/srv/mnt/scratch")

    # rollback of the last run: the old size again
    code, out = converge(lab_node, "rollback")
    assert code == 0, out
    assert "size=16384k" in options(lab_node, "/srv/mnt/scratch")


def test_mount_rollback_unmounts_and_restores_fstab(lab_node: Node, tmp_path: Path) -> None:
    sh(lab_node, "mkdir -p /srv/mnt/scratch '/srv/mnt/my data'")
    lab_node.write_file("/etc/fstab", FSTAB.encode())
    assert apply(lab_node, tmp_path, RECIPE).ok
    code, out = converge(lab_node, "rollback")
    assert code == 0, out
    assert lab_node.read_file("/etc/fstab").decode() == FSTAB
    assert sh(lab_node, "findmnt -n /srv/mnt/scratch || true; findmnt -n '/srv/mnt/my data' || true"
              ) == ""


def test_mount_loop_image(lab_node: Node, tmp_path: Path) -> None:
    sh(lab_node, "mkdir -p /srv/mnt/img && truncate -s 16M /srv/disk.img "
                 "&& mkfs.ext4 -q -F /srv/disk.img")
    probe = lab_node.run(["losetup", "-f"])
    if probe.returncode != 0:  # nodes get a minimal /dev: no loop-control, no loop devices
        # known and documented (docs/lab.md): marked, not hidden, even under CI=true
        pytest.xfail(f"no loop device in this lab node: {probe.stderr.strip()}")
    first = apply(lab_node, tmp_path, IMAGE)
    assert first.ok, first.stdout + first.stderr
    assert [r["changes"] for r in first.resources()] == [
        ["mount /srv/disk.img on /srv/mnt/img"], ["add /srv/mnt/img to /etc/fstab"]]
    try:
        assert sh(lab_node, "findmnt -n -o SOURCE /srv/mnt/img").startswith("/dev/loop")
        assert "noatime" in options(lab_node, "/srv/mnt/img")
        assert lab_node.read_file("/etc/fstab").decode().endswith(
            "/srv/disk.img /srv/mnt/img ext4 noatime 0 2\n")
        second = apply(lab_node, tmp_path, IMAGE)
        assert [r["status"] for r in second.resources()] == ["up_to_date"] * 2, second.stdout
    finally:
        lab_node.run(["umount", "-d", "/srv/mnt/img"])


def test_mount_failures(lab_node: Node, tmp_path: Path) -> None:
    sh(lab_node, "mkdir -p /srv/mnt/other && mount -t tmpfs other /srv/mnt/other")
    run = apply(lab_node, tmp_path, """\
from converge import file, mount
mount("/srv/mnt/nowhere", "tmpfs", fstype="tmpfs")
mount("/srv/mnt/other", "tmpfs", fstype="tmpfs")
mount("/srv/mnt/later", "/srv/no-such.img", fstype="ext4", action="enable")
file("/tmp/after", content="ran\\n")
""")
    assert run.returncode == 1
    got = [(r["status"], r.get("error") or "") for r in run.resources()]
    assert got[0][0] == "failed"
    assert got[0][1].startswith("mount exited 32: mount: /srv/mnt/nowhere")
    assert got[1] == ("failed", "/srv/mnt/other is mounted from other, not tmpfs; nothing was "
                      "changed\nunmount it first (action='umount'), or declare the device "
                      "it has")
    assert got[2][0] == "updated"  # fstab does not need the device now
    assert got[3][0] == "updated"


def test_mount_refuses_a_link_planted_by_a_user(lab_node: Node, tmp_path: Path) -> None:
    sh(lab_node, "useradd mallory && mkdir -p /srv/www && chown mallory /srv/www "
                 "&& su mallory -s /bin/sh -c 'ln -s /etc /srv/www/cache'")
    run = apply(lab_node, tmp_path, """\
from converge import mount
mount("/srv/www/cache", "tmpfs", fstype="tmpfs", options=["size=1m"])
""")
    assert run.resources()[0]["error"].startswith(
        "mount point /srv/www/cache is a symbolic link (to /etc); refusing to mount")
    assert sh(lab_node, "findmnt -n -t tmpfs -M /etc || true") == ""
