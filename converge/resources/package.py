"""package: install, upgrade, remove or purge packages with the machine's own manager.

Example::

    package("dstat")
    package(["sysstat", "chrony"])                       # one resource: package[sysstat,chrony]
    package("curl", version="7.88.1-10+deb12u5")
    package("telnet", action="purge")

The backend is the target's own package manager (apt on Debian and Ubuntu, dnf or
yum on the RHEL family, apk on Alpine), or the one named by ``provider``. State
comes from dpkg's status file (read in place, as ``dpkg-query`` reports it; a
``name:arch`` such as ``libc6:i386`` is that architecture's package), ``rpm -q``
or apk's database; installs are noninteractive and keep changed configuration
files. Consecutive package resources with the same action
run as one transaction (one ``apt-get install`` for twenty packages), each still
reported as its own resource; when that transaction fails, each package is tried
alone, so only the one that cannot be installed fails. Every package of a
transaction is in the run's journal before the transaction starts, so an agent
killed during ``apt-get install`` leaves a journal that names them all and a
rollback removes what got installed. A guard on a resource keeps it out of the
transaction.
"""

from __future__ import annotations

from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

from ..errors import ResourceError
from . import _pkg_backends as backends
from ._base import Change, Resource, prop
from ._validate import quoted


class PackageChange(NamedTuple):
    """Change.data of one package: what to do to it (install, upgrade, remove,
    purge) and, for an install, the version pinned (None: the candidate)."""

    action: str
    name: str
    version: Optional[str] = None


class Package(Resource, type_name="package"):
    """Install, upgrade, remove or purge one package or a list of packages."""

    actions = ("install", "upgrade", "remove", "purge")

    package_name: Union[str, List[str]] = prop(
        doc="A package name, or a list of names handled as one resource.", identity=True)
    version: Optional[str] = prop(None, doc="The exact version to install (one package only); "
                                  "unset: whatever the repositories offer.")
    provider: Optional[str] = prop(None, doc="Force a backend. Unset: "
                                   "the target's own package manager.",
                                   choices=backends.PROVIDERS)

    def normalise(self) -> None:
        names = [self.package_name] if isinstance(self.package_name, str) else self.package_name
        if not names:
            raise self.fail("package_name must be a name or a non-empty list of names, not %r"
                            % (self.package_name,))
        grammar = backends.DEB_NAME if self.provider == "apt" else backends.ANY_NAME
        unique: List[str] = []
        for name in names:
            if not grammar.fullmatch(name) or len(name) > 200:
                raise self.fail("%s is not a valid package name (letters, digits and "
                                "'+', '-', '.', '_', starting with a letter or digit)"
                                % quoted(name))
            if name not in unique:
                unique.append(name)
        self.package_name = unique[0] if len(unique) == 1 else unique
        if self.version is not None:
            self.version = str(self.version)
            if len(unique) > 1:
                raise self.fail("version pins one package; declare each pinned package "
                                "as its own resource")
            if not backends.VERSION.fullmatch(self.version) or len(self.version) > 200:
                raise self.fail("version %s is not a package version such as "
                                "'1.2.3-1' or '2:1.0-3'" % quoted(self.version))

    def decoded(self) -> None:
        if isinstance(self.package_name, list) and len(self.package_name) == 1:
            self.package_name = self.package_name[0]

    @property
    def names(self) -> List[str]:
        names = self.package_name
        return [names] if isinstance(names, str) else list(names)

    @property
    def name(self) -> str:
        return ",".join(self.names)

    # -- target ----------------------------------------------------------------------

    def _backend(self, system: Any) -> backends.Backend:
        return backends.choose(system, self.provider)

    def _wants_candidates(self) -> Any:
        """What state() must read from the repositories: every candidate to upgrade
        or pin a version, only those of missing packages for a plain install."""
        if self.action == "upgrade" or (self.action == "install" and self.version):
            return True
        return backends.MISSING if self.action == "install" else False

    @classmethod
    def prefetch(cls, system: Any, resources: Sequence["Package"]
                 ) -> List[Optional[Dict[str, Any]]]:
        """Engine hook for a run of consecutive package steps: the state of every
        package, read with one query per backend (None: that resource reads its
        own, and reports why it cannot)."""
        by_backend: Dict[str, List[int]] = {}
        chosen: Dict[int, backends.Backend] = {}
        for index, res in enumerate(resources):
            try:
                chosen[index] = res._backend(system)
            except ResourceError:
                continue
            by_backend.setdefault(chosen[index].name, []).append(index)
        out: List[Optional[Dict[str, Any]]] = [None] * len(resources)
        for members in by_backend.values():
            names = sorted({n for i in members for n in resources[i].names})
            wants = [resources[i]._wants_candidates() for i in members]
            states = chosen[members[0]].state(
                system, names, True if True in wants else
                backends.MISSING if backends.MISSING in wants else False)
            for i in members:
                out[i] = {n: states[n] for n in resources[i].names}
        return out

    @classmethod
    def apply_batch(cls, system: Any, batch: Sequence[Tuple["Package", List[Change]]]
                    ) -> List[Optional[ResourceError]]:
        """Engine hook, called once every member is journaled: each run of
        same-backend, same-action members as one transaction, in order; after a
        failed shared transaction each member re-reads its state and acts alone,
        so only the broken one fails. Each member's error, or None."""
        errors: List[Optional[ResourceError]] = []
        start = 0
        while start < len(batch):
            key = (batch[start][0]._backend(system).name, batch[start][0].action)
            end = start + 1
            while end < len(batch) and (batch[end][0]._backend(system).name,
                                        batch[end][0].action) == key:
                end += 1
            errors += _transaction(system, batch[start:end])
            start = end
        return errors

    def current(self, system: Any) -> Dict[str, Any]:
        return self._backend(system).state(system, self.names, self._wants_candidates())

    def changes(self, current: Dict[str, Any]) -> List[Change]:
        out: List[Change] = []
        for name in self.names:
            change = self._change(name, current[name])
            if change is not None:
                out.append(change)
        return out

    def _change(self, name: str, state: Dict[str, Any]) -> Optional[Change]:
        have, action = state["installed"], self.action
        if action in ("remove", "purge"):
            present = have or state.get("broken")
            if present:
                return Change("%s package %s (%s)" % (action, name, present),
                              data=PackageChange(action, name))
            if action == "purge" and state["config_files"]:
                return Change("purge configuration files of package %s" % name,
                              data=PackageChange(action, name))
            return None
        self._check_available(name, state)
        want = self.version or state["candidate"]
        if have is None:
            text = "install package %s" % name + (" (%s)" % want if want else "")
            if state.get("broken"):
                text += ", which is only partly installed"
            return Change(text, data=PackageChange("install", name, self.version))
        if self.version and not _same_version(have, self.version, state):
            return Change("change package %s from %s to %s" % (name, have, self.version),
                          data=PackageChange("install", name, self.version))
        if action == "upgrade" and state["candidate"] and state["candidate"] != have:
            return Change("upgrade package %s from %s to %s" % (name, have, state["candidate"]),
                          data=PackageChange("upgrade", name))
        return None

    def _check_available(self, name: str, state: Dict[str, Any]) -> None:
        available = state["available"]
        if available is None:  # this backend cannot tell before trying
            return
        if state["candidate"] is None and state["installed"] is None and not available:
            raise ResourceError(
                "package %s is not available from any configured repository" % name,
                hint="check the name; if it is right, run apt-get update")
        if self.version is not None and not any(_same_version(v, self.version, state)
                                                for v in available):
            raise ResourceError(
                "version %s of package %s is not available (available: %s)"
                % (self.version, name, ", ".join(available) or "none"),
                hint="pick one of the available versions, or check the repositories")

    def before(self, system: Any, current: Dict[str, Any], changes: List[Change]
               ) -> Dict[str, Any]:
        """Journal hook: the installed version (None: not installed) of each package
        this run installs, changes or removes."""
        return {"provider": self.provider, "packages": {
            c.data.name: current[c.data.name]["installed"] for c in changes}}

    @classmethod
    def undo(cls, before: Dict[str, Any], system: Any) -> List[Tuple[str, str, Dict[str, Any]]]:
        """Rollback: remove what the run installed; put back the versions it
        changed or removed (when the repositories still have them)."""
        provider = before.get("provider")
        added = [n for n, v in sorted(before["packages"].items()) if v is None]
        out = [("package", "install", {"package_name": n, "version": v, "provider": provider})
               for n, v in sorted(before["packages"].items()) if v is not None]
        if added:
            out.append(("package", "remove", {"package_name": added, "provider": provider}))
        return out

    def apply(self, system: Any, changes: List[Change]) -> None:
        backend = self._backend(system)
        failed = _act(system, backend, changes)
        if failed is not None:
            action, names, result = failed
            raise backend.explain(action, names, result)


