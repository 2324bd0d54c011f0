"""sysctl: a kernel parameter, set now and persisted for the next boot.

Example::

    sysctl("vm.panic_on_oom", 1)
    sysctl("net.ipv4.ip_local_port_range", [32768, 60999])
    sysctl("vm.swappiness", 10, conf_file="60-memory.conf", comment="less swapping")
    sysctl("kernel.sysrq", action="remove")      # forget the persisted setting

The runtime value is read from /proc/sys (``vm.panic_on_oom`` is
/proc/sys/vm/panic_on_oom) and compared field by field: ``1`` and ``"1"`` are the
same value, and ``"32768 60999"`` equals the kernel's ``32768<TAB>60999``. The value
is written to /proc/sys first and persisted only when the kernel accepted it, in
``/etc/sysctl.d/99-converge-<key>.conf`` (a file converge owns) or in ``conf_file``
(an absolute path, or a file name under /etc/sysctl.d). Several keys may share a
``conf_file``: only this key's line is rewritten, other lines are kept. A file
read later at boot that sets the key to another value would win at the next boot:
that is reported as a warning. ``remove`` deletes the persisted setting and leaves
the runtime value as it is (the kernel has no "default" to go back to).

Parameters known to take integers (every vm.* and fs.* one but a few, and the
common kernel.* and net.* ones) refuse anything else while compiling: ``value
'high' is not an integer``. On the target, a parameter that holds an integer
refuses text before anything is written, as the kernel would (EINVAL): also
where /proc/sys is a copy that takes any text (a lab node).

Errors on the target: an unknown key (``no such kernel parameter
net.ipv4.ip_forwrd``), a read-only key, or a value the kernel refuses (with its
errno, for example ``Invalid argument (EINVAL)``); nothing is persisted then.
Idempotent: when the runtime value and the file agree, nothing is written.
"""

from __future__ import annotations

import os
import stat as stat_mod
from typing import Any, Dict, List, Optional, Tuple

from ..agent import managed
from ..agent.system import describe_oserror
from ..errors import ResourceError
from . import _sysctl_files as sf
from . import _validate as v
from ._base import Change, Resource, prop

CONF_DIR = "/etc/sysctl.d"


