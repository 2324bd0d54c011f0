"""The run journal: what each run did on this machine, and what was there before.

Every apply and every rollback writes ``runs/<id>.json`` in the state directory
(/var/lib/converge; ROOT/var/lib/converge with ``--root``; for a run on /, see
System.state_dir: ``CONVERGE_STATE_DIR`` moves it, a user other than root gets
$XDG_STATE_HOME/converge). The journal is 0600 in a 0700 directory. It holds when the run
started and finished, the recipe and the plan's hash, and one record per resource:
its status, its change lines and, for a resource that changed, the state it had
before (the resource's ``before`` hook, see :meth:`Journal.begin`).

Files a resource is about to change are kept whole: their content is copied to
``backup/runs/<id>/<sha256>`` (0600, directories 0700) and the record holds
their fingerprint before (exists, sha256, mode, uid, gid, backup) and after the
change, so a rollback can restore them and can tell when someone else changed
them since. For a file that did not exist, the directories missing above it
are recorded too, so that a rollback removes what the run created. A
``sensitive`` resource's record holds hashes only: whatever else its hook
returned is sealed in a backup blob, never written into the journal itself.

Crash safety, at a cost that grows with what changes, not with the run's size:
before the first resource applies, the run opens a write-ahead log beside its
journal, ``runs/<id>.partial`` (JSON lines: the run's header, then each record as
it is begun or finished), and before each resource applies its record (status
``"applying"``) is appended and flushed to disk (fdatasync). When the run ends,
the whole journal is written atomically (temp file, fsync, rename) as
``runs/<id>.json`` and the log is removed. A run that changes nothing never opens
the log: it writes its journal once, at the end. A run killed at any point leaves
its journal or its log, from which :func:`load` reads everything it had started
to change; the temp file it may have left beside a journal or a backup is
removed by the next run (System.write_atomic, prune). Old journals and their
backups are pruned past ``keep`` runs when a run ends.
Standard library only, Python 3.8.
"""

from __future__ import annotations

import json
import os
import stat as stat_mod
import time
from typing import Any, Dict, List, Optional, Tuple

from ..errors import RunError
from .paths import UnsafePath

VERSION = 1
DEFAULT_KEEP = 50


def state_dir(system: Any) -> str:
    """Where journals, backups and the run lock live, as a target path (one
    choice for all of them: System.state_dir)."""
    return str(system.state_dir())


def ensure_dir(system: Any, path: str, mode: int, parents: int = 0o755,
               private: bool = False) -> None:
    """mkdir -p through the System's walker: ``mode`` on the directory when it is
    created (missing parents get ``parents``); an existing directory keeps its
    mode, except a ``private`` one (converge's runs/ and backup/), which must be
    owned by the user converge runs as and is made ``mode`` again."""
    missing = []
    folder = path
    while folder not in ("", "/") and not system.is_dir(folder):
        missing.append(folder)
        folder = os.path.dirname(folder)
    for index, folder in enumerate(reversed(missing)):
        try:
            system.mkdir(folder, mode if index == len(missing) - 1 else parents)
        except FileExistsError:
            pass
    if not private or missing:
        return
    st = system.stat(path, follow=True)
    if st.st_uid != os.geteuid():
        raise RunError("the state directory %s is owned by uid %d, not by the user converge "
                       "runs as (uid %d): someone else could read or change the journal"
                       % (path, st.st_uid, os.geteuid()),
                       hint="remove it (converge creates it again), or set "
                       "CONVERGE_STATE_DIR to a directory of your own")
    if stat_mod.S_IMODE(st.st_mode) != mode:
        system.chmod(path, mode)


def write_file(system: Any, path: str, data: bytes, durable: bool = True) -> None:
    """Replace ``path`` whole (0600) with System.write_atomic: temp file beside it,
    fsync, rename, fsync dir; a killed writer's temp file is removed by the next
    write into that directory."""
    system.write_atomic(path, data, 0o600, durable=durable)


