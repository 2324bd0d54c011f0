"""systemd_unit: a unit file in /etc/systemd/system, enabled, started, or gone.

Example::

    systemd_unit("hello.service", {
        "Unit": {"Description": "Say hello"},
        "Service": {"ExecStart": "/usr/bin/sleep infinity", "Environment": ["A=1", "B=2"]},
        "Install": {"WantedBy": "multi-user.target"},
    }, action=["create", "enable", "start"])
    systemd_unit("backup.timer", "[Timer]\\nOnCalendar=daily\\n", action="create")
    systemd_unit("old.service", action=["stop", "disable", "delete"])

``content`` is the unit's text, or a dict of sections rendered ``Key=Value`` in
the order given (a list value repeats the key, True/False become yes/no).
``create`` writes /etc/systemd/system/<unit_name> atomically (only when it
differs: an unchanged unit keeps its mtime), checks it with ``systemd-analyze
verify`` when that is installed (a unit it refuses is put back as it was and the
resource fails with its message). With ``triggers_reload``, where systemd runs,
a changed or deleted unit file leaves ``systemctl daemon-reload`` to the engine,
which runs it once however many units changed (``execute[systemctl
daemon-reload]``, notified by them), before the first later ``service`` or
systemd_unit enable/disable/start/stop/restart/reload, or at the end of the run.
``delete`` removes the file.
``enable`` and ``disable`` work offline through ``systemctl --root`` where systemd
is not running (containers, images), as ``service`` does; ``start``, ``stop``,
``restart`` and ``reload`` need a running systemd. Rollback restores the unit
file, and undoes enable, disable, start and stop by their opposite; a restart or
reload cannot be undone.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Tuple, Union

from ..agent import managed
from ..errors import ResourceError
from . import _init_systems as init_sys
from . import _validate as v
from ._base import Change, Pending, Resource, prop

DIR = "/etc/systemd/system"
SUFFIXES = init_sys.UNIT_FILE_SUFFIXES
KEY = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
UNDO = {"enable": "disable", "disable": "enable", "start": "stop", "stop": "start"}


def render(sections: Dict[str, Any]) -> str:
    """A dict of sections as unit text: [Section] then Key=Value lines."""
    blocks = []
    for section, entries in sections.items():
        lines = ["[%s]" % section]
        for key, value in entries.items():
            for item in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(item, bool):
                    item = "yes" if item else "no"
                lines.append("%s=%s" % (key, item))
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)


class SystemdUnit(Resource, type_name="systemd_unit"):
    """Write a systemd unit file, and enable, start, stop, disable or delete the unit."""

    actions = ("create", "delete", "enable", "disable", "start", "stop")
    notify_only = ("restart", "reload")

    unit_name: str = prop(doc="The unit's file name, with its type: app.service, "
                          "backup.timer...", identity=True)
    content: Union[str, Dict[str, Any], None] = prop(
        None, doc="The unit text, or a dict of sections {'Service': {'ExecStart': ...}} "
        "rendered in the order given (a list value repeats the key).",
        required_for=("create",))
    triggers_reload: bool = prop(True, doc="Have systemctl daemon-reload run after the unit "
                                 "file changed (where systemd runs): once per run, before "
                                 "the next service or unit action that needs it.")

    def normalise(self) -> None:
        name = self.unit_name
        if not init_sys.NAME.fullmatch(name) or not name.endswith(SUFFIXES) or len(name) > 255:
            raise self.fail("unit_name %s is not a unit file name such as app.service (letters, "
                            "digits, ':', '_', '.', '@', '-', ending in a unit type: %s)"
                            % (v.quoted(name), ", ".join(SUFFIXES)))
        if isinstance(self.content, dict):
            self.content = render(self._checked_sections(self.content))
        elif self.content is not None:
            self.content = v.text(self.content, "content")
            if self.content and not self.content.endswith("\n"):
                self.content += "\n"

    def _checked_sections(self, sections: Dict[str, Any]) -> Dict[str, Any]:
        for section, entries in sections.items():
            if not isinstance(section, str) or not KEY.fullmatch(section.replace(" ", "")):
                raise self.fail("section name %s is not valid (letters, digits, '-', '_')"
                                % v.quoted(section))
            if not isinstance(entries, dict):
                raise self.fail("section %s must be a dict of Key: value, not %r"
                                % (section, entries))
            for key, value in entries.items():
                if not isinstance(key, str) or not KEY.fullmatch(key):
                    raise self.fail("[%s] key %s is not valid (letters, digits, '-', '_')"
                                    % (section, v.quoted(key)))
                for item in value if isinstance(value, (list, tuple)) else [value]:
                    if not isinstance(item, (str, int, float, bool)):
                        raise self.fail("[%s] %s: %r is not a string, number or bool"
                                        % (section, key, item))
                    v.text(str(item), "[%s] %s" % (section, key), one_line=True)
        return sections

    @property
    def text(self) -> str:
        """The unit text (content is rendered to a str at construction)."""
        return str(self.content or "")

    @property
    def path(self) -> str:
        return "%s/%s" % (DIR, self.unit_name)

    # -- target ----------------------------------------------------------------------

    def current(self, system: Any) -> Dict[str, Any]:
        state: Dict[str, Any] = {"file": system.read_text(self.path),
                                 "online": init_sys.systemd_running(system)}
        if self.action in ("create", "delete"):
            return state
        if not state["online"] and self.action in ("start", "stop", "restart", "reload"):
            raise ResourceError("cannot %s %s: systemd is not running on this machine (PID 1 "
                                "is not systemd); units can only be enabled or disabled here"
                                % (self.action, self.unit_name))
        if state["file"] is None and init_sys.unit_file(system, self.unit_name) is None:
            state.update(enabled="disabled", running=False)  # a create not applied yet (plan)
            return state
        state.update(init_sys.systemd_state(system, self.unit_name, state["online"],
                                            self.action in ("start", "stop", "restart",
                                                            "reload")))
        return state

    def changes(self, current: Dict[str, Any]) -> List[Change]:
        action, old, me = self.action, current["file"], self.path
        if action == "create":
            if old == self.content:
                return []
            text = ("create %s" % me) if old is None else ("update content in %s" % me)
            return [managed.change(self, text, managed.Write(me, self.text.encode("utf-8"), 0o644),
                                   None if old is None else old.encode("utf-8"))]
        if action == "delete":
            return [Change("delete %s" % me, data=managed.Write(me, None))] \
                if old is not None else []
        enabled, running = current.get("enabled"), current.get("running")
        unit = self.identity
        if action == "enable" and enabled not in init_sys.ENABLED:
            return [Change("enable %s" % unit, data="enable")]
        if action == "disable" and enabled in ("enabled", "enabled-runtime"):
            return [Change("disable %s" % unit, data="disable")]
        if action == "start" and not running:
            return [Change("start %s" % unit, data="start")]
        if action == "stop" and running:
            return [Change("stop %s" % unit, data="stop")]
        if action in ("restart", "reload") and (running or action == "restart"):
            return [Change("%s %s" % (action, unit), data=action)]
        return []

    # -- journal and rollback -------------------------------------------------------------

    def before(self, system: Any, current: Dict[str, Any], changes: List[Change]
               ) -> Dict[str, Any]:
        """Journal hook: the unit file is kept whole; enable, disable, start and
        stop are undone by their opposite."""
        if self.action in ("create", "delete"):
            return managed.journal_files(system, self.path)
        if self.action not in UNDO:
            return {"irreversible": "a %s cannot be undone" % self.action}
        return {"unit_name": self.unit_name, "undo": UNDO[self.action]}

    @classmethod
    def undo(cls, before: Dict[str, Any], system: Any) -> List[Tuple[str, str, Dict[str, Any]]]:
        return [("systemd_unit", before["undo"], {"unit_name": before["unit_name"]})]

    # -- acting --------------------------------------------------------------------------

    def apply(self, system: Any, changes: List[Change]) -> None:
        for change in changes:
            if isinstance(change.data, managed.Write) and change.data.content is None:
                managed.write(system, change.data)
            elif isinstance(change.data, managed.Write):
                self._write(system, change.data, system.read_bytes(self.path))
            else:
                init_sys.systemd_act(system, self.unit_name, change.data,
                                     init_sys.systemd_running(system))

    def _write(self, system: Any, want: managed.Write, old: Optional[bytes]) -> None:
        managed.write(system, want)
        if system.which("systemd-analyze"):
            done = system.run(["systemd-analyze", "verify", "--man=no", "--",
                               system.real(self.path)],
                              timeout=120)
            if not done.ok:
                managed.write(system, want._replace(content=old, mode=None))
                raise ResourceError("systemd-analyze verify refused %s (it was put back as it "
                                    "was): %s" % (self.unit_name, done.output() or
                                                  "exit %d" % done.returncode))

    def leaves(self, system: Any, current: Dict[str, Any], changes: List[Change]
               ) -> List[Pending]:
        """A written or removed unit file: systemctl daemon-reload, once per run."""
        if self.triggers_reload and current.get("online") and \
                any(isinstance(c.data, managed.Write) for c in changes):
            return [init_sys.daemon_reload()]
        return []
