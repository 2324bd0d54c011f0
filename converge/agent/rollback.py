"""Rollback: turn a run's journal back into ordinary resources that restore what
it changed, and refuse when someone else changed those files since.

For each record the run changed, newest first: its ``files`` are restored to the
fingerprint they had before the run (a ``file`` with the backed-up content, mode
and owner; ``action="delete"`` for a file the run created), and its type's
``undo(before, system)`` hook gives the steps that put the rest back (a sysctl's
runtime value, a package to remove, oom scores...). A file touched by several
resources of the run is restored once, to its state before the first of them.
The result is a plain Plan, run by the same engine as any recipe: the same
output lines, journaled, and idempotent (a second rollback finds everything as
it should be). A record marked irreversible (execute, a restart) becomes a
skipped event with the reason. Standard library only, Python 3.8.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from ..errors import RunError
from ..plan import Plan, Step, mark_secret_files
from ..resources._base import REGISTRY
from . import journal as jn

Event = Dict[str, Any]


class Restore:
    """What rolling back one run takes: the plan, the skipped records, the
    packages it would remove and the files changed since that run."""

    def __init__(self, run: Dict[str, Any]) -> None:
        self.run = run
        self.steps: List[Step] = []
        self.skipped: List[Event] = []
        self.removes: List[str] = []
        self.conflicts: List[str] = []
        self.secret_files: List[str] = []  # files that hold a sensitive value

    @property
    def plan(self) -> Plan:
        return Plan(self.steps, self.run.get("recipe") or "",
                    {"rollback_of": self.run["id"]})

    def preview(self) -> Dict[str, Any]:
        return {"run": self.run["id"], "remove_packages": self.removes,
                "conflicts": self.conflicts, "steps": len(self.steps)}


def build(system: Any, run: Dict[str, Any]) -> Restore:
    """The Restore of a run's journal, read from this machine as it is now."""
    restore = Restore(run)
    source = "rollback of %s" % run["id"]
    records = jn.changed(run)
    first: Dict[str, Tuple[int, Dict[str, Any]]] = {}
    last: Dict[str, Optional[Dict[str, Any]]] = {}
    for index, record in enumerate(records):
        for path, states in record.get("files", {}).items():
            first.setdefault(path, (index, states["before"]))
            last[path] = states.get("after")
    for index in range(len(records) - 1, -1, -1):
        record = records[index]
        sensitive = bool(record.get("sensitive"))
        if record.get("irreversible"):
            restore.skipped.append({
                "id": record["id"], "type": record["type"], "action": record["action"],
                "status": "skipped", "changes": [], "diffs": [], "error": None,
                "warnings": [], "source": source,
                "skip_reason": "no rollback: %s" % record["irreversible"]})
            continue
        cls = REGISTRY.get(record["type"])
        undo = getattr(cls, "undo", None)
        if undo is not None and record.get("before"):
            for type_name, action, props in undo(jn.unseal(system, record["before"]), system):
                restore.steps.append(_step(type_name, action, props, source, sensitive))
                if type_name == "package" and action == "remove":
                    names = props["package_name"]
                    restore.removes += [names] if isinstance(names, str) else list(names)
        for path in sorted(record.get("files", {})):
            if first[path][0] != index:
                continue
            before = first[path][1]
            _check(system, path, before, last[path], run["id"], sensitive, restore)
            restore.steps += _file_steps(system, path, before, source, sensitive)
    # a file a sensitive resource of that run writes holds a secret, whichever
    # resource's record restores it
    restore.secret_files = sorted(set(run.get("secret_files") or []).union(
        path for record in records if record.get("sensitive")
        for path in record.get("files", {})))
    mark_secret_files(restore.steps, restore.secret_files)
    return restore


def _step(type_name: str, action: str, props: Dict[str, Any], source: str,
          sensitive: bool) -> Step:
    """A plan step made the way a recipe makes one: validated by the type."""
    resource = REGISTRY[type_name](**props)
    resource.meta.action = action
    resource.meta.source = source
    resource.meta.sensitive = sensitive
    resource.check_required()
    resource.check_action()
    return Step.from_resource(resource)


def _file_steps(system: Any, path: str, before: Dict[str, Any], source: str,
                sensitive: bool) -> List[Step]:
    """A file as it was: deleted (with the directories created for it, when empty)
    or written back with its content, mode and owner; a symbolic link made again
    as the link it was (and the file it leads to written back, when the journal
    kept it); a link that now stands where a file was removed first."""
    if not before.get("exists"):
        return [_step("file", "delete", {"path": path, "backup": 0}, source, sensitive)] + [
            _step("directory", "delete", {"path": p}, source, False)
            for p in before.get("parents", [])]
    steps = []
    if before.get("link") is not None:
        # forced: the path is as the run left it (checked above), a file there is the run's
        steps.append(_step("link", "create", {"target_file": path, "to": before["link"],
                                              "force": True}, source, False))
    elif "sha256" in before and system.readlink(path) is not None:
        steps.append(_step("link", "delete", {"target_file": path}, source, False))
    if "sha256" not in before:  # a directory, a device or a bare link: no content kept
        return steps
    return steps + [_step("file", "create", {
        "path": path, "content": jn.load_blob(system, before["backup"]), "mode": before["mode"],
        "owner": str(before["uid"]), "group": str(before["gid"]), "backup": 0},
        source, sensitive)]


def _check(system: Any, path: str, before: Dict[str, Any], after: Optional[Dict[str, Any]],
           run_id: str, sensitive: bool, restore: Restore) -> None:
    """Record a conflict when the file is neither as the run left it nor already
    as it was before (a run killed mid-apply has no ``after``: no conflict)."""
    now = jn.fingerprint(system, path)
    if after is None or jn.same_state(now, after) or jn.same_state(now, before):
        return
    restore.conflicts.append("%s: %s" % (path, describe(now, after, sensitive)))


def describe(now: Dict[str, Any], then: Dict[str, Any], sensitive: bool) -> str:
    """How a file differs from the state a run left it in."""
    if now.get("exists") != then.get("exists"):
        return "deleted since" if then.get("exists") else "created since"
    parts = []
    if now.get("link") != then.get("link"):
        parts.append("it is now %s, the run left %s" % (_what(now), _what(then)))
    if now.get("sha256") != then.get("sha256"):
        parts.append("its content changed" if sensitive else "content is now %s, the run "
                     "left %s" % (str(now.get("sha256"))[:8], str(then.get("sha256"))[:8]))
    for key, what in (("mode", "mode"), ("uid", "owner"), ("gid", "group")):
        if now.get(key) != then.get(key):
            parts.append("%s is now %s, the run left %s" % (what, now.get(key), then.get(key)))
    return "; ".join(parts)


def _what(state: Dict[str, Any]) -> str:
    link = state.get("link")
    return "a file" if link is None else "a symbolic link to %s" % link


def refuse_conflicts(restore: Restore) -> None:
    if restore.conflicts:
        raise RunError(
            "rollback of run %s refused: %d %s changed since that run:\n  %s" % (
                restore.run["id"], len(restore.conflicts),
                "file was" if len(restore.conflicts) == 1 else "files were",
                "\n  ".join(restore.conflicts)),
            hint="look at what changed; run again with --force to restore them anyway")


def refuse_removals(restore: Restore) -> None:
    if restore.removes:
        raise RunError("rollback of run %s would remove packages: %s; nothing was changed"
                       % (restore.run["id"], ", ".join(restore.removes)),
                       hint="confirm with --yes")