def fingerprint(system: Any, path: str, data: Optional[bytes] = None) -> Dict[str, Any]:
    """exists, sha256 (regular files), mode, uid and gid of a path. At a symbolic
    link, ``link`` (where it points) too, and what it points to is described when
    the link is one converge follows (agent/paths.py); otherwise the link's own
    owner, with ``kind: link``."""
    try:
        st = system.stat(path)
    except UnsafePath:  # a link on the way converge does not follow
        return {"exists": True, "kind": "unreachable"}
    if st is None:
        return {"exists": False}
    out: Dict[str, Any] = {"exists": True}
    if stat_mod.S_ISLNK(st.st_mode):
        out["link"] = system.readlink(path)
        try:
            followed = system.stat(path, follow=True)
        except (UnsafePath, OSError):
            followed = None
        if followed is None:
            out.update(kind="link", uid=st.st_uid, gid=st.st_gid)
            return out
        st = followed
    out.update(mode="%04o" % stat_mod.S_IMODE(st.st_mode), uid=st.st_uid, gid=st.st_gid)
    if stat_mod.S_ISREG(st.st_mode):
        if data is None:
            data = system.read_bytes(path) or b""
        import hashlib  # only a run that changes a file: OpenSSL costs every start 3 ms

        out["sha256"] = hashlib.sha256(data).hexdigest()
    else:
        out["kind"] = "directory" if stat_mod.S_ISDIR(st.st_mode) else "other"
    return out


