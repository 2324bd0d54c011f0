"""Init systems behind the ``service`` resource (and ``oom_protect(service=...)``).

systemd: ``systemctl`` where systemd runs; where it does not (a container, a
chroot, a tree under a root directory), enable and disable still work offline,
through ``systemctl --root`` or, without systemctl, by making the unit's
``[Install]`` symlinks ourselves. sysvinit: the ``service`` command (or the
/etc/init.d script), ``update-rc.d`` (Debian) or ``chkconfig`` (RHEL) and the
rc?.d links. After a start or restart the service is checked to run (``status``,
``systemctl is-active``): an init script's exit code alone is not trusted.
Standard library only, Python 3.8.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Tuple

from ..errors import ResourceError
from ._base import REGISTRY, Pending
from ._validate import pattern

NAME = pattern(r"[A-Za-z0-9_][A-Za-z0-9:_.@\\-]*")  # fullmatch: "$" allows a final "\n"
UNIT_SUFFIXES = (".service", ".socket", ".timer", ".path", ".mount", ".target")
#: every unit file type (systemd_unit's unit_name ends in one)
UNIT_FILE_SUFFIXES = (".service", ".socket", ".timer", ".path", ".mount", ".automount",
                      ".target", ".slice", ".swap", ".device", ".scope")
UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system", "/lib/systemd/system",
             "/usr/lib/systemd/system")
RC_DIRS = ("/etc/rc%d.d", "/etc/rc.d/rc%d.d")
#: the verbs after which the service must be running
STARTS = ("start", "restart")
LSB_STATUS = {1: "dead, its pid file left behind", 2: "dead, its lock file left behind",
              3: "not running"}
# is-enabled states that mean "nothing to enable"
ENABLED = ("enabled", "enabled-runtime", "static", "indirect", "generated", "alias", "transient")


def unit_name(name: str) -> str:
    return name if name.endswith(UNIT_SUFFIXES) else name + ".service"


def script_name(name: str) -> str:
    return name[: -len(".service")] if name.endswith(".service") else name


def systemd_running(system: Any) -> bool:
    return bool(system.is_dir("/run/systemd/system"))


def unit_file(system: Any, unit: str) -> Optional[str]:
    for directory in UNIT_DIRS:
        if system.exists(directory + "/" + unit):
            return directory + "/" + unit
    return None


def detect(system: Any, name: str, init: Optional[str]) -> str:
    """'systemd' (running), 'systemd-offline' or 'sysvinit' for this service."""
    if init == "sysvinit":
        return "sysvinit"
    if systemd_running(system):
        return "systemd"
    if init == "systemd":
        return "systemd-offline"
    if system.exists("/etc/init.d/" + script_name(name)):
        return "sysvinit"
    if unit_file(system, unit_name(name)) is not None:
        return "systemd-offline"
    raise ResourceError(
        "no service %s on this machine: no systemd unit %s and no /etc/init.d/%s"
        % (name, unit_name(name), script_name(name)),
        hint="install the package that provides it first (declare the package before "
        "the service)")


def _refuse_root(system: Any, what: str) -> None:
    if system.root != "/":
        raise ResourceError("cannot %s under the root directory %s" % (what, system.root),
                            hint="services are converged on the machine or in a lab node")


def _checked(system: Any, argv: List[str], env: Optional[Dict[str, str]] = None) -> Any:
    result = system.run(argv, env=env, timeout=300)
    if not result.ok:
        raise ResourceError("%s failed (exit %d)%s" % (" ".join(argv), result.returncode,
                                                       ": " + result.output() if result.output()
                                                       else ""))
    return result


def _not_running(name: str, argv: List[str], said: str, status: str) -> ResourceError:
    """A start or restart that exited 0 but left the service stopped (chrony's init
    script prints 'chronyd failed!' and exits 0)."""
    said = " / ".join(line.strip() for line in said.splitlines() if line.strip())
    status = " / ".join(line.strip() for line in status.splitlines() if line.strip())
    return ResourceError(
        "%s did not start: `%s` exited 0, but %s%s" % (
            name, " ".join(argv), status, "; it said: " + said if said else ""),
        hint="the daemon stopped, or never started: its log, or `%s` run by hand, says why"
        % " ".join(argv))


# -- systemd ---------------------------------------------------------------------------

#: what must see the unit files as they are now: a service, a unit's own actions
RELOAD_BEFORE: Dict[str, Optional[Tuple[str, ...]]] = {
    "service": None,
    "systemd_unit": ("enable", "disable", "start", "stop", "restart", "reload"),
}


def is_unit_file(path: str) -> bool:
    """A unit file or a drop-in (NAME.d/*.conf) in one of systemd's unit directories."""
    folder, _, name = path.rpartition("/")
    if folder.endswith(".d") and name.endswith(".conf"):
        folder = folder.rpartition("/")[0]
    elif not name.endswith(UNIT_FILE_SUFFIXES):
        return False
    return folder in UNIT_DIRS


def daemon_reload() -> Pending:
    """``systemctl daemon-reload`` as work left for the engine (run once per run,
    before the next resource in RELOAD_BEFORE, or at the end)."""
    reload = REGISTRY["execute"](["systemctl", "daemon-reload"], timeout=300)
    reload.meta.action = "run"
    return Pending(reload, RELOAD_BEFORE)


def systemd_state(system: Any, unit: str, online: bool, need_active: bool) -> Dict[str, Any]:
    """is-enabled (and is-active where systemd runs)."""
    state: Dict[str, Any] = {"running": False}
    if online:
        argv = ["systemctl"]
    elif system.which("systemctl"):
        argv = ["systemctl", "--root=" + system.root]
    else:
        state["enabled"] = _links_state(system, unit)
        return state
    result = system.run(argv + ["is-enabled", "--", unit])
    text = result.stdout.strip().splitlines()
    if not text:
        raise ResourceError("no systemd unit %s here (%s)" % (unit, result.output()),
                            hint="install the package that provides it first")
    state["enabled"] = text[-1].strip()
    if online and need_active:
        state["running"] = system.run(["systemctl", "is-active", "--quiet", "--", unit]).ok
    return state


def systemd_act(system: Any, unit: str, verb: str, online: bool) -> None:
    """enable, disable, start, stop, restart, reload; after a start or a restart,
    check that the unit is active (systemctl returns before a simple service dies)."""
    if online:
        argv = ["systemctl", verb, "--", unit]
        said = _checked(system, argv).output()
        if verb in STARTS and not system.run(["systemctl", "is-active", "--quiet", "--",
                                              unit]).ok:
            status = system.run(["systemctl", "status", "--no-pager", "--lines=5", "--", unit])
            raise _not_running(unit, argv, said, "`systemctl status` says: %s"
                               % status.output().strip())
    elif system.which("systemctl"):
        _checked(system, ["systemctl", "--root=" + system.root, verb, "--", unit])
    else:
        _links_act(system, unit, verb)


def _install_links(system: Any, unit: str) -> Tuple[Optional[str], List[str]]:
    """The unit file and the symlinks its [Install] section asks for."""
    path = unit_file(system, unit)
    if path is None:
        raise ResourceError("no systemd unit %s here" % unit,
                            hint="install the package that provides it first")
    links, section = [], ""
    for raw in (system.read_text(path) or "").splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line
        elif section == "[Install]" and "=" in line:
            key, _, value = line.partition("=")
            suffix = {"WantedBy": ".wants", "RequiredBy": ".requires"}.get(key.strip())
            for target in value.split():
                if suffix:
                    links.append("/etc/systemd/system/%s%s/%s" % (target, suffix, unit))
                elif key.strip() == "Alias":
                    links.append("/etc/systemd/system/" + target)
    return path, links


def _links_state(system: Any, unit: str) -> str:
    path, links = _install_links(system, unit)
    if system.readlink("/etc/systemd/system/" + unit) == "/dev/null":
        return "masked"
    if not links:
        return "static"
    return "enabled" if all(system.readlink(link) for link in links) else "disabled"


def _links_act(system: Any, unit: str, verb: str) -> None:
    if verb not in ("enable", "disable"):
        raise ResourceError("cannot %s %s: systemd is not running on this machine (PID 1 is "
                            "not systemd), so units can only be enabled or disabled" % (verb, unit))
    path, links = _install_links(system, unit)
    for link in links:
        if verb == "enable" and system.readlink(link) is None:
            parent = link.rsplit("/", 1)[0]
            if not system.is_dir(parent):
                system.mkdir(parent, 0o755)
            system.symlink(path, link)
        elif verb == "disable" and system.readlink(link) is not None:
            system.remove(link)


# -- sysvinit --------------------------------------------------------------------------

def rc_links(system: Any, name: str) -> Dict[str, List[str]]:
    """The S (start) and K (kill) links of a script in runlevels 2-5."""
    link = re.compile(r"^([SK])\d*" + re.escape(name) + "$")
    found: Dict[str, List[str]] = {"S": [], "K": []}
    for template in RC_DIRS:
        for level in (2, 3, 4, 5):
            directory = template % level
            for entry in system.listdir(directory):
                match = link.match(entry)
                if match:
                    found[match.group(1)].append(directory + "/" + entry)
    return found


def sysv_running(system: Any, name: str) -> bool:
    """The LSB status exit code: 0 runs, 1-3 does not; anything else is unknown."""
    _refuse_root(system, "run /etc/init.d/%s status" % name)
    result = system.run(_sysv_argv(system, name, "status"), timeout=60)
    if result.returncode == 0:
        return True
    if result.returncode in (1, 2, 3):
        return False
    raise ResourceError("cannot tell whether %s runs: its status command exited %d%s"
                        % (name, result.returncode, (": " + result.output())
                           if result.output() else ""),
                        hint="an init script must answer 'status' as the LSB says (0: running, "
                        "3: stopped)")


def sysv_act(system: Any, name: str, verb: str) -> None:
    _refuse_root(system, "%s service %s" % (verb, name))
    if verb in ("enable", "disable"):
        if system.which("update-rc.d"):
            if verb == "enable" and not any(rc_links(system, name).values()):
                _checked(system, ["update-rc.d", name, "defaults"])
            _checked(system, ["update-rc.d", name, verb])
        elif system.which("chkconfig"):
            if verb == "enable":
                _checked(system, ["chkconfig", "--add", name])
            _checked(system, ["chkconfig", name, "on" if verb == "enable" else "off"])
        else:
            raise ResourceError("cannot %s %s: neither update-rc.d nor chkconfig is installed"
                                % (verb, name))
        return
    argv = _sysv_argv(system, name, verb)
    said = _checked(system, argv).output().strip()
    if verb in STARTS:
        status = system.run(_sysv_argv(system, name, "status"), timeout=60)
        if status.returncode != 0:
            raise _not_running(name, argv, said, "its status command exited %d%s" % (
                status.returncode, " (%s)" % LSB_STATUS[status.returncode]
                if status.returncode in LSB_STATUS else "")
                + (": " + status.output().strip() if status.output().strip() else ""))


def _sysv_argv(system: Any, name: str, verb: str) -> List[str]:
    if system.which("service"):
        return ["service", name, verb]
    return ["/etc/init.d/" + name, verb]
