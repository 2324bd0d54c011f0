"""oom_protect: shield processes from the OOM killer (or offer them to it).

Example::

    oom_protect("sshd", pattern="^/usr/sbin/sshd|sshd: /usr/sbin/sshd")
    oom_protect("postgres", pattern="^postgres: ", user="postgres", score_adj=-500)
    oom_protect("chrony", service="chrony", score_adj=-500)
    oom_protect("batch", pids=[4242], score_adj=500, persist=False)

The seed's ``pgrep -f /usr/sbin/sshd | while read PID; do echo -17 >
/proc/$PID/oom_adj; done``, done properly: sets /proc/PID/oom_score_adj
(-1000..1000; -1000 means never killed) of every process whose full command line
matches ``pattern`` (a regular expression, as ``pgrep -f`` matches), of the given
``pids``, or of a service's processes (its systemd cgroup, or a sysvinit pid
file). The converge agent and its ancestors (the shell, sudo or sshd session that
started it) are never touched. Any user can give a process any command line
(``exec -a "/usr/sbin/sshd -D" ...``), so a pattern adjusts only processes that
run as root, or as one of the users named in ``user`` (every uid of the process,
real, effective, saved and filesystem, must be one of theirs); other matching
processes are left alone, with a warning, and the cron entry that persists the
setting applies the same rule. Each change line names the process's user. Old
kernels without oom_score_adj get the legacy oom_adj, scaled to -17..15. No
matching process is a warning, not a failure.

``persist`` keeps the setting across restarts: for a service, a systemd drop-in
with ``OOMScoreAdjust=`` (applied at the service's next start; ``systemctl
daemon-reload`` runs once in the run, as after a systemd_unit); for a pattern, an
/etc/cron.d entry that re-applies it every minute, as the seed does (pids are
never persisted). Mind OpenSSH: each login session gets the oom_score_adj its
listener started with, so ``OOMScoreAdjust=-1000`` on the ssh service makes every
session, and all a user starts from it, immune to the OOM killer; protect the
listener with ``pattern`` instead. Lowering a score below 0 needs CAP_SYS_RESOURCE,
which root lacks in many containers: the resource then fails and says so.
"""

from __future__ import annotations

import errno
from typing import Any, Dict, List, NamedTuple, Optional, Tuple, Union

from ..agent import managed
from ..errors import ResourceError
from . import _init_systems as init_sys
from . import _oom
from . import _validate as v
from ._base import Change, Pending, Resource, prop

_LABEL = v.pattern(r"[A-Za-z0-9_-]{1,64}")
SSH_SERVICES = ("ssh", "sshd", "ssh.service", "sshd.service", "openssh", "openssh-server")


class Score(NamedTuple):
    """Change.data of one process's adjustment (the persisting file's change
    carries a managed.Write)."""

    pid: int
    file: str  # /proc/PID/oom_score_adj, or the legacy oom_adj
    want: int  # on that file's scale
    shown: str  # the command line, cut for messages