def _transaction(system: Any, batch: Sequence[Tuple[Package, List[Change]]]
                 ) -> List[Optional[ResourceError]]:
    """One package-manager call for a run of resources, in declaration order; when
    a shared one fails, each resource re-reads its state and acts alone."""
    backend = batch[0][0]._backend(system)
    try:
        failed = _act(system, backend, [c for _, changes in batch for c in changes])
        error = backend.explain(*failed) if failed is not None else None
    except ResourceError as exc:
        error = exc
    if error is None:
        return [None] * len(batch)
    if len(batch) == 1:
        return [error]
    errors: List[Optional[ResourceError]] = []
    for res, _ in batch:
        try:
            changes = res.changes(res.current(system))
            if changes:
                res.apply(system, changes)
            errors.append(None)
        except ResourceError as exc:
            errors.append(exc)
    return errors


def _act(system: Any, backend: Any, changes: List[Change]) -> Optional[Tuple[str, List[str], Any]]:
    """One backend call per kind of change (install, upgrade, remove, purge), in
    order; the first failure as (action, names, result), or None."""
    kinds: Dict[str, List[Tuple[str, Optional[str]]]] = {}
    for change in changes:
        kinds.setdefault(change.data.action, []).append((change.data.name, change.data.version))
    for action, specs in kinds.items():
        result = backend.act(system, action, specs)
        if not result.ok:
            return action, [name for name, _ in specs], result
    return None


def _same_version(have: str, want: str, state: Dict[str, Any]) -> bool:
    """'1.2-3.el9' satisfies a pin of '1.2' on rpm and apk; apt pins are exact."""
    return have == want or (not state["exact_pins"] and have.startswith(want + "-"))
