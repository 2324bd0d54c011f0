"""Reporting: events become Chef-style console lines, a closing summary, and the
JSON report. Console output is plain text, with colour only on a terminal."""

from __future__ import annotations

import json
import sys
from typing import IO, Any, Dict, List, Optional

from .agent.engine import Event, summarize
from .errors import printable, printable_lines
from .vault import scrub, scrub_data

RED, GREEN, YELLOW, DIM, RESET = "\033[31m", "\033[32m", "\033[33m", "\033[2m", "\033[0m"
BOLD = "\033[1m"


class Groups:
    """Composites' lines: a composite's event comes after those of its inner
    resources, so their lines wait for it; then its line (which says how the whole
    went: updated, up to date) comes first, theirs indented under it."""

    def __init__(self) -> None:
        self.pending: Dict[str, List[str]] = {}

    def feed(self, event: Event, lines: List[str]) -> List[str]:
        """The lines to show now for an event whose own lines are ``lines``."""
        if event.get("composite"):
            lines = lines + ["  " + line for line in self.pending.pop(event["id"], [])]
        parent = event.get("parent")
        if parent:
            self.pending.setdefault(parent, []).extend(lines)
            return []
        return lines


class Console:
    """Writes resource lines as events arrive, and the summary at the end."""

    def __init__(self, stream: Optional[IO[str]] = None, *, diff: bool = False,
                 plan: bool = False, color: Optional[bool] = None, quiet: bool = False,
                 show_hosts: bool = False) -> None:
        self.stream = stream or sys.stdout
        self.diff = diff
        self.plan = plan
        self.color = self.stream.isatty() if color is None else color
        self.quiet = quiet
        self.show_hosts = show_hosts
        self.groups: Dict[str, Groups] = {}  # by host

    def _paint(self, code: str, text: str) -> str:
        return code + text + RESET if self.color else text

    def lines(self, event: Event) -> List[str]:
        """The lines for one event, without trailing newlines. Whatever came from a
        target is shown escaped (:func:`printable`): a file name, a command's error
        or a diff line must not drive the terminal."""
        event = _shown(event)
        head = "* %s action %s" % (event["id"], event["action"])
        status = event["status"]
        out: List[str] = []
        if status == "up_to_date":
            if self.quiet:
                return []
            out.append(head + self._paint(DIM, " (up to date)"))
        elif status == "skipped":
            if self.quiet:
                return []
            out.append(head + self._paint(DIM, " (skipped due to %s)" % event.get("skip_reason")))
        elif status == "failed":
            tag = " (failed, ignored)" if event.get("ignored") else " (failed)"
            out.append(head + self._paint(RED, tag))
            # Its change lines are not shown: how many of them were carried out
            # before the error is not known (Chef shows the failing action's error).
            source = event.get("source")
            where = "%s: " % (source,) if source else ""
            message = (event.get("error") or "").splitlines() or [""]
            out.append(self._paint(RED, "  ! %s%s" % (where, message[0])))
            out.extend("    " + line for line in message[1:])
        else:
            notified = event.get("notified_by")
            out.append(head + (self._paint(DIM, " (notified by %s)" % notified)
                               if notified else ""))
            for change in event["changes"]:
                out.append(self._paint(GREEN, "  - " + self._verb(change)))
            if self.diff:
                for diff in event.get("diffs") or []:
                    out.extend("    " + self._diff_line(line) for line in diff.splitlines())
        for warning in event.get("warnings") or []:
            out.append(self._paint(YELLOW, "  warning: " + warning))
        return out

    def _verb(self, change: str) -> str:
        return "would " + change if self.plan else change

    def _diff_line(self, line: str) -> str:
        if line.startswith("+") and not line.startswith("+++"):
            return self._paint(GREEN, line)
        if line.startswith("-") and not line.startswith("---"):
            return self._paint(RED, line)
        return line

    def event(self, event: Event, host: str = "localhost") -> None:
        prefix = "%s: " % host if self.show_hosts else ""
        lines = self.groups.setdefault(host, Groups()).feed(event, self.lines(event))
        for line in lines:
            self.stream.write(prefix + line + "\n")
        self.stream.flush()

    def summary(self, events: List[Event], seconds: float) -> None:
        self.stream.write(summary_line(summarize(events), seconds, self.plan) + "\n")
        self.stream.flush()