class OomProtect(Resource, type_name="oom_protect"):
    """Set the OOM-killer adjustment (oom_score_adj) of matching processes."""

    actions = ("apply",)

    name: str = prop(doc="Names this protection (letters, digits, '_', '-'); the cron "
                     "file is /etc/cron.d/converge-oom-NAME.", identity=True)
    pattern: Optional[str] = prop(None, doc="Regular expression searched in each full "
                                  "command line, as pgrep -f does; only processes of root "
                                  "and of the users in user= are adjusted.")
    pids: Optional[List[int]] = prop(None, doc="Process ids to adjust (never persisted).",
                                     type=Union[int, List[int], None])
    service: Optional[str] = prop(None, doc="A service whose processes to adjust (systemd "
                                  "unit or init script name).")
    score_adj: int = prop(-1000, doc="oom_score_adj, -1000 (never killed) to 1000 (killed "
                          "first).", coerce=v.between(-1000, 1000))
    persist: bool = prop(True, doc="Keep it across restarts: a systemd drop-in for a "
                         "service, an /etc/cron.d entry for a pattern.")
    user: Union[str, List[str], None] = prop(None, doc="With pattern: the users (names or "
                                             "uids, one or a list) whose processes may be "
                                             "adjusted besides root's. Any user can give a "
                                             "process any command line, so other users' "
                                             "matching processes are left alone.",
                                             type=Union[str, int, List[Union[str, int]],
                                                        None])

    def normalise(self) -> None:
        if not _LABEL.fullmatch(self.name):
            raise self.fail("name %s may only hold letters, digits, '_' and '-' (it names "
                            "the file /etc/cron.d/converge-oom-NAME)" % v.quoted(self.name))
        given = [p for p in ("pattern", "pids", "service") if getattr(self, p) is not None]
        if len(given) != 1:
            raise self.fail("give exactly one of pattern, pids or service%s"
                            % (" (got %s)" % " and ".join(given) if given else ""))
        if self.pattern is not None:
            if not self.pattern or \
                    "\n" in self.pattern or "\0" in self.pattern:
                raise self.fail("pattern must be a one-line, non-empty regular expression")
            v.text(self.pattern, "pattern", one_line=True)
            v.regex(self.pattern, "pattern")
        if self.user is not None:
            if self.pattern is None:
                raise self.fail("user= applies to pattern= only (pids and a service's "
                                "processes are adjusted whoever runs them)")
            users = self.user if isinstance(self.user, (list, tuple)) else [self.user]
            if not users:
                raise self.fail("user must name at least one user, or be left out (root "
                                "only)")
            checked = [v.account(u, "user") for u in users]
            self.user = sorted({str(u) for u in checked if u is not None})
        if self.pids is not None:
            pids = self.pids if isinstance(self.pids, (list, tuple)) else [self.pids]
            self.pids = sorted({v.integer(p, "pid", 1, 2 ** 22) for p in pids})
        if self.service is not None and not init_sys.NAME.fullmatch(self.service):
            raise self.fail("%s is not a valid service name" % v.quoted(self.service))

    # -- target ----------------------------------------------------------------------

    def _uids(self, system: Any) -> Dict[int, str]:
        """uid -> name of root and the users of ``user``, on the target."""
        uids = {0: "root"}
        for user in self.user or []:
            uid = system.uid(user)
            if uid is None:
                raise ResourceError("user '%s' does not exist on this machine" % user)
            uids[int(uid)] = system.user_name(int(uid))
        return uids

    def _owners(self, system: Any) -> str:
        """'root', or 'root, alice': whose processes a pattern may adjust."""
        return ", ".join(name for _, name in sorted(self._uids(system).items()))

    def _targets(self, system: Any) -> List[int]:
        if self.pattern is not None:
            uids = self._uids(system)
            found, others = _oom.matching(system, self.pattern, set(uids))
            what = "no process of %s matches pattern '%s'" % (self._owners(system),
                                                              self.pattern)
            if others:
                names = sorted({system.user_name(u) for theirs in others.values()
                                for u in theirs - set(uids)})
                self.warnings.append(
                    "%d process%s matching pattern '%s' run%s as %s, not as %s: left alone "
                    "(any user can name a process anything); name the user in user= to "
                    "include them" % (len(others), "" if len(others) == 1 else "es",
                                      self.pattern, "s" if len(others) == 1 else "",
                                      ", ".join(names), self._owners(system)))
        elif self.pids is not None:
            found = [p for p in self.pids if system.exists("/proc/%d" % p)]
            gone = [str(p) for p in self.pids if p not in found]
            what = "no process with pid %s" % ", ".join(gone)
            if gone and found:
                self.warnings.append(what + " (gone?)")
        elif init_sys.systemd_running(system):
            found = _oom.in_unit(system, init_sys.unit_name(str(self.service)))
            what = "service %s has no running process" % self.service
        else:
            found = _oom.from_pidfile(system, init_sys.script_name(str(self.service)))
            what = "service %s has no running process (no live pid in /run/%s.pid)" % (
                self.service, init_sys.script_name(str(self.service)))
        if not found:
            self.warnings.append(what + "; nothing to adjust now")
        return found

    def _persistence(self, system: Any) -> Optional[Dict[str, Any]]:
        """The file that keeps the setting, its wanted content (None: absent)."""
        if self.pids is not None:
            return None
        if self.service is not None:
            unit = init_sys.unit_name(self.service)
            if not init_sys.systemd_running(system) and init_sys.unit_file(system, unit) is None:
                if self.persist:
                    self.warnings.append("service %s has no systemd unit, so its setting is not "
                                         "persisted; use pattern= to re-apply it from cron"
                                         % self.service)
                return None
            if self.persist and self.score_adj < 0 and self.service in SSH_SERVICES:
                self.warnings.append(
                    "OpenSSH gives every login session the oom_score_adj its listener started "
                    "with: OOMScoreAdjust=%d on %s makes each session, and everything started "
                    "from it, shielded from the OOM killer too; protect the listener with "
                    "pattern= instead" % (self.score_adj, unit))
            return {"path": "/etc/systemd/system/%s.d/converge-oom-protect.conf" % unit,
                    "want": ("# converge: %s\n[Service]\nOOMScoreAdjust=%d\n"
                             % (self.identity, self.score_adj)) if self.persist else None,
                    "what": "systemd drop-in", "reload": True}
        python = system.which("python3") or "/usr/bin/python3"
        owners = self._owners(system)
        return {"path": "/etc/cron.d/converge-oom-" + self.name,
                "want": ("# converge: %s: oom_score_adj %d for processes of %s matching %s\n%s"
                         % (self.identity, self.score_adj, owners, self.pattern,
                            _oom.cron_line(python, self.score_adj, str(self.pattern),
                                           set(self._uids(system)))))
                if self.persist else None,
                "what": "cron entry", "reload": False, "owners": owners}

    def current(self, system: Any) -> Dict[str, Any]:
        processes = {}
        for pid in self._targets(system):
            info = _oom.score(system, pid)
            if info is not None:
                info["cmdline"] = _oom.cmdline(system, pid) or "?"
                info["user"] = "+".join(system.user_name(u) for u in
                                        sorted(_oom.owners(system, pid) or ()))
                processes[pid] = info
        keep = self._persistence(system)
        if keep is not None:
            keep["have"] = system.read_text(keep["path"])
        return {"processes": processes, "persist": keep}

    def changes(self, current: Dict[str, Any]) -> List[Change]:
        out = []
        for pid, info in sorted(current["processes"].items()):
            want = _oom.score_to_legacy(self.score_adj) if info["legacy"] else self.score_adj
            if info["value"] != want:
                shown = info["cmdline"] if len(info["cmdline"]) <= 60 else \
                    info["cmdline"][:57] + "..."
                out.append(Change("set %s of pid %d (%s; user %s) from %d to %d" % (
                    info["file"].rsplit("/", 1)[1], pid, shown, info.get("user", "?"),
                    info["value"], want),
                    data=Score(pid, info["file"], want, shown)))
        keep = current["persist"]
        if keep is not None and keep["want"] != keep["have"]:
            if keep["want"] is None:
                text = "remove %s %s (persist is off)" % (keep["what"], keep["path"])
            else:
                text = "%s %s %s to apply oom_score_adj %d%s" % (
                    "create" if keep["have"] is None else "update", keep["what"], keep["path"],
                    self.score_adj, "" if keep["reload"] else
                    " every minute to processes of %s" % keep["owners"])
            want = keep["want"]
            out.append(Change(text, data=managed.Write(
                keep["path"], None if want is None else want.encode("utf-8"), 0o644,
                parents=0o755)))
        return out

    def before(self, system: Any, current: Dict[str, Any], changes: List[Change]
               ) -> Dict[str, Any]:
        """Journal hook: each adjusted process's previous score and command line;
        the persisting cron file or drop-in is kept whole by the journal."""
        out: Dict[str, Any] = {"name": self.name, "pids": {}}
        for change in changes:
            if isinstance(change.data, Score):
                info = current["processes"][change.data.pid]
                out["pids"][str(change.data.pid)] = {"score": info["score"],
                                                     "cmdline": info["cmdline"]}
            else:
                out.update(managed.journal_files(system, change.data.path))
        return out

    @classmethod
    def undo(cls, before: Dict[str, Any], system: Any) -> List[Tuple[str, str, Dict[str, Any]]]:
        """Rollback: put the previous scores back, on processes that still run the
        same command line (a pid reused since is left alone)."""
        by_score: Dict[int, List[int]] = {}
        for pid, info in sorted(before["pids"].items()):
            if _oom.cmdline(system, int(pid)) == info["cmdline"]:
                by_score.setdefault(info["score"], []).append(int(pid))
        return [("oom_protect", "apply", {"name": before["name"], "pids": pids,
                                          "score_adj": score, "persist": False})
                for score, pids in sorted(by_score.items())]

    def apply(self, system: Any, changes: List[Change]) -> None:
        refused = []
        for change in changes:
            if not isinstance(change.data, Score):
                continue
            adjust = change.data
            try:
                system.write_in_place(adjust.file, str(adjust.want).encode())
            except OSError as exc:
                if exc.errno in (errno.EACCES, errno.EPERM):
                    refused.append("pid %d (%s)" % (adjust.pid, adjust.shown))
                elif exc.errno not in (errno.ESRCH, errno.ENOENT):
                    raise  # ESRCH, ENOENT: the process ended meanwhile
        if refused:
            raise ResourceError(
                "the kernel refused oom_score_adj %d for %s (Permission denied, EACCES): "
                "setting it below a process's oom_score_adj_min (normally 0) needs "
                "CAP_SYS_RESOURCE, and this agent runs without it, as in many containers and "
                "some VMs; nothing was persisted" % (self.score_adj, ", ".join(refused)),
                hint="run converge where root has CAP_SYS_RESOURCE (a container needs "
                "--cap-add SYS_RESOURCE), or use a score_adj of 0 or more")
        for change in changes:
            if isinstance(change.data, managed.Write):
                managed.write(system, change.data)

    def leaves(self, system: Any, current: Dict[str, Any], changes: List[Change]
               ) -> List[Pending]:
        """A changed drop-in: systemctl daemon-reload, once per run (see systemd_unit)."""
        if self.service is not None and any(isinstance(c.data, managed.Write)
                                            for c in changes) and \
                init_sys.systemd_running(system):
            return [init_sys.daemon_reload()]
        return []
