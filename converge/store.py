"""The run store: every apply, check and rollback run from this controller, per
host and per resource, in SQLite (one file in the controller's state directory,
the default) or PostgreSQL (one database that several controllers share).

::

    sqlite:///var/lib/converge/store.db      the default (under CONVERGE_STATE_DIR
                                             when set)
    postgresql://user@db.example/converge    --store URL, or CONVERGE_STORE

The schema is versioned (table ``converge_schema``) and migrated on first use. A run
is written while it goes: its row first (status ``running``), then each host with
its resources as the host finishes, then the totals. A controller that is killed
leaves the hosts it finished; the run is shown as ``interrupted`` once its process
is gone. What is stored is what the console showed: sensitive values are already
hidden by the agent, and values decrypted from a vault are scrubbed again here.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import socket
import threading
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from .agent.system import host_state_dir
from .errors import ConvergeError

SCHEMA_VERSION = 1

# Each migration takes the schema from the version before it to its own.
MIGRATIONS: List[Tuple[int, List[str]]] = [
    (1, [
        """CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            started TEXT NOT NULL,
            finished TEXT,
            status TEXT NOT NULL,
            result TEXT,
            recipe TEXT,
            recipe_hash TEXT,
            git_commit TEXT,
            user_name TEXT,
            controller TEXT,
            pid INTEGER,
            options TEXT,
            summary TEXT,
            seconds REAL
        )""",
        """CREATE TABLE run_hosts (
            run_id TEXT NOT NULL,
            host TEXT NOT NULL,
            position INTEGER NOT NULL,
            status TEXT NOT NULL,
            error TEXT,
            summary TEXT,
            facts TEXT,
            seconds REAL,
            PRIMARY KEY (run_id, host)
        )""",
        """CREATE TABLE run_resources (
            run_id TEXT NOT NULL,
            host TEXT NOT NULL,
            position INTEGER NOT NULL,
            identity TEXT NOT NULL,
            status TEXT NOT NULL,
            event TEXT NOT NULL,
            seconds REAL,
            PRIMARY KEY (run_id, host, position)
        )""",
        "CREATE INDEX runs_started ON runs (started)",
        "CREATE INDEX run_hosts_host ON run_hosts (host)",
    ]),
]

HOST_STATUSES = ("failed", "unreachable", "not_started", "changed", "ok")
RUN_STATUSES = ("running", "finished", "interrupted")


class StoreError(ConvergeError):
    """The run store cannot be opened, migrated, written or read."""


def default_url() -> str:
    """CONVERGE_STORE, else a SQLite file in the controller's state directory (the
    one the agent's runs on this machine use: agent.system.host_state_dir)."""
    if os.environ.get("CONVERGE_STORE"):
        return os.environ["CONVERGE_STORE"]
    return "sqlite:///" + os.path.join(host_state_dir(), "store.db").lstrip("/")


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


def host_status(entry: Dict[str, Any]) -> str:
    """failed, unreachable, changed or ok: one word per host, as the recap says."""
    if entry.get("not_started"):
        return "not_started"
    if entry.get("unreachable"):
        return "unreachable"
    summary = entry.get("summary") or {}
    if entry.get("error") or summary.get("failed"):
        return "failed"
    return "changed" if summary.get("updated") else "ok"


# -- connections ----------------------------------------------------------------------


class _Database:
    """One connection with the few operations the store needs, in either dialect."""

    mark = "?"

    def __init__(self, url: str) -> None:
        self.url = url
        self.lock = threading.Lock()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> List[Tuple[Any, ...]]:
        raise NotImplementedError

    def transaction(self, statements: Sequence[Tuple[str, Sequence[Any]]]) -> None:
        raise NotImplementedError

    def sql(self, text: str) -> str:
        return text if self.mark == "?" else text.replace("?", self.mark)

    def close(self) -> None:
        raise NotImplementedError