class Sysctl(Resource, type_name="sysctl"):
    """Set a kernel parameter at runtime and persist it in /etc/sysctl.d."""

    actions = ("apply", "remove")

    key: str = prop(doc="The parameter, dotted as sysctl shows it: 'vm.panic_on_oom' "
                    "(slash notation 'vm/panic_on_oom' is accepted).", identity=True,
                    coerce=sf.check_key)
    value: Any = prop(None, doc="The value: a number, a text, or a list of fields for "
                      "multi-value keys ([32768, 60999]).", sensitive=True,
                      required_for=("apply",), coerce=sf.check_value)
    persist: bool = prop(True, doc="Also write the value to a sysctl.d file so it holds "
                         "after a reboot.")
    conf_file: Optional[str] = prop(None, doc="Where to persist: an absolute path, or a "
                                    "file name under /etc/sysctl.d ending in .conf. Default: "
                                    "/etc/sysctl.d/99-converge-<key>.conf.", coerce=v.path)
    comment: Optional[str] = prop(None, doc="A comment written above the persisted line.",
                                  coerce=v.one_line)

    def normalise(self) -> None:
        if self.value is not None:
            sf.check_integers(self.key, self.value)
        if self.conf_file is not None:
            if "/" not in self.conf_file:
                if not self.conf_file.endswith(".conf"):
                    raise self.fail("conf_file %s must end in .conf (only *.conf files in "
                                    "%s are read at boot)" % (v.quoted(self.conf_file), CONF_DIR))
                self.conf_file = CONF_DIR + "/" + self.conf_file
            elif not self.conf_file.startswith("/"):
                raise self.fail("conf_file %s must be an absolute path or a file name "
                                "under %s" % (v.quoted(self.conf_file), CONF_DIR))

    @property
    def path(self) -> str:
        """The file the value is persisted in."""
        return self.conf_file or "%s/99-converge-%s.conf" % (CONF_DIR, self.key.replace("/", "."))

    def writes(self) -> List[str]:
        return [self.path] if self.persist or self.action == "remove" else []

    @property
    def owned(self) -> bool:
        """Whether converge owns the whole file (the default per-key file)."""
        return self.conf_file is None or self.conf_file == "%s/99-converge-%s.conf" % (
            CONF_DIR, self.key.replace("/", "."))

    def _show(self, value: Optional[str]) -> str:
        return managed.shown(self, "(unset)" if value is None else (value or "''"))

    # -- target ----------------------------------------------------------------------

    def current(self, system: Any) -> Dict[str, Any]:
        proc = sf.proc_path(self.key)
        st = system.stat(proc)
        state: Dict[str, Any] = {"runtime": None, "writable": False,
                                 "file": system.read_text(self.path)}
        if st is not None and not stat_mod.S_ISDIR(st.st_mode):
            state["runtime"] = " ".join((system.read_text(proc) or "").split())
            state["writable"] = bool(st.st_mode & stat_mod.S_IWUSR)
        elif self.action == "apply":
            raise ResourceError("no such kernel parameter %s" % self.key,
                                hint=self._suggest(system, proc))
        if self.action == "apply" and self.value is not None and state["runtime"] and \
                not sf.text_key(self.key) and sf.integers(state["runtime"]) and \
                not sf.integers(self.value):
            # what the kernel refuses (EINVAL), said before anything is written; also where
            # /proc/sys is a copy that takes any text (a lab node, a container)
            raise ResourceError("%s takes integers (it is %s now); %s is not one, so the "
                                "kernel would refuse it: nothing was written"
                                % (self.key, state["runtime"], self._show(self.value)),
                                hint="give an integer, or a list of them for a multi-value key")
        if self.action == "apply" and self.persist:
            self._warn_later_files(system)
        return state

    def _suggest(self, system: Any, proc: str) -> str:
        parent, name = os.path.split(proc)
        import difflib

        close = difflib.get_close_matches(name, system.listdir(parent), n=1)
        if not close:
            return "list the kernel's parameters with: sysctl -a"
        prefix = self.key.rsplit(".", 1)[0] + "." if "." in self.key else ""
        return "did you mean %s%s?" % (prefix, close[0])

    def _warn_later_files(self, system: Any) -> None:
        later = sf.later_files(system, self.path)
        if later is None:
            self._warn("%s is not read at boot (systemd-sysctl reads *.conf files in %s)"
                       % (self.path, ", ".join(sf.CONF_DIRS)))
            return
        for other in later:
            for value in sf.settings(system.read_text(other), self.key):
                if not sf.same_value(value, self.value):
                    self._warn("%s sets %s = %s and is read after %s at boot, so it wins "
                               "there" % (other, self.key, self._show(value), self.path))

    def _warn(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)

    def changes(self, current: Dict[str, Any]) -> List[Change]:
        text = current["file"]
        if self.action == "remove":
            if not sf.settings(text, self.key):
                return []
            new: Optional[str] = None
            if not self.owned:
                new = sf.edit(text, self.key, None, self.comment)
                new = new if any(sf.parse_line(line) for line in new.splitlines()) else None
            left = "" if current["runtime"] is None else " %s" % self._show(current["runtime"])
            return [Change("remove %s from %s (the runtime value%s is left as is)"
                           % (self.key, self.path, left), data=self._write(new))]
        out = []
        if not sf.same_value(current["runtime"], self.value):
            if not current["writable"]:
                raise ResourceError("kernel parameter %s is read-only (it is %s, not %s)"
                                    % (self.key, self._show(current["runtime"]),
                                       self._show(self.value)))
            out.append(Change("set %s from %s to %s" % (self.key, self._show(current["runtime"]),
                                                        self._show(self.value)), data="runtime"))
        if self.persist:
            new = self._rendered(text)
            if new != text:
                out.append(Change("persist %s = %s in %s" % (self.key, self._show(self.value),
                                                              self.path), data=self._write(new)))
        return out

    def _write(self, text: Optional[str]) -> managed.Write:
        """The persisted file with this text (None: removed)."""
        return managed.Write(self.path, None if text is None else text.encode("utf-8"), 0o644,
                             parents=0o755)

    def _rendered(self, text: Optional[str]) -> str:
        if self.owned:
            head = "# Managed by converge: %s\n" % self.identity
            return sf.edit(head, self.key, self.value, self.comment)
        return sf.edit(text, self.key, self.value, self.comment)

    def before(self, system: Any, current: Dict[str, Any], changes: List[Change]
               ) -> Dict[str, Any]:
        """Journal hook: the runtime value this run replaces, and the persisted file
        (kept whole by the journal)."""
        out: Dict[str, Any] = {"key": self.key}
        if any(c.data == "runtime" for c in changes):
            out["runtime"] = current["runtime"]
        if any(isinstance(c.data, managed.Write) for c in changes):
            out.update(managed.journal_files(system, self.path))
        return out

    @classmethod
    def undo(cls, before: Dict[str, Any], system: Any) -> List[Tuple[str, str, Dict[str, Any]]]:
        """Rollback: set the runtime value back (the file is restored by the journal)."""
        if before.get("runtime") is None:
            return []
        return [("sysctl", "apply", {"key": before["key"], "value": before["runtime"],
                                     "persist": False})]

    def apply(self, system: Any, changes: List[Change]) -> None:
        for change in changes:
            if change.data == "runtime":
                self._set_runtime(system)
            else:
                managed.write(system, change.data)

    def _set_runtime(self, system: Any) -> None:
        proc = sf.proc_path(self.key)
        try:
            system.write_in_place(proc, (self.value + "\n").encode("utf-8"))
        except OSError as exc:
            raise ResourceError("the kernel refused %s = %s: %s; nothing was persisted"
                                % (self.key, self._show(self.value), describe_oserror(exc))
                                ) from None
        now = " ".join((system.read_text(proc) or "").split())
        if not sf.same_value(now, self.value):
            raise ResourceError(
                "the kernel stored %s = %s when given %s; nothing was persisted"
                % (self.key, self._show(now), self._show(self.value)),
                hint="write the value as the kernel shows it (sysctl %s)" % self.key)
