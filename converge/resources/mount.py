"""mount: a filesystem mounted now, and its line in /etc/fstab.

Example::

    mount("/mnt/scratch", "tmpfs", fstype="tmpfs", options=["size=64m", "mode=1777"],
          action=["mount", "enable"])
    mount("/srv/data", "UUID=3e6be9de-8139-11d1-9106-a43f08d823a6", fstype="ext4",
          options=["noatime"], fsck_pass=2, action="enable")
    mount("/mnt/old", "/dev/sdb1", action=["umount", "disable"])

``mount`` and ``umount`` act on the live mount table (read from
/proc/self/mountinfo); a mounted filesystem whose options differ from those
declared is remounted with them. Options are compared as the kernel reports them
(``size=8m`` equals ``size=8192k``; ``exec`` is the absence of ``noexec``; options
only mount(8) reads, such as ``defaults``, ``noauto`` or ``nofail``, are not
compared). A mount point mounted from another device is reported, not unmounted:
the resource fails. ``remount`` remounts with the declared options, every time it
runs: it is meant as a notification target (``notifies=scratch.remount``).
``enable`` and ``disable`` edit /etc/fstab: one line for the mount point,
options written as given; a stale line for the same mount point is replaced; other
lines and comments are kept. A device is a path (a regular file is loop-mounted,
as mount(8) does), ``UUID=`` or ``LABEL=``. The mount point must exist: mount(8)'s
own message is the failure otherwise; a mount point that is a symbolic link (one
an unprivileged user could plant) is refused. Rollback unmounts what the run mounted,
mounts again what it unmounted, remounts with the old options, and restores
/etc/fstab.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Tuple

from ..agent import managed
from ..errors import ResourceError
from . import _mounts as m
from . import _validate as v
from ._base import Change, Resource, prop

OPTION = re.compile(r"[A-Za-z0-9_.:/@%+=-]+")
FSTYPE = re.compile(r"[a-z0-9_.]+(\.[a-z0-9_]+)?")


@v.accepts("Union[str, Sequence[str]]")
def _option_list(value: Any, what: str) -> Any:
    """'noatime,nodev' is ['noatime', 'nodev']."""
    return value.split(",") if isinstance(value, str) else value


class Mount(Resource, type_name="mount"):
    """Mount or unmount a filesystem, and keep its /etc/fstab line."""

    actions = ("mount", "umount", "enable", "disable")
    notify_only = ("remount",)

    mount_point: str = prop(doc="Where the filesystem is mounted (an absolute path).",
                            identity=True, coerce=v.path)
    device: str = prop(doc="What to mount: a device or image path, UUID=..., LABEL=..., or a "
                       "name such as tmpfs for a virtual filesystem.", coerce=v.one_line)
    fstype: str = prop("auto", doc="The filesystem type (ext4, xfs, tmpfs, nfs...); auto lets "
                       "mount(8) detect it.")
    options: List[str] = prop(factory=lambda: ["defaults"], doc="Mount options, as a list "
                              "(or one comma-separated string).", coerce=_option_list)
    dump: int = prop(0, doc="The fstab dump field (0 or 1).", coerce=v.between(0, 9))
    fsck_pass: int = prop(0, doc="The fstab pass field: 0 no check, 1 the root filesystem, "
                          "2 the others (Chef's pass, a Python keyword).", coerce=v.between(0, 9))

    def normalise(self) -> None:
        if not self.mount_point.startswith("/"):
            raise self.fail("mount_point %s must be an absolute path" % v.quoted(self.mount_point))
        if not self.device or self.device.startswith("-") or "\t" in self.device:
            raise self.fail("device %s is not a device, UUID=, LABEL= or filesystem name"
                            % v.quoted(self.device))
        if not FSTYPE.fullmatch(self.fstype):
            raise self.fail("fstype %s is not a filesystem type such as ext4 or tmpfs"
                            % v.quoted(self.fstype))
        if not self.options:
            raise self.fail("options must be a list of mount options such as ['noatime']")
        for option in self.options:
            if not OPTION.fullmatch(option) or \
                    option.startswith("-"):
                raise self.fail("mount option %s is not valid (no spaces, commas or quotes; "
                                "give several options as a list)" % v.quoted(option))

    def decoded(self) -> None:
        self.options = list(self.options)

    # -- target ----------------------------------------------------------------------

    def current(self, system: Any) -> Dict[str, Any]:
        if self.action in ("mount", "remount") and system.readlink(self.mount_point) is not None:
            raise ResourceError("mount point %s is a symbolic link (to %s); refusing to mount "
                                "over what it points to" % (
                                    self.mount_point, system.readlink(self.mount_point)),
                                hint="make %s a directory" % self.mount_point)
        state: Dict[str, Any] = {"live": m.live(system, self.mount_point),
                                 "fstab": system.read_text(m.FSTAB)}
        if state["live"] is not None and self.action in ("mount", "remount"):
            state["same_device"] = self._same_device(system, state["live"]["source"])
        return state

    def _same_device(self, system: Any, source: str) -> bool:
        device = self.device
        if device.startswith(("UUID=", "LABEL=")):
            found = system.run(["findfs", device])
            return bool(found.ok and found.stdout.strip() == source)
        if source == device:
            return True
        loop = re.fullmatch(r"/dev/loop([0-9]+)", source)
        if loop:  # a loop-mounted image: compare with the file behind the loop device
            backing = system.read_text("/sys/block/loop%s/loop/backing_file" % loop.group(1))
            return (backing or "").strip() == device
        return bool(system.readlink(device) is not None and
                    system.run(["realpath", "-e", "--", device]).stdout.strip() == source)

    def changes(self, current: Dict[str, Any]) -> List[Change]:
        point, mounted = self.mount_point, current["live"]
        action = self.action
        if action in ("mount", "remount") and mounted and not current["same_device"]:
            raise ResourceError("%s is mounted from %s, not %s; nothing was changed" % (
                point, mounted["source"], self.device),
                hint="unmount it first (action='umount'), or declare the device it has")
        if action == "mount" and not mounted:
            return [Change("mount %s on %s" % (self.device, point), data="mount")]
        if action in ("mount", "remount") and mounted:
            missing = m.missing_options(self.options, mounted["options"])
            if missing or action == "remount":
                what = " (%s differ%s)" % (",".join(missing), "" if len(missing) > 1 else "s") \
                    if missing else ""
                return [Change("remount %s with %s%s" % (point, ",".join(self.options), what),
                               data="remount")]
        if action == "umount" and mounted:
            return [Change("unmount %s" % point, data="umount")]
        if action in ("enable", "disable"):
            new = m.fstab_line(self.device, point, self.fstype, self.options, self.dump,
                               self.fsck_pass) if action == "enable" else None
            text = m.fstab_edit(current["fstab"], point, new)
            if text == (current["fstab"] or ""):
                return []
            old = [line for _, line in m.fstab_entries(current["fstab"], point)]
            sentence = ("remove %s from %s" % (point, m.FSTAB) if new is None else
                        "add %s to %s" % (point, m.FSTAB) if not old else
                        "update %s in %s from '%s' to '%s'" % (point, m.FSTAB, old[0], new))
            return [Change(sentence, data=managed.Write(m.FSTAB, text.encode("utf-8")))]
        return []

    # -- journal and rollback -------------------------------------------------------------

    def before(self, system: Any, current: Dict[str, Any], changes: List[Change]
               ) -> Dict[str, Any]:
        """Journal hook: /etc/fstab is kept whole; for the live table, what was
        mounted before (device, type and options as the kernel reported them)."""
        if self.action in ("enable", "disable"):
            return {"files": [m.FSTAB]}
        mounted = current["live"]
        return {"mount_point": self.mount_point, "was": mounted}

    @classmethod
    def undo(cls, before: Dict[str, Any], system: Any) -> List[Tuple[str, str, Dict[str, Any]]]:
        """Rollback: unmount what was mounted, mount again what was unmounted,
        remount with the options it had."""
        point, was = before.get("mount_point"), before.get("was")
        if point is None:
            return []
        if was is None:
            return [("mount", "umount", {"mount_point": point, "device": "none"})]
        options = [o for o in was["options"] if o not in ("seclabel",)]
        return [("mount", "mount", {"mount_point": point, "device": was["source"],
                                    "fstype": was["fstype"], "options": options})]

    # -- acting --------------------------------------------------------------------------

    def apply(self, system: Any, changes: List[Change]) -> None:
        for change in changes:
            if isinstance(change.data, managed.Write):
                managed.write(system, change.data)
                continue
            self._refuse_root(system)
            if change.data == "mount":
                argv = ["mount"] + (["-t", self.fstype] if self.fstype != "auto" else []) + [
                    "-o", ",".join(self.options), "--", self.device, self.mount_point]
            elif change.data == "remount":
                argv = ["mount", "-o", ",".join(["remount"] + self.options), "--",
                        self.mount_point]
            else:
                argv = ["umount", "--", self.mount_point]
            done = system.run(argv, timeout=300)
            if not done.ok:
                raise ResourceError("%s exited %d: %s" % (argv[0], done.returncode,
                                                          done.output() or "(no output)"))
        left = [c.text for c in self.changes(self.current(system))
                if not isinstance(c.data, managed.Write)] if self.action != "remount" else []
        if left:
            raise ResourceError("%s exited 0, yet %s" % ("mount", "; ".join(left)))

    @staticmethod
    def _refuse_root(system: Any) -> None:
        if system.root != "/":
            raise ResourceError("cannot mount or unmount under the root directory %s"
                                % system.root, hint="edit fstab only (action='enable')")