class _SQLite(_Database):
    def __init__(self, url: str, path: str) -> None:
        import sqlite3

        super().__init__(url)
        folder = os.path.dirname(path)
        try:
            if folder and not os.path.isdir(folder):
                os.makedirs(folder, mode=0o700)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            os.close(fd)
            self.conn = sqlite3.connect(path, timeout=30, check_same_thread=False,
                                        isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
        except (OSError, sqlite3.Error) as exc:
            raise StoreError("cannot open the run store %s: %s" % (path, exc),
                             hint="set --store or CONVERGE_STORE to another place") from None
        self.error = sqlite3.Error

    def execute(self, sql: str, params: Sequence[Any] = ()) -> List[Tuple[Any, ...]]:
        with self.lock:
            return list(self.conn.execute(sql, tuple(params)).fetchall())

    def transaction(self, statements: Sequence[Tuple[str, Sequence[Any]]]) -> None:
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in statements:
                    self.conn.execute(sql, tuple(params))
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()


class _Postgres(_Database):
    mark = "%s"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        try:
            import psycopg
        except ImportError:
            raise StoreError("a postgresql:// store needs the psycopg package",
                             hint="pip install 'psycopg[binary]'") from None
        try:
            self.conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise StoreError("cannot connect to the run store %s: %s"
                             % (_safe_url(url), str(exc).strip().splitlines()[0]),
                             hint="check --store / CONVERGE_STORE") from None
        self.error = psycopg.Error

    def execute(self, sql: str, params: Sequence[Any] = ()) -> List[Tuple[Any, ...]]:
        with self.lock:
            cursor = self.conn.execute(self.sql(sql), tuple(params))
            return list(cursor.fetchall()) if cursor.description else []

    def transaction(self, statements: Sequence[Tuple[str, Sequence[Any]]]) -> None:
        with self.lock, self.conn.transaction():
            for sql, params in statements:
                self.conn.execute(self.sql(sql), tuple(params))

    def close(self) -> None:
        self.conn.close()


def _safe_url(url: str) -> str:
    """A URL as it may be shown: without its password."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(":" + parts.password + "@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def connect(url: Optional[str] = None) -> "Store":
    """The store at ``url`` (default: :func:`default_url`), migrated to this version."""
    url = url or default_url()
    if url.startswith("sqlite:///"):
        database: _Database = _SQLite(url, "/" + url[len("sqlite:///"):].lstrip("/"))
    elif url.startswith(("postgresql://", "postgres://")):
        database = _Postgres(url)
    else:
        raise StoreError("--store %s: expected sqlite:///PATH or postgresql://..."
                         % _safe_url(url))
    store = Store(database)
    try:
        store.migrate()
    except BaseException:
        store.close()
        raise
    return store


# -- the store -------------------------------------------------------------------------


class Store:
    """Runs, their hosts and their resources."""

    def __init__(self, database: _Database) -> None:
        self.db = database

    @property
    def url(self) -> str:
        return _safe_url(self.db.url)

    def close(self) -> None:
        self.db.close()

    def version(self) -> int:
        try:
            rows = self.db.execute("SELECT version FROM converge_schema")
        except self.db.error:  # type: ignore[attr-defined]
            return 0
        return int(rows[0][0]) if rows else 0

    def migrate(self) -> None:
        """Create or upgrade the schema; refuse a store newer than this converge."""
        self.db.execute("CREATE TABLE IF NOT EXISTS converge_schema (version INTEGER NOT NULL)")
        current = self.version()
        if current > SCHEMA_VERSION:
            raise StoreError("the run store %s has schema version %d, newer than this "
                             "converge's %d" % (self.url, current, SCHEMA_VERSION),
                             hint="upgrade converge on this controller")
        if current == SCHEMA_VERSION:
            return
        statements: List[Tuple[str, Sequence[Any]]] = []
        if isinstance(self.db, _Postgres):  # two controllers migrating at once wait
            statements.append(("SELECT pg_advisory_xact_lock(7276585)", ()))
        for version, steps in MIGRATIONS:
            if version > current:
                statements += [(step, ()) for step in steps]
        statements += [("DELETE FROM converge_schema", ()),
                       ("INSERT INTO converge_schema (version) VALUES (?)", (SCHEMA_VERSION,))]
        try:
            self.db.transaction(statements)
        except self.db.error as exc:  # type: ignore[attr-defined]
            if self.version() == SCHEMA_VERSION:  # another controller migrated it first
                return
            raise StoreError("cannot create the run store's tables in %s: %s"
                             % (self.url, exc)) from None

    # -- writing ------------------------------------------------------------------------

    def start(self, run_id: str, kind: str, recipe: Optional[str],
              options: Sequence[str]) -> None:
        from .vault import scrub

        info = recipe_info(recipe)
        self.db.transaction([(
            "INSERT INTO runs (id, kind, started, status, recipe, recipe_hash, git_commit, "
            "user_name, controller, pid, options) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, kind, now(), "running", info.get("path"), info.get("hash"),
             info.get("git_commit"), _who(), socket.gethostname(), os.getpid(),
             json.dumps([scrub(o) for o in options])))])

    def host_done(self, run_id: str, host: str, position: int, entry: Dict[str, Any],
                  events: Sequence[Dict[str, Any]], facts: Optional[Dict[str, Any]] = None
                  ) -> None:
        from .vault import scrub, scrub_data

        statements: List[Tuple[str, Sequence[Any]]] = [(
            "INSERT INTO run_hosts (run_id, host, position, status, error, summary, facts, "
            "seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, host, position, host_status(entry), scrub(entry.get("error") or "")
             or None, json.dumps(entry.get("summary") or {}), json.dumps(facts or {}),
             entry.get("seconds")))]
        for index, event in enumerate(events):
            shown = scrub_data(dict(event))
            statements.append((
                "INSERT INTO run_resources (run_id, host, position, identity, status, event, "
                "seconds) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (run_id, host, index, str(shown.get("id", "?")), str(shown.get("status", "")),
                 json.dumps(shown), shown.get("time"))))
        self.db.transaction(statements)

    def finish(self, run_id: str, report: Optional[Dict[str, Any]], *,
               interrupted: bool = False) -> None:
        summary = (report or {}).get("summary") or {}
        result = None
        if report is not None:
            statuses = {host_status(e) for e in report.get("hosts", {}).values()}
            result = next((s for s in HOST_STATUSES if s in statuses), "ok")
        self.db.transaction([(
            "UPDATE runs SET finished = ?, status = ?, result = ?, summary = ?, seconds = ? "
            "WHERE id = ?",
            (now(), "interrupted" if interrupted else "finished", result, json.dumps(summary),
             summary.get("seconds"), run_id))])

    def import_run(self, run: Dict[str, Any]) -> None:
        """Write a run read from another store (:meth:`run`), as it was recorded
        there: converge pull copies a node's runs to the shared store. A run already
        here is left as it is."""
        if self.db.execute("SELECT id FROM runs WHERE id = ?", (run["id"],)):
            return
        statements: List[Tuple[str, Sequence[Any]]] = [(
            "INSERT INTO runs (id, kind, started, finished, status, result, recipe, "
            "recipe_hash, git_commit, user_name, controller, pid, options, summary, seconds) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run["id"], run["kind"], run["started"], run["finished"], run["status"],
             run["result"], run["recipe"], run["recipe_hash"], run["git_commit"],
             run["user"], run["controller"], run["pid"], json.dumps(run["options"]),
             json.dumps(run["summary"]), run["seconds"]))]
        for position, (host, entry) in enumerate(run["hosts"].items()):
            statements.append((
                "INSERT INTO run_hosts (run_id, host, position, status, error, summary, "
                "facts, seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (run["id"], host, position, entry["status"], entry.get("error"),
                 json.dumps(entry.get("summary") or {}), json.dumps(entry.get("facts") or {}),
                 entry.get("seconds"))))
            for index, event in enumerate(entry.get("resources") or []):
                statements.append((
                    "INSERT INTO run_resources (run_id, host, position, identity, status, "
                    "event, seconds) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (run["id"], host, index, str(event.get("id", "?")),
                     str(event.get("status", "")), json.dumps(event), event.get("time"))))
        self.db.transaction(statements)

    # -- reading ------------------------------------------------------------------------

    def runs(self, *, host: Optional[str] = None, status: Optional[str] = None,
             recipe: Optional[str] = None, since: Optional[str] = None,
             kind: Optional[str] = None, limit: int = 20) -> List[Dict[str, Any]]:
        """Runs, newest first, each with its hosts and their status."""
        where, params = [], []  # type: Tuple[List[str], List[Any]]
        if host:
            where.append("id IN (SELECT run_id FROM run_hosts WHERE host = ?)")
            params.append(host)
        if recipe:
            where.append("recipe LIKE ?")
            params.append("%" + recipe + "%")
        if since:
            where.append("started >= ?")
            params.append(since)
        if kind:
            where.append("kind = ?")
            params.append(kind)
        sql = "SELECT id FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started DESC, id DESC"
        found = []
        for (run_id,) in self.db.execute(sql, params):
            run = self.run(run_id, resources=False)
            if status and status not in (run["status"], run["result"]):
                continue
            found.append(run)
            if len(found) >= limit:
                break
        return found

    def resolve(self, prefix: Optional[str]) -> str:
        """A run id from its unique beginning; the newest run when None."""
        if prefix is None:
            rows = self.db.execute("SELECT id FROM runs ORDER BY started DESC, id DESC LIMIT 1")
            if not rows:
                raise StoreError("no runs recorded in %s yet" % self.url)
            return str(rows[0][0])
        rows = self.db.execute("SELECT id FROM runs WHERE id LIKE ? ORDER BY id",
                               (prefix.replace("%", "") + "%",))
        if not rows:
            raise StoreError("no run %s in %s (converge runs lists them)" % (prefix, self.url))
        if len(rows) > 1:
            raise StoreError("run id %s is ambiguous: %s" % (
                prefix, ", ".join(str(r[0]) for r in rows[:5])))
        return str(rows[0][0])

    def run(self, run_id: str, resources: bool = True) -> Dict[str, Any]:
        rows = self.db.execute(
            "SELECT id, kind, started, finished, status, result, recipe, recipe_hash, "
            "git_commit, user_name, controller, pid, options, summary, seconds FROM runs "
            "WHERE id = ?", (run_id,))
        if not rows:
            raise StoreError("no run %s in %s" % (run_id, self.url))
        keys = ("id", "kind", "started", "finished", "status", "result", "recipe",
                "recipe_hash", "git_commit", "user", "controller", "pid", "options",
                "summary", "seconds")
        run = dict(zip(keys, rows[0], strict=True))
        run["options"] = json.loads(run["options"] or "[]")
        run["summary"] = json.loads(run["summary"] or "{}")
        if run["status"] == "running" and not _alive(run["controller"], run["pid"]):
            run["status"] = "interrupted"
        hosts: Dict[str, Dict[str, Any]] = {}
        for host, status, error, summary, facts, seconds in self.db.execute(
                "SELECT host, status, error, summary, facts, seconds FROM run_hosts "
                "WHERE run_id = ? ORDER BY position", (run_id,)):
            hosts[host] = {"status": status, "error": error, "summary": json.loads(summary),
                           "facts": json.loads(facts or "{}"), "seconds": seconds}
        if resources:
            for host, event in self.db.execute(
                    "SELECT host, event FROM run_resources WHERE run_id = ? "
                    "ORDER BY host, position", (run_id,)):
                hosts.setdefault(host, {"status": "ok", "summary": {}}).setdefault(
                    "resources", []).append(json.loads(event))
            for entry in hosts.values():
                entry.setdefault("resources", [])
        run["hosts"] = hosts
        return run

    def failed_hosts(self, run_id: str) -> List[str]:
        """A run's hosts that failed, were unreachable or never started, in order."""
        return [str(host) for (host,) in self.db.execute(
            "SELECT host FROM run_hosts WHERE run_id = ? AND status IN "
            "('failed', 'unreachable', 'not_started') ORDER BY position", (run_id,))]

    def host_history(self, host: str, limit: int = 50) -> List[Dict[str, Any]]:
        """One host across runs, newest first: when it ran, what changed, drift found."""
        rows = self.db.execute(
            "SELECT r.id, r.kind, r.started, h.status, h.error FROM runs r JOIN run_hosts h "
            "ON h.run_id = r.id WHERE h.host = ? ORDER BY r.started DESC, r.id DESC LIMIT ?",
            (host, limit))
        history = []
        for run_id, kind, started, status, error in rows:
            changed = [ident for (ident,) in self.db.execute(
                "SELECT identity FROM run_resources WHERE run_id = ? AND host = ? AND "
                "status = 'updated' ORDER BY position", (run_id, host))]
            history.append({"id": run_id, "kind": kind, "started": started, "status": status,
                            "error": error, "changed": changed})
        return history


def _alive(controller: Optional[str], pid: Optional[int]) -> bool:
    """Whether a run's controller process still runs (unknown on another machine)."""
    if controller != socket.gethostname() or not pid:
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _who() -> str:
    import getpass

    user = getpass.getuser()
    sudo = os.environ.get("SUDO_USER")
    return "%s (sudo from %s)" % (user, sudo) if sudo and sudo != user else user


def recipe_info(recipe: Optional[str]) -> Dict[str, Any]:
    """The recipe's path, a hash of its content (every file of a cookbook folder) and
    the git commit of the checkout it is in, if any."""
    if not recipe:
        return {}
    path = Path(recipe)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if ".git" in file.parts:
            continue
        try:
            digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode())
            digest.update(b"\0" + file.read_bytes() + b"\0")
        except OSError:
            continue
    return {"path": str(path), "hash": digest.hexdigest()[:16], "git_commit": _git_commit(path)}