def _shown(event: Event) -> Event:
    """The event's texts as they may be shown: each line :func:`printable`, and no
    value decrypted from a vault (see converge/vault.py)."""
    def lines(text: Any) -> Any:
        if not isinstance(text, str):
            return text
        return printable_lines(scrub(text), tabs=True)

    shown = dict(event)
    for key in ("id", "action", "skip_reason", "notified_by", "error", "source"):
        shown[key] = lines(event.get(key))
    for key in ("changes", "diffs", "warnings"):
        shown[key] = [lines(text) for text in event.get(key) or []]
    return shown


def counts_text(counts: Dict[str, int], plan: bool = False) -> str:
    """Resource counts in the words used everywhere (console, recap, docs; the JSON
    report's status values): "1 updated, 2 up to date, 0 failed", then ", 1 skipped"
    and ", 1 failed but ignored" when there are any; "would change" in a plan."""
    text = "%d %s, %d up to date, %d failed" % (
        counts["updated"], "would change" if plan else "updated", counts["up_to_date"],
        counts["failed"])
    if counts.get("skipped"):
        text += ", %d skipped" % counts["skipped"]
    if counts.get("ignored"):
        text += ", %d failed but ignored" % counts["ignored"]
    return text


def _many(count: int, noun: str) -> str:
    return "%d %s%s" % (count, noun, "" if count == 1 else "s")


def summary_line(counts: Dict[str, int], seconds: float, plan: bool = False) -> str:
    """"Converged 3 resources: 1 updated, 2 up to date, 0 failed in 0.12s"."""
    return "%s %s: %s in %.2fs" % ("Plan for" if plan else "Converged",
                                   _many(counts["total"], "resource"),
                                   counts_text(counts, plan), seconds)


def host_report(events: List[Event], error: Optional[str] = None) -> Dict[str, Any]:
    """The JSON report entry of one host."""
    resources = []
    for e in events:
        entry = {k: e.get(k) for k in ("id", "type", "action", "status", "changes", "error")}
        entry["warnings"] = list(e.get("warnings") or [])
        for optional in ("skip_reason", "notified_by", "source", "time", "ignored", "parent",
                         "composite"):
            if e.get(optional) is not None:
                entry[optional] = e[optional]
        if e.get("diffs"):
            entry["diff"] = "".join(e["diffs"])
        resources.append(entry)
    report: Dict[str, Any] = {"resources": resources, "summary": summarize(events)}
    if error is not None:
        report["error"] = error
    return report


def history_lines(runs: List[Dict[str, Any]], changes: int = 3) -> List[str]:
    """``converge history``: one line per run, then what it changed (the first
    ``changes`` lines of each resource). The journal is the target's: every text
    in it is shown escaped (:func:`printable`)."""
    lines = []
    for run in runs:
        if run.get("error"):
            lines.append(printable("%s  (unreadable: %s)" % (run["id"], run["error"])))
            continue
        kind = run["kind"] if not run.get("of") else "rollback of %s" % run["of"]
        counts = run.get("summary") or {}
        state = "INTERRUPTED" if run.get("interrupted") else "%s changed, %s failed" % (
            counts.get("updated", 0), counts.get("failed", 0))
        lines.append(printable("%s  %s  %s  %s  %s" % (run["id"], run.get("started"), kind,
                                                       state, run.get("recipe") or "")))
        for res in run.get("changed", []):
            status = "" if res["status"] == "updated" else " (%s)" % res["status"]
            lines.append(printable("    %s%s" % (res["id"], status)))
            if res["status"] == "failed":  # its changes were not (all) made: its error
                error = (res.get("error") or "").splitlines()
                lines.append("      ! " + printable(error[0] if error else "failed"))
                continue
            lines.extend(printable("      - %s" % change) for change in res["changes"][:changes])
            if len(res["changes"]) > changes:
                lines.append("      ... %d more" % (len(res["changes"]) - changes))
    return lines


