"""Package managers behind the ``package`` resource: apt/dpkg, dnf/yum/rpm, apk.

A backend reads the state of many packages in one call (``state``) and acts on
many in one transaction (``act``), which is what lets consecutive ``package``
resources share one ``apt-get install``. Names and versions reach commands as
separate arguments, already validated against the package-name grammar (no
leading ``-``), so they can never become options or shell syntax.
Standard library only, Python 3.8.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..agent.facts import FAMILIES, os_release
from ..errors import ResourceError
from . import _dpkg_status as dpkg_status
from ._validate import pattern

# Debian policy: lowercase letters, digits, + - . (at least two characters); apt
# accepts an architecture qualifier. RPM and apk names also allow capitals and '_'.
# Match them with fullmatch: "$" would also match before a final newline.
DEB_NAME = pattern(r"[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?")
ANY_NAME = pattern(r"[A-Za-z0-9_][A-Za-z0-9_+.-]*(:[a-z0-9-]+)?")
# epoch:upstream-revision (Debian), version-release (RPM), version-rN (apk).
VERSION = pattern(r"([0-9]+:)?[0-9A-Za-z][A-Za-z0-9.+~^_-]*")

PROVIDERS = ("apt", "dnf", "yum", "apk")

# What a backend knows about one package.
#   installed: the installed version or None; config_files: removed, config kept
#   broken: the version of a half-installed or half-configured package
#   candidate: the version an install would get (None: not available, or unknown)
#   available: every version the repositories offer, or None when not known
#   exact_pins: a pin must equal the version (apt); else '1.2' also pins '1.2-3.el9'
State = Dict[str, Any]


def _absent() -> State:
    return {"installed": None, "broken": None, "config_files": False, "candidate": None,
            "available": None, "exact_pins": False}


MISSING = "missing"  # Backend.state: candidates only for packages not installed


class Backend:
    """One package manager; subclasses fill in the commands."""

    name = ""
    tool = ""  # the program that must exist

    def state(self, system: Any, names: Sequence[str], candidates: Any) -> Dict[str, State]:
        """Installed versions; with ``candidates`` also what the repositories offer
        (True: for every name; MISSING: only for names not installed, which is all
        an install without a version needs; a backend may read more)."""
        raise NotImplementedError

    def command(self, action: str, specs: Sequence[Tuple[str, Optional[str]]]) -> List[str]:
        raise NotImplementedError

    def env(self) -> Dict[str, str]:
        return {}

    def act(self, system: Any, action: str, specs: Sequence[Tuple[str, Optional[str]]]) -> Any:
        """Run one transaction: install/upgrade/remove/purge every (name, version)."""
        if system.root != "/":
            raise ResourceError(
                "cannot %s packages under the root directory %s: %s acts on the "
                "machine itself" % (action, system.root, self.tool),
                hint="converge packages on the machine (or in a lab node), not in a tree")
        return system.run(self.command(action, specs), env=self.env(), timeout=3600)

    def explain(self, action: str, names: Sequence[str], result: Any) -> ResourceError:
        """A failed transaction as a message a person can act on."""
        output = result.output()
        lines = output.splitlines()[-12:]
        return ResourceError(
            "%s %s failed (exit %d)%s" % (self.tool, action, result.returncode,
                                          (":\n" + "\n".join(lines)) if lines else ""),
            hint="the command was: %s" % " ".join(self.command(action, [(n, None) for n in names])))


class Apt(Backend):
    """Debian and Ubuntu: dpkg's status file for the state (read in place, as
    dpkg-query would report it: see _dpkg_status.py), apt-cache for candidates."""

    name, tool = "apt", "apt-get"
    _STANZA = pattern(r"^(\S+):$")
    _ROW = pattern(r"^ (?:\*\*\*| {3}) (\S+) -?\d+$")

    def state(self, system: Any, names: Sequence[str], candidates: Any) -> Dict[str, State]:
        try:
            status, updates = dpkg_status.read(system)
        except OSError as exc:
            raise ResourceError("cannot read dpkg's database %s: %s"
                                % (system.real(dpkg_status.STATUS), exc.strerror or exc),
                                hint="check that dpkg is installed and its database "
                                     "readable") from exc
        if status is None:
            raise ResourceError("dpkg's status file %s does not exist"
                                % system.real(dpkg_status.STATUS),
                                hint="this machine has no dpkg database: set provider= "
                                     "to its package manager")
        out = {n: _absent() for n in names}
        for name, found in dpkg_status.states(status, updates, names).items():
            out[name].update(found)
            out[name]["exact_pins"] = True
        if candidates == MISSING:  # installed ones need no apt-cache round trip
            names = [n for n in names if out[n]["installed"] is None]
        if candidates and names:
            self._candidates(system, names, out)
        return out

    def _candidates(self, system: Any, names: Sequence[str], out: Dict[str, State]) -> None:
        argv = ["apt-cache"]
        if system.root != "/":
            argv += ["-o", "Dir=" + system.root,
                     "-o", "Dir::State::status=" + system.real("/var/lib/dpkg/status")]
        result = system.run(argv + ["policy", "--"] + [n for n in names])
        if not result.ok:
            raise ResourceError("apt-cache policy failed: %s" % result.output())
        for name in names:
            out[name]["available"] = []
        current: Optional[State] = None
        for line in result.stdout.splitlines():
            stanza = self._STANZA.match(line)
            if stanza:
                current = out.get(stanza.group(1))
                continue
            if current is None:
                continue
            text = line.strip()
            if text.startswith("Candidate:"):
                value = text.split(":", 1)[1].strip()
                current["candidate"] = None if value == "(none)" else value
            row = self._ROW.match(line)
            if row:
                current["available"].append(row.group(1))
        for state in out.values():
            # versions only in dpkg's status file (priority 100) are not installable
            if state["candidate"] is None:
                state["available"] = []

    def env(self) -> Dict[str, str]:
        return {"DEBIAN_FRONTEND": "noninteractive", "APT_LISTCHANGES_FRONTEND": "none"}

    def command(self, action: str, specs: Sequence[Tuple[str, Optional[str]]]) -> List[str]:
        verb = {"install": "install", "upgrade": "install", "remove": "remove",
                "purge": "purge"}[action]
        argv = ["apt-get", verb, "-y", "-q", "-o", "Dpkg::Options::=--force-confdef",
                "-o", "Dpkg::Options::=--force-confold"]
        if any(v for _, v in specs):
            argv.append("--allow-downgrades")
        return argv + ["--"] + [n if not v else "%s=%s" % (n, v) for n, v in specs]

    def explain(self, action: str, names: Sequence[str], result: Any) -> ResourceError:
        output = result.output()
        missing = re.findall(r"Unable to locate package (\S+)", output)
        if missing:
            return ResourceError(
                "package %s is not available from any configured repository" % missing[0],
                hint="check the name; if it is right, run apt-get update")
        error = super().explain(action, names, result)
        broken = re.findall(r"dpkg: error processing package (\S+) \(--configure\)", output)
        if "Could not get lock" in output or "Unable to acquire the dpkg" in output:
            error.hint = ("another package manager is running (apt-get, dpkg, unattended-"
                          "upgrades: the lock's holder is named above); let it finish, then "
                          "run again\n%s" % error.hint)
        elif broken:
            error.hint = ("the maintainer script of %s failed and dpkg left it half-configured "
                          "(`dpkg --audit` lists it; later installs retry it): fix what the "
                          "script needs, or publish a fixed version, then run again; "
                          "`dpkg --configure -a` retries it by hand\n%s"
                          % (", ".join(sorted(set(broken))), error.hint))
        return error


class Dnf(Backend):
    """RHEL family: rpm for the state, dnf (or yum) to act."""

    name, tool = "dnf", "dnf"

    def state(self, system: Any, names: Sequence[str], candidates: Any) -> Dict[str, State]:
        out = {n: _absent() for n in names}
        argv = ["rpm"]
        if system.root != "/":
            argv.append("--root=" + system.root)
        result = system.run(argv + ["-q", "--qf", "%{NAME}\\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\\n",
                                    "--"] + list(names))
        for line in result.stdout.splitlines():
            fields = line.split("\t")
            if len(fields) == 2 and fields[0] in out:
                version = fields[1][2:] if fields[1].startswith("0:") else fields[1]
                out[fields[0]]["installed"] = version
        if candidates:
            updates = system.run([self.tool, "-q", "check-update", "--"] + list(names))
            for line in updates.stdout.splitlines():
                fields = line.split()
                if len(fields) == 3 and fields[0].rsplit(".", 1)[0] in out:
                    out[fields[0].rsplit(".", 1)[0]]["candidate"] = fields[1]
        return out

    def command(self, action: str, specs: Sequence[Tuple[str, Optional[str]]]) -> List[str]:
        verb = {"install": "install", "upgrade": "upgrade", "remove": "remove",
                "purge": "remove"}[action]
        return [self.tool, verb, "-y", "-q", "--"] + [
            n if not v else "%s-%s" % (n, v) for n, v in specs]

    def explain(self, action: str, names: Sequence[str], result: Any) -> ResourceError:
        # dnf -q says only "Error: Unable to find a match: NAME [NAME...]"
        missing = re.findall(r"(?:No (?:match for argument|package)|Unable to find a match):? "
                             r"(\S+)", result.output())
        if missing:
            return ResourceError("package %s is not available from any configured repository"
                                 % missing[0], hint="check the name and the enabled repositories")
        return super().explain(action, names, result)


class Yum(Dnf):
    name, tool = "yum", "yum"


class Apk(Backend):
    """Alpine: the installed database for the state, apk to act."""

    name, tool = "apk", "apk"

    def state(self, system: Any, names: Sequence[str], candidates: Any) -> Dict[str, State]:
        out = {n: _absent() for n in names}
        package = None
        for line in (system.read_text("/lib/apk/db/installed") or "").splitlines():
            if line.startswith("P:"):
                package = line[2:]
            elif line.startswith("V:") and package in out:
                out[package]["installed"] = line[2:]
        if candidates:
            result = system.run(["apk", "version", "-l", "<", "--"] + list(names))
            for line in result.stdout.splitlines():
                match = re.match(r"^(\S+)-[^-]+-r\d+\s+<\s+(\S+)$", line)
                if match and match.group(1) in out:
                    out[match.group(1)]["candidate"] = match.group(2)
        return out

    def command(self, action: str, specs: Sequence[Tuple[str, Optional[str]]]) -> List[str]:
        if action in ("remove", "purge"):
            argv = ["apk", "del", "--no-progress"]
        else:
            argv = ["apk", "add", "--no-progress"] + (["--upgrade"] if action == "upgrade" else [])
        return argv + ["--"] + [n if not v else "%s=%s" % (n, v) for n, v in specs]


BACKENDS = {"apt": Apt, "dnf": Dnf, "yum": Yum, "apk": Apk}


def choose(system: Any, provider: Optional[str]) -> Backend:
    """The backend named by ``provider``, or the machine's own package manager."""
    if provider:
        backend = BACKENDS[provider]()
        if system.which(backend.tool) is None:
            raise ResourceError("provider %s was asked for, but %s is not installed here"
                                % (provider, backend.tool),
                                hint="leave provider unset to use this machine's package manager")
        return backend
    release = os_release(system)
    family = FAMILIES.get(release.get("ID", ""))
    for like in release.get("ID_LIKE", "").split():
        family = family or FAMILIES.get(like)
    preferred = {"debian": ["apt"], "rhel": ["dnf", "yum"], "alpine": ["apk"]}.get(family or "", [])
    for name in preferred + [p for p in PROVIDERS if p not in preferred]:
        if system.which(BACKENDS[name].tool) is not None:
            return BACKENDS[name]()
    raise ResourceError("no supported package manager found (looked for apt-get, dnf, yum, apk)",
                        hint="set provider= to one of: %s" % ", ".join(PROVIDERS))
