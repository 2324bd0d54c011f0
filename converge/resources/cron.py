"""cron: a scheduled job, in /etc/cron.d or in a user's crontab.

Example::

    cron("sysstat-collect", minute="*/10", user="root",
         command="/usr/lib/sysstat/sa1 1 1", cron_file="sysstat")
    cron("backup", hour=2, minute=30, weekday="1-5", user="backup",
         command="/usr/local/bin/backup --quiet", environment={"MAILTO": "ops@example.com"})
    cron("warm-cache", special="@reboot", command="/usr/local/bin/warm")
    cron("old-job", action="delete")

With ``cron_file`` the entry lives in /etc/cron.d/<cron_file> (with the user
column; several entries may share one file; mode 0644). Otherwise it lives in the
user's crontab, read with ``crontab -u USER -l`` and written with ``crontab -u
USER -``, and every line converge does not manage is kept as it was (with
``converge apply --root DIR``, the spool file DIR/var/spool/cron/crontabs/USER
stands in for it: crontab(1) only knows the live machine).

Each entry is headed by a marker line, ``# converge: NAME``, so changing the
command or the schedule updates the entry in place instead of adding a second
one. A line identical to the entry that is already there without a marker is
adopted (the marker is added above it), never duplicated. Environment lines go
directly under the marker, above the job line. Mind that cron applies an
environment line to *every later line* of the same crontab or cron.d file, not
just to this entry: give entries that need different environments their own
``cron_file``. ``disabled=True`` keeps the job line commented out.
Deleting the last entry of a ``cron_file`` removes the file.

Fields are checked at compile time as Debian's cron and cronie read them: numbers
in range, lists, ranges, steps, and month and weekday names (three letters, any
case) on their own or in ranges and lists (``weekday="mon-fri"``,
``month="jan,jul"``). Refused: ``minute '61' is out of range 0-59``, a long name
(``monday``), a step after a single value (``mon/2``), a step of 0, and what
Debian's crontab would install while ignoring its end (``1-2-3``). A backwards
range (``hour="22-2"``) wraps round, as in Debian's cron. A
``%`` in the command must be written ``\\%``: cron turns a bare ``%`` into a
newline. Idempotent: an entry that is already as declared is not rewritten.
"""

from __future__ import annotations

from typing import Any, Dict, List, NamedTuple, Optional, Tuple, Union

from ..agent import managed
from ..errors import ResourceError
from . import _cron_fields as cf
from . import _crontab as ct
from . import _validate as v
from ._base import Change, Resource, prop

CRON_D = "/etc/cron.d"
#: Where a user's crontab lives on a System rooted elsewhere than / (tests,
#: ``--root``): crontab(1) always edits the live machine's spool, so it is not used.
SPOOL = "/var/spool/cron/crontabs"


class Crontab(NamedTuple):
    """Change.data for a user's crontab on the live machine: the text to install
    with crontab(1) (empty: remove the crontab). A file converge writes itself
    (cron.d, or the spool under a root) is a managed.Write instead."""

    user: str
    text: str