def json_report(hosts: Dict[str, Dict[str, Any]], seconds: float, mode: str) -> Dict[str, Any]:
    """The whole report: one entry per host and the totals."""
    total: Dict[str, float] = {
        "hosts": len(hosts), "failed_hosts": 0, "unreachable_hosts": 0, "updated": 0,
        "up_to_date": 0, "skipped": 0, "failed": 0, "total": 0, "ignored": 0}
    for entry in hosts.values():
        if entry.get("error") or entry["summary"]["failed"]:
            total["failed_hosts"] += 1
        if entry.get("unreachable"):
            total["unreachable_hosts"] += 1
        for key in ("updated", "up_to_date", "skipped", "failed", "total", "ignored"):
            total[key] += entry["summary"].get(key, 0)
    total["seconds"] = round(seconds, 3)
    return {"mode": mode, "hosts": hosts, "summary": total}


def write_json(report: Dict[str, Any], path: str) -> None:
    text = json.dumps(scrub_data(report), indent=2, sort_keys=False) + "\n"
    if path == "-":
        sys.stdout.write(text)
    else:
        with open(path, "w") as fh:
            fh.write(text)


PROFILE_COLUMNS = (("connect", "connect"), ("auth", "auth"), ("agent_start", "start"),
                   ("compile", "compile"), ("setup", "setup"), ("resources", "resources"),
                   ("report", "report"), ("total", "total"))


def profile_lines(report: Dict[str, Any]) -> List[str]:
    """``--profile``: a table of where each host's time went (seconds; "-" where a
    phase does not apply, as connecting to a local run), each host followed by its
    slowest resources. Host names and resource ids are shown escaped."""
    hosts = {h: e["profile"] for h, e in report["hosts"].items() if e.get("profile")}
    if not hosts:
        return []
    names = {h: printable(h) for h in hosts}
    width = max([len(n) for n in names.values()] + [4])
    head = "host".ljust(width) + "".join("  %9s" % title for _, title in PROFILE_COLUMNS)
    lines = ["PROFILE (seconds; connecting overlaps compiling; see --json for more)", head]
    for host, prof in hosts.items():
        cells = ["%9s" % ("-" if prof.get(key) is None else "%.3f" % prof[key])
                 for key, _ in PROFILE_COLUMNS]
        lines.append(names[host].ljust(width) + "".join("  " + c for c in cells))
        slowest = ", ".join("%s %.3f" % (printable(s["id"]), s["seconds"])
                            for s in prof.get("slowest") or [])
        if slowest:
            lines.append("  slowest: " + slowest)
        if prof.get("bundle_sent"):
            lines.append("  (start includes sending the agent bundle)")
    return lines


# -- fleets ------------------------------------------------------------------------


def host_state(entry: Dict[str, Any], plan: bool = False) -> str:
    """How a host ended, in the words used for hosts (the recap, the run store,
    ``converge runs``): ``unreachable`` (no connection could be made), ``not
    started`` (--max-fail aborted the run first), ``failed`` (a resource failed, or
    the run broke off), ``changed`` (``would change`` in a plan) or ``ok`` (nothing
    to change)."""
    if entry.get("unreachable"):
        return "unreachable"
    if entry.get("not_started"):
        return "not started"
    if entry.get("error") or entry["summary"]["failed"]:
        return "failed"
    if entry["summary"]["updated"]:
        return "would change" if plan else "changed"
    return "ok"


def recap_lines(report: Dict[str, Any], plan: bool = False) -> List[str]:
    """``web1  changed  1 updated, 5 up to date, 0 failed``, one line per host (the
    resource counts left out for a host that ran none)."""
    hosts = report["hosts"]
    states = {host: host_state(entry, plan) for host, entry in hosts.items()}
    width = max(len(h) for h in hosts) if hosts else 0
    state_width = max([len(s) for s in states.values()] + [0])
    lines = []
    for host, entry in hosts.items():
        if entry.get("not_started"):
            lines.append("%s  not started (the run was aborted by --max-fail)"
                         % host.ljust(width))
            continue
        line = "%s  %s" % (printable(host).ljust(width), states[host].ljust(state_width))
        if entry["summary"]["total"] or not entry.get("error"):
            line += "  " + counts_text(entry["summary"], plan)
        lines.append(line.rstrip())
    return lines


