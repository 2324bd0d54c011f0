"""service: a system service enabled at boot and running, or stopped, or disabled.

Example::

    service("sysstat")                                 # enable, then start
    service("telnetd", action=["stop", "disable"])
    chrony = service("chrony")
    file("/etc/chrony/chrony.conf", content="pool 2.debian.pool.ntp.org iburst\\n",
         notifies=chrony.restart)

systemd (systemctl) where systemd runs; sysvinit (the ``service`` command, the
/etc/init.d script, update-rc.d or chkconfig) where it does not and the service
has an init script. Where systemd is installed but not running (containers,
images being built), enable and disable still work offline, with ``systemctl
--root`` or the unit's ``[Install]`` symlinks; start and stop then fail, saying
why. The state is read every time: ``systemctl is-enabled`` and ``is-active``,
the init script's ``status`` exit code, the rc?.d links. After a start or a
restart the service is checked to run (``status``, ``systemctl is-active``), as
an init script may exit 0 when its daemon fails (Debian's chrony in a container
prints ``chronyd failed!`` and exits 0): the resource then fails with the
script's output and what ``status`` said. ``restart`` and
``reload`` are meant as notification targets: run by ``notifies=svc.restart``
once, at the end of the run, and only when something changed. A stopped service
has nothing to reload, so ``reload`` leaves it stopped.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from ..errors import ResourceError
from . import _init_systems as init_sys
from ._base import Change, Resource, prop
from ._validate import quoted

INITS = ("systemd", "sysvinit")
#: what a rollback runs to undo each action
UNDO = {"enable": "disable", "disable": "enable", "start": "stop", "stop": "start"}


class Service(Resource, type_name="service"):
    """Enable, start, stop, disable, restart or reload a service."""

    actions = ("enable", "start", "stop", "disable")
    notify_only = ("restart", "reload")
    default_action = ("enable", "start")

    service_name: str = prop(doc="The service: a systemd unit name (.service may be left "
                             "out) or an /etc/init.d script name.", identity=True)
    init: Optional[str] = prop(None, doc="Force the init system. Unset: "
                               "systemd when it runs, else the init script when there is one, "
                               "else the systemd unit (offline).", choices=INITS)

    def normalise(self) -> None:
        name = self.service_name
        if not init_sys.NAME.fullmatch(name) or len(name) > 200:
            raise self.fail("%s is not a valid service name (letters, digits and "
                            "':', '_', '.', '@', '-', starting with a letter or digit)"
                            % quoted(name))

    # -- target ----------------------------------------------------------------------

    def current(self, system: Any) -> Dict[str, Any]:
        kind = init_sys.detect(system, self.service_name, self.init)
        action = self.action
        if kind == "sysvinit":
            name = init_sys.script_name(self.service_name)
            links = init_sys.rc_links(system, name)
            state: Dict[str, Any] = {"enabled": "enabled" if links["S"] else "disabled"}
            if action in ("start", "stop", "restart", "reload"):
                state["running"] = init_sys.sysv_running(system, name)
        else:
            online = kind == "systemd"
            if not online and action in ("start", "restart", "reload"):
                raise ResourceError(
                    "cannot %s %s: systemd is not running on this machine (PID 1 is not "
                    "systemd); units can only be enabled or disabled here"
                    % (action, init_sys.unit_name(self.service_name)),
                    hint="boot with systemd, or give init='sysvinit' if the service has an "
                    "/etc/init.d script")
            state = init_sys.systemd_state(system, init_sys.unit_name(self.service_name),
                                           online, action in ("start", "stop", "restart",
                                                              "reload"))
            if action == "enable" and state["enabled"] in ("static", "indirect", "generated"):
                self.warnings.append(
                    "%s is %s (its unit file has no [Install] section to enable); it starts "
                    "only when another unit or a socket asks for it"
                    % (init_sys.unit_name(self.service_name), state["enabled"]))
        state["init"] = kind
        return state

    def changes(self, current: Dict[str, Any]) -> List[Change]:
        action, enabled, running = self.action, current["enabled"], current.get("running")
        me = self.identity
        if action in ("enable", "disable") and enabled == "masked":
            raise ResourceError("%s is masked, so it can neither be enabled nor started"
                                % init_sys.unit_name(self.service_name),
                                hint="unmask it first: systemctl unmask %s"
                                % init_sys.unit_name(self.service_name))
        if action == "enable" and enabled not in init_sys.ENABLED:
            return [Change("enable %s" % me, data="enable")]
        if action == "disable" and enabled in ("enabled", "enabled-runtime"):
            return [Change("disable %s" % me, data="disable")]
        if action == "start" and not running:
            return [Change("start %s" % me, data="start")]
        if action == "stop" and running:
            return [Change("stop %s" % me, data="stop")]
        if action == "restart":
            return [Change("restart %s" % me if running else "start %s" % me,
                           data="restart" if running else "start")]
        if action == "reload" and running:
            return [Change("reload %s" % me, data="reload")]
        return []

    def before(self, system: Any, current: Dict[str, Any], changes: List[Change]
               ) -> Dict[str, Any]:
        """Journal hook: enable, disable, start and stop are undone by their
        opposite; a restart or reload cannot be undone."""
        if self.action not in UNDO:
            return {"irreversible": "a %s cannot be undone" % self.action}
        return {"service_name": self.service_name, "init": self.init,
                "undo": UNDO[self.action]}

    @classmethod
    def undo(cls, before: Dict[str, Any], system: Any) -> List[Tuple[str, str, Dict[str, Any]]]:
        return [("service", before["undo"], {"service_name": before["service_name"],
                                             "init": before["init"]})]

    def apply(self, system: Any, changes: List[Change]) -> None:
        kind = init_sys.detect(system, self.service_name, self.init)
        for change in changes:
            if kind == "sysvinit":
                init_sys.sysv_act(system, init_sys.script_name(self.service_name), change.data)
            else:
                init_sys.systemd_act(system, init_sys.unit_name(self.service_name), change.data,
                                     kind == "systemd")