class Cron(Resource, type_name="cron"):
    """Manage a cron job in /etc/cron.d or a user's crontab, marked as converge's."""

    actions = ("create", "delete")

    name: str = prop(doc="Names the entry: its '# converge: NAME' marker line.", identity=True,
                     coerce=cf.entry_name)
    command: Optional[str] = prop(None, doc="The command line cron runs (a literal % written "
                                  "as \\%).", sensitive=True, required_for=("create",),
                                  coerce=cf.command)
    minute: Union[str, int, List[Union[str, int]]] = prop(
        "*", doc="Minute, 0-59: a number, range, list or step ('*/10').", coerce=cf.time_field)
    hour: Union[str, int, List[Union[str, int]]] = prop("*", doc="Hour, 0-23.",
                                                        coerce=cf.time_field)
    day: Union[str, int, List[Union[str, int]]] = prop("*", doc="Day of the month, 1-31.",
                                                       coerce=cf.time_field)
    month: Union[str, int, List[Union[str, int]]] = prop(
        "*", doc="Month, 1-12 or a name (jan), also in ranges and lists (jan-mar,jul).",
        coerce=cf.time_field)
    weekday: Union[str, int, List[Union[str, int]]] = prop(
        "*", doc="Day of the week, 0-7 (0 and 7 are Sunday) or a name (mon), also in "
        "ranges and lists (mon-fri).", coerce=cf.time_field)
    special: Optional[str] = prop(None, doc="Instead of the five fields ('daily' is "
                                  "'@daily').", choices=cf.SPECIALS, coerce=cf.special)
    user: str = prop("root", doc="The user the job runs as.", coerce=v.account)
    environment: Dict[str, str] = prop(factory=dict, doc="Variables set on lines above the "
                                       "job, such as {'MAILTO': 'root'}; cron applies them to "
                                       "every later line of the same file.",
                                       sensitive=True, coerce=cf.environment)
    cron_file: Optional[str] = prop(None, doc="A file name under /etc/cron.d; the user's "
                                    "crontab when unset.", coerce=cf.file_name)
    disabled: bool = prop(False, doc="Keep the entry, commented out.")

    def normalise(self) -> None:
        if self.special and any(getattr(self, n) != "*" for n in cf.FIELDS):
            raise self.fail("give either special or the minute/hour/day/month/weekday "
                            "fields, not both")

    @property
    def where(self) -> str:
        return "%s/%s" % (CRON_D, self.cron_file) if self.cron_file else \
            "the crontab of %s" % self.user

    def job(self) -> Optional[str]:
        """The job line, uncommented."""
        if self.command is None:
            return None
        when = self.special or " ".join(getattr(self, n) for n in cf.FIELDS)
        who = " " + self.user if self.cron_file else ""
        return "%s%s %s" % (when, who, self.command)

    def block(self) -> List[str]:
        env = ["%s=%s" % (k, val if val and val == val.strip() else '"%s"' % val)
               for k, val in sorted(self.environment.items())]
        job = self.job() or ""
        return [ct.MARKER + self.name] + env + [("# " + job) if self.disabled else job]

    def writes(self) -> List[str]:
        if self.cron_file:
            return [self.where]
        return ["crontab(%s)" % self.user, "%s/%s" % (SPOOL, self.user)]  # crontab(1)'s file

    # -- target ----------------------------------------------------------------------

    def current(self, system: Any) -> Dict[str, Any]:
        if self.action == "create" and system.uid(self.user) is None:
            raise ResourceError("user '%s' does not exist on this machine" % self.user)
        if self.cron_file:
            st = system.stat(self.where)
            return {"text": system.read_text(self.where), "path": self.where,
                    "mode": None if st is None else "%04o" % (st.st_mode & 0o7777)}
        if system.root != "/":
            spool = "%s/%s" % (SPOOL, self.user)
            return {"text": system.read_text(spool), "path": spool}
        done = system.run(["crontab", "-u", self.user, "-l"])
        if done.ok:
            return {"text": done.stdout, "path": None}
        if "no crontab" in done.stderr:
            return {"text": None, "path": None}
        raise ResourceError("cannot read the crontab of %s: %s" % (self.user, done.output()))

    def changes(self, current: Dict[str, Any]) -> List[Change]:
        text = current["text"]
        lines = ct.lines(text)
        start, _, marked = ct.find(lines, self.name, self.job())
        out: List[Change] = []
        if self.action == "delete":
            if start == -1:
                return []
            new = ct.edit(text, self.name, None, self.job())
            if self.cron_file and not ct.has_jobs(new):
                return [Change("delete %s (its last entry, %s, is gone)" % (self.where, self.name),
                               data=self._target(current, None))]
            return [self._change("delete cron entry %s from %s", current, new)]
        new = ct.edit(text, self.name, self.block(), self.job())
        if new != text:
            if start == -1:
                out.append(self._change("add cron entry %s to %s", current, new))
            elif not marked:
                out.append(self._change("adopt the existing cron entry %s in %s (add its marker)",
                                        current, new))
            else:
                out.append(self._change("update cron entry %s in %s", current, new))
        if self.cron_file and current.get("mode") not in (None, "0644") and not out:
            out.append(Change("change mode of %s from '%s' to '0644'" % (self.where,
                                                                           current["mode"]),
                              data=self._target(current, new)))
        return out

    def _change(self, sentence: str, current: Dict[str, Any], new: str) -> Change:
        diff = managed.diff(self, (current["text"] or "").encode(), new.encode(),
                            self.where if self.cron_file else "crontab(%s)" % self.user)
        return Change(sentence % (self.name, self.where), diff=diff,
                      data=self._target(current, new))

    def _target(self, current: Dict[str, Any], new: Optional[str]) -> Any:
        """Change.data: the cron.d file (0644; None removes it) or, under a root,
        the spool file (0600; removed when empty) as it should be; on the live
        machine, the user's crontab for crontab(1)."""
        path = current.get("path")
        if path is None:
            return Crontab(self.user, new or "")
        data = None if new is None or (not self.cron_file and not new) else new.encode("utf-8")
        return managed.Write(path, data, 0o644 if self.cron_file else 0o600, parents=0o755)

    def before(self, system: Any, current: Dict[str, Any], changes: List[Change]
               ) -> Dict[str, Any]:
        """Journal hook: the cron.d file (or, under a root, the spool file) is kept
        whole by the journal; for a live user crontab, the entry's lines before."""
        if current.get("path") is not None:
            return managed.journal_files(system, current["path"])
        lines = ct.lines(current["text"])
        start, end, _ = ct.find(lines, self.name, self.job())
        return {"name": self.name, "user": self.user,
                "entry": lines[start:end] if start != -1 else None}

    @classmethod
    def undo(cls, before: Dict[str, Any], system: Any) -> List[Tuple[str, str, Dict[str, Any]]]:
        """Rollback of a user crontab entry: recreate it as it was, or delete it."""
        if "name" not in before:
            return []
        props = {"name": before["name"], "user": before["user"]}
        if before["entry"] is None:
            return [("cron", "delete", props)]
        props.update(ct.parse_entry(before["entry"]))
        return [("cron", "create", props)]

    def apply(self, system: Any, changes: List[Change]) -> None:
        target = changes[-1].data
        if isinstance(target, managed.Write):
            managed.write(system, target)
            return
        new = target.text
        argv = ["crontab", "-u", self.user] + (["-"] if new else ["-r"])
        done = system.run(argv, input=new)
        if not done.ok:
            raise ResourceError("crontab refused the new crontab of %s: %s"
                                % (self.user, done.output()))