def _git_commit(path: Path) -> Optional[str]:
    """The commit checked out where the recipe is (a worktree's too), read from the
    repository's files as git writes them; ``git rev-parse`` only when they do not
    say (another ref storage)."""
    folder = path if path.is_dir() else path.parent
    for parent in [folder.absolute(), *folder.absolute().parents]:
        dotgit = parent / ".git"
        if dotgit.is_file():  # a worktree or a submodule: "gitdir: <its folder>"
            text = _read(dotgit)
            gitdir = (parent / text[len("gitdir:"):].strip()) \
                if text and text.startswith("gitdir:") else None
        else:
            gitdir = dotgit if (dotgit / "HEAD").is_file() else None
        if gitdir is None:
            continue
        found = _head(gitdir)
        if found:
            return found
        import subprocess

        done = subprocess.run(["git", "-C", str(parent), "rev-parse", "HEAD"],
                              capture_output=True, text=True, timeout=10)
        return done.stdout.strip() or None if done.returncode == 0 else None
    return None


_HEX = frozenset("0123456789abcdef")


def _head(gitdir: Path) -> Optional[str]:
    """HEAD's commit from the files of ``gitdir``: a detached HEAD's own, or its
    branch's in refs/ or packed-refs (of the common folder, for a worktree)."""
    head = _read(gitdir / "HEAD")
    if head is None:
        return None
    if len(head) in (40, 64) and set(head) <= _HEX:
        return head
    if not head.startswith("ref: "):
        return None
    ref = head[len("ref: "):]
    common = _read(gitdir / "commondir")
    for folder in [gitdir] + ([gitdir / common] if common else []):
        value = _read(folder / ref)
        if value and len(value) in (40, 64) and set(value) <= _HEX:
            return value
        packed = _read(folder / "packed-refs")
        for line in (packed or "").splitlines():
            sha, _, name = line.partition(" ")
            if name == ref and len(sha) in (40, 64) and set(sha) <= _HEX:
                return sha
    return None


