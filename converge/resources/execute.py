"""execute: run a command.

Example::

    execute(["update-grub"], only_if=["test", "-d", "/boot/grub"])
    execute(["tar", "-xzf", "/tmp/app.tgz", "-C", "/opt"], creates="/opt/app/bin/app")
    execute("pg_dumpall > /var/backups/all.sql", shell=True, user="postgres",
            timeout=600, returns=[0, 1])
    execute(["systemctl", "daemon-reload"], action="nothing")    # run when notified

The command is an argument list, run without a shell; a string is run by /bin/sh
only with ``shell=True``, said explicitly. The run counts as a change (the resource
is reported updated: ``- execute update-grub``); its output is captured and shown
when it fails (an exit code not in ``returns``, or the ``timeout``, which kills the
command and everything it started). ``live=True`` also streams the output to the
agent's standard error as it comes (the terminal on a local run; over SSH the
controller prints each line after the host's name, escaped), except for a
``sensitive`` resource, whose output is never shown.

Not idempotent by itself: like Chef's execute, it runs on every converge unless
guarded. Say when it has nothing to do: ``creates`` (a path the command makes; if it
exists the run is ``(skipped due to creates)``), ``only_if`` / ``not_if`` (a command
or a callable: ``(skipped due to only_if)``), or ``action="nothing"`` with a
notification from the resource whose change should trigger it.
"""

from __future__ import annotations

import os
import shlex
from typing import Any, Dict, List, Optional, Tuple, Union

from ..errors import ResourceError
from . import _validate as v
from ._base import Change, Resource, Skipped, prop, short_hash