def same_state(a: Optional[Dict[str, Any]], b: Optional[Dict[str, Any]]) -> bool:
    """Whether two fingerprints describe the same file (backup paths aside)."""
    if a is None or b is None:
        return False
    keys = ("exists", "sha256", "mode", "uid", "gid", "kind", "link")
    return all(a.get(k) == b.get(k) for k in keys)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Journal:
    """The journal of one run, written as the run goes (see the module docstring).

    The engine calls :meth:`begin` before a resource applies, :meth:`applied`
    after, and :meth:`event` for every event; the caller calls :meth:`finish`.
    """

    def __init__(self, system: Any, *, kind: str = "apply", of: Optional[str] = None,
                 recipe: str = "", recipe_hash: str = "", keep: int = DEFAULT_KEEP,
                 extensions: Optional[Dict[str, str]] = None) -> None:
        if keep < 1:
            raise ValueError("keep must be 1 or more")
        self.system = system
        self.base = state_dir(system)
        self.keep = keep
        ensure_dir(system, self.base + "/runs", 0o700, private=True)
        ensure_dir(system, self.base + "/backup", 0o700, private=True)
        self.id = self._new_id()
        self.path = "%s/runs/%s.json" % (self.base, self.id)
        self.backups = "%s/backup/runs/%s" % (self.base, self.id)
        self.data: Dict[str, Any] = {
            "version": VERSION, "id": self.id, "kind": kind, "of": of, "recipe": recipe,
            "recipe_hash": recipe_hash, "started": _now(), "finished": None,
            "pid": os.getpid(), "resources": [], "summary": None,
        }
        if extensions:  # custom types' code, for rolling this run back
            self.data["extensions"] = dict(extensions)
        self._open: Dict[int, Tuple[Dict[str, Any], Dict[str, Any]]] = {}
        self._index: Dict[int, int] = {}  # id(record) -> its place in resources
        self._sealed = 0
        self._log = -1  # the write-ahead log's descriptor, once something changes

    def _new_id(self) -> str:
        now = time.time()
        while True:
            stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
            run_id = "%s-%06d" % (stamp, int(now * 1e6) % 1000000)
            if not any(self.system.exists("%s/runs/%s%s" % (self.base, run_id, suffix))
                       for suffix in SUFFIXES):
                return run_id
            now += 1e-6

    def _add(self, record: Dict[str, Any]) -> None:
        self._index[id(record)] = len(self.data["resources"])
        self.data["resources"].append(record)

    def _logged(self, record: Dict[str, Any], sync: bool = False) -> None:
        """Append a record (new or updated) to the write-ahead log, opening the log
        first if this is the run's first change; ``sync``: on disk before returning."""
        if self._log == -1:
            if not sync:
                return  # nothing has changed yet: the journal at the end says it all
            self._log = self.system.open("%s/runs/%s.partial" % (self.base, self.id),
                                         os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600,
                                         follow=False)
            header = dict(self.data, resources=[])
            lines = [{"header": header}] + [{"i": i, "record": r}
                                             for i, r in enumerate(self.data["resources"])]
        else:
            lines = [{"i": self._index[id(record)], "record": record}]
        text = "".join(json.dumps(line, sort_keys=True) + "\n" for line in lines)
        view = memoryview(text.encode("utf-8"))
        while view:
            view = view[os.write(self._log, view):]
        if sync:
            os.fdatasync(self._log)

    # -- called by the engine ------------------------------------------------------

    def begin(self, event: Dict[str, Any], resource: Any, current: Any, changes: List[Any]
              ) -> None:
        """Record the prior state of a resource about to apply, and write the journal.

        The resource's ``before(system, current, changes)`` hook returns JSON data:
        ``files`` (paths the journal keeps and fingerprints), ``irreversible`` (why
        it cannot be undone), anything else its ``undo`` will need. A type without
        the hook is recorded as irreversible. Retries keep the first record.
        """
        if id(event) in self._open:
            return
        hook = getattr(resource, "before", None)
        if hook is None:
            before: Dict[str, Any] = {"irreversible": "%s keeps no record of what it changes"
                                      % resource.type_name}
        else:
            before = dict(hook(self.system, current, changes) or {})
        sensitive = bool(resource.meta.sensitive)
        record: Dict[str, Any] = {
            "id": event["id"], "type": event["type"], "action": event["action"],
            "status": "applying", "changes": list(event["changes"]),
            "source": event.get("source"),
        }
        if sensitive:
            record["sensitive"] = True
        files = before.pop("files", [])
        if files:
            record["files"] = {p: {"before": self._keep(p)} for p in files}
        if before.get("irreversible"):
            record["irreversible"] = before.pop("irreversible")
        if before:
            record["before"] = self._seal(before) if sensitive else before
        self._add(record)
        self._open[id(event)] = (event, record)
        self._logged(record, sync=True)

    def applied(self, event: Dict[str, Any]) -> None:
        """After apply (even a failed one): the files' fingerprints now."""
        entry = self._open.get(id(event))
        if entry is None:
            return
        for path, states in entry[1].get("files", {}).items():
            states["after"] = fingerprint(self.system, path)

    def event(self, event: Dict[str, Any]) -> None:
        """Every event: the status of a record begun earlier, or a short record."""
        entry = self._open.pop(id(event), None)
        if entry is None:
            record = {k: event.get(k) for k in ("id", "type", "action", "status")}
            self._add(record)
        else:
            record = entry[1]
            record["status"] = event["status"]
        for key in ("skip_reason", "notified_by", "error", "ignored", "interrupted"):
            if event.get(key) is not None:
                record[key] = event[key]
        self._logged(record)

    def finish(self, summary: Dict[str, int], interrupted: bool = False) -> None:
        """Write the final journal, then prune old runs."""
        self.data["finished"] = _now()
        self.data["summary"] = summary
        if interrupted:
            self.data["interrupted"] = True
        text = json.dumps(self.data, sort_keys=True, separators=(",", ":"))  # C-encoded
        # A run that changed nothing is not worth an fsync (a power cut may lose its
        # record, never a change's); thirty no-op runs on one disk queue for it.
        write_file(self.system, self.path, text.encode("utf-8") + b"\n",
                   durable=self._log != -1)
        self.system.sync()
        if self._log != -1:
            os.close(self._log)
            self._log = -1
            self.system.remove("%s/runs/%s.partial" % (self.base, self.id))
        prune(self.system, self.keep)

    # -- backups ----------------------------------------------------------------------

    def _keep(self, path: str) -> Dict[str, Any]:
        state = fingerprint(self.system, path)
        if "sha256" in state:
            data = self.system.read_bytes(path)
            if data is not None:
                state = fingerprint(self.system, path, data)
                state["backup"] = self._blob(state["sha256"], data)
        if not state["exists"]:
            parents = []
            folder = os.path.dirname(path)
            while folder not in ("", "/") and not self.system.is_dir(folder):
                parents.append(folder)
                folder = os.path.dirname(folder)
            if parents:
                state["parents"] = parents  # missing too: a rollback removes them
        return state

    def _blob(self, name: str, data: bytes) -> str:
        ensure_dir(self.system, self.backups, 0o700, parents=0o700)
        path = "%s/%s" % (self.backups, name)
        if not self.system.exists(path):
            write_file(self.system, path, data)
        return path

    def _seal(self, before: Dict[str, Any]) -> Dict[str, Any]:
        self._sealed += 1
        data = json.dumps(before, sort_keys=True).encode("utf-8")
        return {"sealed": self._blob("sealed-%d" % self._sealed, data)}


# -- reading journals ---------------------------------------------------------------


SUFFIXES = (".json", ".partial")  # a finished run's journal; a killed run's log


def run_ids(system: Any) -> List[str]:
    """Every journaled run on this machine, oldest first."""
    names = system.listdir(state_dir(system) + "/runs")
    return sorted({name.rpartition(".")[0] for name in names
                   if name.endswith(SUFFIXES) and not name.startswith(".")})