def fleet_line(report: Dict[str, Any], plan: bool = False) -> str:
    """The closing line of a run over SSH: hosts by :func:`host_state`, then
    resources in the words of :func:`summary_line`."""
    s = report["summary"]
    states = [host_state(entry, plan) for entry in report["hosts"].values()]
    changed = "would change" if plan else "changed"
    not_started = states.count("not started")
    line = "%s %s: %d ok, %d %s, %d failed, %d unreachable%s; %s: %s in %.2fs" % (
        "Plan for" if plan else "Converged", _many(s["hosts"], "host"), states.count("ok"),
        states.count(changed), changed, states.count("failed"), states.count("unreachable"),
        ", %d not started" % not_started if not_started else "",
        _many(s["total"], "resource"), counts_text(s, plan), s["seconds"])
    return line + (" (ABORTED: more hosts failed than --max-fail allows)"
                   if s.get("aborted") else "")


class FleetConsole:
    """Output for a run over SSH: each host's lines grouped under its name as it
    finishes, a recap per host at the end; on a terminal, a live progress bar
    (rich, imported only here and only then) above the lines."""

    def __init__(self, console: Console, total: int, *, progress: Optional[bool] = None,
                 live: bool = False) -> None:
        self.console = console
        self.total = total
        self.live = live  # one host: print its lines as they come
        self.pending: Dict[str, List[str]] = {}
        self.groups: Dict[str, Groups] = {}  # composites' lines, by host
        self.done = self.changed = self.failed = 0
        self.wrote = False  # any line yet (the recap is set apart by a blank line)
        self._progress: Any = None
        self._task: Any = None
        use_bar = self.console.stream.isatty() if progress is None else progress
        if use_bar and not live:
            from rich.console import Console as RichConsole
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            rich_console = RichConsole(file=self.console.stream)
            self._progress = Progress(
                TextColumn("hosts"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[changed]} with changes, "
                           "{task.fields[failed]} failed or unreachable"),
                TimeElapsedColumn(), console=rich_console, transient=True)
            self._task = self._progress.add_task("hosts", total=total, changed=0, failed=0)
            self._progress.start()

    def _write(self, lines: List[str]) -> None:
        self.wrote = self.wrote or bool(lines)
        if self._progress is not None:
            from rich.text import Text

            for line in lines:
                self._progress.console.print(Text.from_ansi(line), soft_wrap=True)
        else:
            self.console.stream.write("".join(line + "\n" for line in lines))
            self.console.stream.flush()

    def event(self, host: str, event: Event) -> None:
        own = self.console.lines(event)
        lines = ["  " + line for line in self.groups.setdefault(host, Groups()).feed(event, own)]
        if self.live:
            if not lines:  # check: an up-to-date resource prints nothing, nor its host
                return
            if host not in self.pending:
                self.pending[host] = []
                self._write([self.console._paint(BOLD, printable(host))])
            self._write(lines)
        else:
            self.pending.setdefault(host, []).extend(lines)

    def batch(self, number: int, total: int, hosts: List[str]) -> None:
        """A batch of a --serial run starts."""
        self._write(["BATCH %d/%d: %s" % (number, total, ", ".join(hosts))])

    def host_done(self, host: str, entry: Dict[str, Any]) -> None:
        self.done += 1
        self.changed += 1 if entry["summary"]["updated"] else 0
        self.failed += 1 if host_state(entry) in ("failed", "unreachable") else 0
        headed = self.live and host in self.pending  # its lines are out already
        lines = [] if headed else self.pending.get(host, [])
        self.pending.pop(host, None)
        if entry.get("error"):
            state = host_state(entry)  # a host not started says so in its error
            tag = "" if state == "not started" else state + ": "
            message = printable_lines(entry["error"]).split("\n")
            if message[0].startswith(host + ": "):
                message[0] = message[0][len(host) + 2:]
            lines.append(self.console._paint(RED, "  ! %s%s" % (tag, message[0])))
            lines.extend("    " + line for line in message[1:])
        if lines and not headed:  # a host with nothing to show (check, in sync) has no head
            lines.insert(0, self.console._paint(BOLD, printable(host)))
        self._write(lines)
        if self._progress is not None:
            self._progress.update(self._task, advance=1, changed=self.changed,
                                  failed=self.failed)

    def stop(self) -> None:
        """Take the progress bar down (also when the run raised)."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def finish(self, report: Dict[str, Any], plan: bool = False) -> None:
        self.stop()
        self._write([""] * self.wrote + ["RECAP"] + recap_lines(report, plan)
                    + [fleet_line(report, plan)])