class Execute(Resource, type_name="execute"):
    """Run a command (an argument list, or a string with shell=True)."""

    actions = ("run",)

    command: Union[List[str], str] = prop(doc="An argument list such as ['update-grub'], or "
                                          "a shell string with shell=True.", identity=True,
                                          sensitive=True,
                                          type=Union[List[Union[str, int]], str])
    shell: bool = prop(False, doc="Run the command string with /bin/sh -c.")
    creates: Optional[str] = prop(None, doc="A path the command creates: when it exists, the "
                                  "command does not run (skipped due to creates).",
                                  coerce=v.path)
    cwd: Optional[str] = prop(None, doc="The working directory (must exist).", coerce=v.path)
    environment: Dict[str, str] = prop(factory=dict, doc="Variables added to the command's "
                                       "environment (LC_ALL=C is set unless given here).",
                                       sensitive=True, type=Optional[Dict[str, Any]])
    user: Optional[str] = prop(None, doc="Run as this user, a name or a uid: its uid, its "
                               "primary group and its supplementary groups, as a login "
                               "gets them (HOME, USER and LOGNAME follow). A uid with no "
                               "passwd entry needs group=.", coerce=v.account)
    returns: List[int] = prop(factory=lambda: [0], doc="Exit codes that mean success.",
                              type=Union[int, List[int]])
    timeout: Optional[float] = prop(None, doc="Seconds before the command (and everything it "
                                    "started) is killed and the resource fails.")
    live: bool = prop(False, doc="Also stream the output as it comes, to the agent's "
                      "standard error (the terminal of a local run; over SSH, the "
                      "controller's, each line after the host's name). Never for a "
                      "sensitive resource.")
    group: Optional[str] = prop(None, doc="Run with this group (a name or a gid) as the "
                                "primary group instead of the user's; with a uid that has no "
                                "passwd entry, the only group.", coerce=v.account)

    def normalise(self) -> None:
        if isinstance(self.command, str):
            if not self.shell:
                raise self.fail(
                    "command is a string, and strings are never run by a shell unless asked: "
                    "give an argument list such as %r, or shell=True" % (self.command.split(),))
            if not self.command.strip() or "\0" in self.command:
                raise self.fail("command must be a non-empty string without NUL characters")
            v.text(self.command, "command")
        elif isinstance(self.command, (list, tuple)) and self.command:
            if self.shell:
                raise self.fail("shell=True takes the command as one string, not a list")
            if not all(isinstance(a, (str, int)) and not isinstance(a, bool)
                       for a in self.command):
                raise self.fail("command arguments must be strings, not %r" % (self.command,))
            self.command = [str(a) for a in self.command]
            if any("\0" in a for a in self.command):
                raise self.fail("command arguments must not contain NUL characters")
            for argument in self.command:
                v.text(argument, "command argument")
        else:
            raise self.fail("command must be an argument list such as ['update-grub'], "
                            "not %r" % (self.command,))
        self.environment = _environment(self, self.environment)
        if self.group is not None and self.user is None:
            raise self.fail("group= needs user= (the command runs as root otherwise)")
        codes = [self.returns] if isinstance(self.returns, int) else self.returns
        if not codes:
            raise self.fail("returns must be an exit code or a list of them, such as [0, 1]")
        self.returns = [v.integer(c, "returns", 0, 255) for c in codes]
        if self.timeout is not None:
            if self.timeout <= 0:
                raise self.fail("timeout must be a positive number of seconds, not %r"
                                % (self.timeout,))
            self.timeout = float(self.timeout)

    @property
    def name(self) -> str:
        if isinstance(self.command, str):
            text = self.command
        else:
            text = " ".join(shlex.quote(str(a)) for a in self.command)
        if self.meta.sensitive:  # execute[(sensitive) 3f2a9c1b]: unique, shows nothing
            return "(sensitive) " + short_hash(text.encode("utf-8"))
        return text

    def argv(self) -> List[str]:
        if isinstance(self.command, str):  # normalise: a string exactly when shell=True
            return ["/bin/sh", "-c", self.command]
        return list(self.command)

    # -- target ----------------------------------------------------------------------

    def current(self, system: Any) -> Dict[str, Any]:
        if self.creates is not None:
            creates = self.creates
            if self.cwd and not creates.startswith("/"):
                creates = os.path.join(self.cwd, creates)
            if system.exists(creates):
                raise Skipped("creates")
        if self.cwd is not None and not system.is_dir(self.cwd):
            raise ResourceError("cwd %s is not a directory" % self.cwd)
        if self.user is not None:
            self._account(system)
        if self.live and self.meta.sensitive:
            self.warnings.append("live output not shown: the resource is sensitive")
        return {}

    def changes(self, current: Dict[str, Any]) -> List[Change]:
        return [Change("execute %s" % ("(sensitive)" if self.meta.sensitive else self.name))]

    def before(self, system: Any, current: Any, changes: List[Change]) -> Dict[str, Any]:
        """Journal hook: what a command did is unknown, so a rollback cannot undo it."""
        return {"irreversible": "what a command changed is not known"}

    def _account(self, system: Any) -> Tuple[str, str]:
        """(name, home) of ``user`` on the target; a failure when it cannot be run
        as (no such user; a uid without a passwd entry and no group=)."""
        assert self.user is not None
        entry = system.account(self.user)
        if self.group is not None and system.gid(self.group) is None:
            raise ResourceError("group '%s' does not exist on this machine" % self.group)
        if entry is not None:
            return entry[0], entry[3]
        if not self.user.isdigit():
            raise ResourceError("user '%s' does not exist on this machine" % self.user)
        if self.group is None:
            raise ResourceError(
                "uid %s has no entry in /etc/passwd on this machine, so it has no group "
                "to run with" % self.user,
                hint="add the user, or give group= (the command then runs with that group "
                     "only)")
        return self.user, "/"  # not root's HOME

    def apply(self, system: Any, changes: List[Change]) -> None:
        env = dict(self.environment)
        if self.user is not None:
            name, home = self._account(system)
            base = {"USER": name, "LOGNAME": name}
            if home:
                base["HOME"] = home
            env = dict(base, **env)
        done = system.run_long(self.argv(), env=env, cwd=self.cwd, timeout=self.timeout,
                               user=self.user, live=self.live and not self.meta.sensitive,
                               group=self.group)
        if done.returncode in self.returns:
            return
        expected = " or ".join(str(c) for c in self.returns)
        if self.meta.sensitive:
            raise ResourceError("the command exited %d, not %s (output not shown: sensitive)"
                                % (done.returncode, expected))
        output = done.output()
        raise ResourceError("the command exited %d, not %s" % (done.returncode, expected)
                            + ("; its output:\n" + _tail(output) if output else
                               " (and printed nothing)"))


def _environment(resource: Resource, value: Any) -> Dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise resource.fail("environment must be a dict such as {'HOME': '/root'}")
    out = {}
    for key, val in value.items():
        if not isinstance(key, str) or not key or "=" in key or "\0" in key:
            raise resource.fail("environment name %r is not a variable name" % (key,))
        if val is None or "\0" in str(val):
            raise resource.fail("environment %s must be a string without NUL characters" % key)
        out[key] = v.text(str(val), "environment %s" % key)
    return out


def _tail(output: str, lines: int = 40) -> str:
    """The last lines of the output: the end is where the error usually is."""
    parts = output.splitlines()
    if len(parts) <= lines:
        return output
    return "[... %d lines before ...]\n" % (len(parts) - lines) + "\n".join(parts[-lines:])