def _read(system: Any, base: str, run_id: str) -> Any:
    """A run's journal; for a run killed before it ended, rebuilt from its log (the
    header, then each record at its place, the last line of a record winning; a
    torn last line, from a kill mid-write, is dropped)."""
    text = system.read_text("%s/runs/%s.json" % (base, run_id))
    if text is not None:
        return json.loads(text)
    lines = (system.read_text("%s/runs/%s.partial" % (base, run_id)) or "").splitlines()
    data: Dict[str, Any] = {}
    records: Dict[int, Any] = {}
    for number, line in enumerate(lines):
        try:
            entry = json.loads(line)
        except ValueError:
            if number == len(lines) - 1:
                break
            raise
        if "header" in entry:
            data = entry["header"]
        else:
            records[entry["i"]] = entry["record"]
    data["resources"] = [records[i] for i in sorted(records)]
    return data


def load(system: Any, run_id: str) -> Dict[str, Any]:
    """One run's journal, by its id or a unique prefix of it."""
    ids = run_ids(system)
    found = [i for i in ids if i == run_id] or [i for i in ids if i.startswith(run_id)]
    if not found:
        raise RunError("no run %s in the journal of this machine" % run_id,
                       hint="list the runs with: converge history")
    if len(found) > 1:
        raise RunError("run id %s is ambiguous: %s" % (run_id, ", ".join(found[:5])),
                       hint="give more of the id")
    path = "%s/runs/%s.json" % (state_dir(system), found[0])
    try:
        data = _read(system, state_dir(system), found[0])
    except (ValueError, KeyError, TypeError) as exc:
        raise RunError("the journal %s is damaged: %s" % (path, exc)) from None
    if not isinstance(data, dict) or data.get("version") != VERSION:
        raise RunError("the journal %s is not a version %d journal" % (path, VERSION))
    return data


def changed(run: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The records of resources the run changed (or started to change)."""
    return [r for r in run.get("resources", [])
            if r.get("status") in ("updated", "applying")
            or (r.get("status") == "failed" and ("files" in r or "before" in r))]


def last_changed(system: Any) -> Dict[str, Any]:
    """The latest apply run that changed anything (rollbacks are not counted, so a
    second ``converge rollback`` picks the same run and has nothing left to do)."""
    for run_id in reversed(run_ids(system)):
        try:
            run = load(system, run_id)
        except RunError:
            continue
        if run.get("kind") == "apply" and changed(run):
            return run
    raise RunError("no run in the journal of this machine changed anything",
                   hint="list the runs with: converge history")


def history(system: Any) -> List[Dict[str, Any]]:
    """Every run, oldest first: id, kind, times, recipe, summary, what it changed."""
    out: List[Dict[str, Any]] = []
    for run_id in run_ids(system):
        try:
            run = load(system, run_id)
        except RunError as exc:
            out.append({"id": run_id, "error": exc.message})
            continue
        entry = {k: run.get(k) for k in ("id", "kind", "of", "recipe", "recipe_hash",
                                         "started", "finished", "summary")}
        entry["interrupted"] = bool(run.get("interrupted")) or not run.get("finished")
        entry["changed"] = [dict({"id": r["id"], "action": r.get("action"),
                                  "status": r.get("status"), "changes": r.get("changes", [])},
                                 **({"error": r["error"]} if r.get("error") else {}))
                            for r in changed(run)]
        out.append(entry)
    return out


def load_blob(system: Any, path: str) -> bytes:
    """A backup the journal refers to; RunError when it is gone."""
    data: Optional[bytes] = system.read_bytes(path)
    if data is None:
        raise RunError("backup %s is missing" % path,
                       hint="it was pruned or deleted; restore the file by hand")
    return data


def unseal(system: Any, before: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """A record's ``before`` data, read back from its sealed blob when sensitive."""
    if not before:
        return {}
    if set(before) == {"sealed"}:
        return dict(json.loads(load_blob(system, before["sealed"]).decode("utf-8")))
    return dict(before)


def prune(system: Any, keep: int) -> None:
    """Delete journals and backups beyond the ``keep`` most recent runs, and the
    temp files killed writers left in the kept runs' backup folders."""
    base = state_dir(system)
    ids = run_ids(system)
    kept = set(ids[-keep:])
    for run_id in ids[:-keep]:
        for suffix in SUFFIXES:
            if system.exists("%s/runs/%s%s" % (base, run_id, suffix)):
                system.remove("%s/runs/%s%s" % (base, run_id, suffix))
    folder = base + "/backup/runs"
    for name in system.listdir(folder):
        if name not in kept:
            try:
                system.rmtree("%s/%s" % (folder, name))
            except OSError:
                pass
        else:  # a run killed while keeping a backup left its temp file there
            system.sweep_temps("%s/%s" % (folder, name))
