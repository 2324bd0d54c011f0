"""Editing crontab text: the entry a ``# converge: NAME`` marker heads, kept among
lines converge does not manage. Pure functions; standard library, Python 3.8."""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Tuple

MARKER = "# converge: "
_ENV = re.compile(r"^\s*[A-Za-z_][A-Za-z0-9_]*\s*=")


def lines(text: Optional[str]) -> List[str]:
    """The lines of a crontab as cron reads them: split at "\\n" only (splitlines
    would also split a command at "\\x1e" or "\\u2028", which cron keeps)."""
    out = (text or "").split("\n")
    return out[:-1] if out[-1] == "" else out


def _same(a: str, b: str) -> bool:
    return a.split() == b.split()


def find(lines: List[str], name: str, job: Optional[str]) -> Tuple[int, int, bool]:
    """(start, end, marked) of the entry's lines, or (-1, -1, False).

    A marked entry is its marker, the environment lines under it and one job line
    (possibly commented out). Without a marker, an unmarked line identical to
    ``job`` is the entry (to be adopted), unless another marker claims it.
    """
    for i, line in enumerate(lines):
        if line.rstrip() == MARKER + name:
            end = i + 1
            while end < len(lines) and _ENV.match(lines[end]):
                end += 1
            if end < len(lines) and not lines[end].startswith(MARKER) and lines[end].strip():
                end += 1
            return i, end, True
    if job is not None:
        for i, line in enumerate(lines):
            claimed = i > 0 and lines[i - 1].startswith(MARKER)
            if not claimed and (_same(line, job) or _same(line, "# " + job)):
                return i, i + 1, False
    return -1, -1, False


def edit(text: Optional[str], name: str, block: Optional[List[str]], job: Optional[str]
         ) -> str:
    """The text with the entry replaced by ``block`` (appended when new, removed when
    ``block`` is None). Stable: edit(edit(t)) == edit(t)."""
    rows = lines(text)
    start, end, _ = find(rows, name, job)
    if start == -1:
        out = rows + (block or [])
    else:
        out = rows[:start] + (block or []) + rows[end:]
    return "\n".join(out) + "\n" if out else ""


def has_jobs(text: str) -> bool:
    """Whether any line is a job (not blank, a comment or an environment setting)."""
    return any(line.strip() and not line.lstrip().startswith("#") and not _ENV.match(line)
               for line in lines(text))


def parse_entry(lines: List[str]) -> Dict[str, Any]:
    """The cron properties of an entry's lines (marker, environment, job) in a
    user's crontab (no user column): what a rollback recreates it from."""
    rest = [line for line in lines if not line.startswith(MARKER)]
    job = rest[-1] if rest else ""
    env = {}
    for line in rest[:-1]:
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        env[key.strip()] = value
    props: Dict[str, Any] = {"environment": env, "disabled": job.startswith("# ")}
    if props["disabled"]:
        job = job[2:]
    if job.startswith("@"):
        props["special"], _, props["command"] = job.partition(" ")
        return props
    fields = job.split(None, 5)
    for name, value in zip(("minute", "hour", "day", "month", "weekday"), fields):  # noqa: B905
        props[name] = value
    props["command"] = fields[5] if len(fields) == 6 else ""
    return props
