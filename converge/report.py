"""Reporting: events become Chef-style console lines, a closing summary, and the
JSON report. Console output is plain text, with colour only on a terminal."""

from __future__ import annotations

import json
import sys
from typing import IO, Any, Dict, List, Optional

from .agent.engine import Event, summarize

RED, GREEN, YELLOW, DIM, RESET = "\033[31m", "\033[32m", "\033[33m", "\033[2m", "\033[0m"


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

    def _paint(self, code: str, text: str) -> str:
        return code + text + RESET if self.color else text

    def lines(self, event: Event) -> List[str]:
        """The lines for one event, without trailing newlines."""
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
            for change in event["changes"]:
                out.append("  - " + self._verb(change))
            where = (event.get("source") + ": ") if event.get("source") else ""
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
        for line in self.lines(event):
            self.stream.write(prefix + line + "\n")
        self.stream.flush()

    def summary(self, events: List[Event], seconds: float) -> None:
        self.stream.write(summary_line(summarize(events), seconds, self.plan) + "\n")
        self.stream.flush()


def summary_line(counts: Dict[str, int], seconds: float, plan: bool = False) -> str:
    """"Converged 3 resources: 1 updated, 2 up to date, 0 failed in 0.12s"."""
    noun = "resource" if counts["total"] == 1 else "resources"
    if plan:
        text = "Plan for %d %s: %d would change, %d up to date, %d failed" % (
            counts["total"], noun, counts["updated"], counts["up_to_date"], counts["failed"])
    else:
        text = "Converged %d %s: %d updated, %d up to date, %d failed" % (
            counts["total"], noun, counts["updated"], counts["up_to_date"], counts["failed"])
    if counts["skipped"]:
        text += ", %d skipped" % counts["skipped"]
    if counts.get("ignored"):
        text += ", %d failed but ignored" % counts["ignored"]
    return text + " in %.2fs" % seconds


def host_report(events: List[Event], error: Optional[str] = None) -> Dict[str, Any]:
    """The JSON report entry of one host."""
    resources = []
    for e in events:
        entry = {k: e.get(k) for k in ("id", "type", "action", "status", "changes", "error")}
        entry["warnings"] = list(e.get("warnings") or [])
        for optional in ("skip_reason", "notified_by", "source", "time", "ignored"):
            if e.get(optional) is not None:
                entry[optional] = e[optional]
        if e.get("diffs"):
            entry["diff"] = "".join(e["diffs"])
        resources.append(entry)
    report: Dict[str, Any] = {"resources": resources, "summary": summarize(events)}
    if error is not None:
        report["error"] = error
    return report


def json_report(hosts: Dict[str, Dict[str, Any]], seconds: float, mode: str) -> Dict[str, Any]:
    """The whole report: one entry per host and the totals."""
    total = {"hosts": len(hosts), "failed_hosts": 0, "updated": 0, "up_to_date": 0,
             "skipped": 0, "failed": 0, "total": 0, "ignored": 0}
    for entry in hosts.values():
        if entry.get("error") or entry["summary"]["failed"]:
            total["failed_hosts"] += 1
        for key in ("updated", "up_to_date", "skipped", "failed", "total", "ignored"):
            total[key] += entry["summary"].get(key, 0)
    total["seconds"] = round(seconds, 3)
    return {"mode": mode, "hosts": hosts, "summary": total}


def write_json(report: Dict[str, Any], path: str) -> None:
    text = json.dumps(report, indent=2, sort_keys=False) + "\n"
    if path == "-":
        sys.stdout.write(text)
    else:
        with open(path, "w") as fh:
            fh.write(text)