def _read(path: Path) -> Optional[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def new_run_id() -> str:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S")
    return "%s-%s" % (stamp, os.urandom(3).hex())


class Recorder:
    """Feeds one run into the store as it goes: the run row at the start, each host
    when it finishes, the totals at the end. A store that fails while the run goes
    is reported once and the run goes on (the console and the targets' journals
    still have it)."""

    def __init__(self, store: "Store", kind: str, recipe: Optional[str],
                 options: Sequence[str], warn: Callable[[str], None]) -> None:
        self.store = store
        self.kind = kind
        self.id = new_run_id()
        self.warn = warn
        self.recipe = recipe
        self.options = list(options)
        self.events: Dict[str, List[Dict[str, Any]]] = {}
        self.position = 0
        self.failed = False
        self.state = "new"  # new, running, done

    def begin(self) -> None:
        """The run reaches its hosts: record it (a compile error records nothing)."""
        if self.state == "new":
            self.state = "running"
            self._guard(lambda: self.store.start(self.id, self.kind, self.recipe,
                                                 self.options))

    def _guard(self, action: Callable[[], None]) -> None:
        if self.failed:
            return
        try:
            action()
        except (ConvergeError, Exception) as exc:  # noqa: BLE001 - never stop the run
            self.failed = True
            self.warn("the run store %s could not be written: %s (the run goes on)"
                      % (self.store.url, exc))

    def event(self, host: str, event: Dict[str, Any]) -> None:
        self.events.setdefault(host, []).append(event)

    def host(self, host: str, entry: Dict[str, Any]) -> None:
        events = self.events.get(host) or entry.get("resources") or []
        entry = dict(entry, seconds=round(sum(e.get("time") or 0 for e in events), 4))
        position, self.position = self.position, self.position + 1
        self._guard(lambda: self.store.host_done(self.id, host, position, entry, events))

    def finish(self, report: Optional[Dict[str, Any]], interrupted: bool = False) -> None:
        """The totals (or: the run was interrupted); once."""
        if self.state != "running":
            return
        self.state = "done"
        self._guard(lambda: self.store.finish(self.id, report, interrupted=interrupted))


def iter_events(run: Dict[str, Any]) -> Iterator[Tuple[str, Dict[str, Any]]]:
    for host, entry in run["hosts"].items():
        for event in entry.get("resources", []):
            yield host, event
