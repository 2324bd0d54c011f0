"""One self-contained HTML file from runs in the store: no script, font or image
from elsewhere, readable offline and attachable to a ticket.

Layout: a summary (hosts ok / changed / failed / unreachable), failed and
unreachable hosts first with their errors, then each host's resources: what
changed, folded open on click (``<details>``, so the keyboard and screen readers
work without any script), with change lines and diffs; resources that were up to
date are counted, not listed one by one (a 1,000-host run stays small). Then the
slowest hosts and resources, and, for hosts asked for with ``--host``, a timeline
of their runs. Each host's section carries ``data-host`` and ``data-status``.
Everything that came from a target is escaped.
"""

from __future__ import annotations

import html
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from .errors import printable

ORDER = {"failed": 0, "unreachable": 1, "not_started": 2, "changed": 3, "ok": 4}

STYLE = """
:root { color-scheme: light; --fg: #1b1b1b; --muted: #4a4a4a; --bg: #ffffff;
  --line: #c8c8c8; --failed: #a4001d; --changed: #7a4b00; --ok: #1d6b2a;
  --unreachable: #5a2d82; --code: #f3f3f3; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg);
  background: var(--bg); margin: 0; }
header, main, footer { max-width: 72rem; margin: 0 auto; padding: 0 1rem; }
header { border-bottom: 1px solid var(--line); padding-bottom: .5rem; }
h1 { font-size: 1.4rem; margin: 1rem 0 .25rem; }
h2 { font-size: 1.15rem; margin: 0; }
h3 { font-size: 1rem; margin: 1rem 0 .25rem; }
.meta { color: var(--muted); margin: 0; }
.skip { position: absolute; left: -999px; }
.skip:focus { left: 1rem; top: 1rem; background: var(--bg); padding: .25rem .5rem; }
nav ul { list-style: none; display: flex; flex-wrap: wrap; gap: .5rem; padding: 0; }
nav li { border: 1px solid var(--line); border-radius: 4px; padding: .25rem .75rem; }
.count { font-weight: 700; font-size: 1.2rem; }
.host { border: 1px solid var(--line); border-left: 6px solid var(--ok); border-radius: 4px;
  margin: .75rem 0; padding: .5rem .75rem; }
.host[data-status="failed"] { border-left-color: var(--failed); }
.host[data-status="changed"] { border-left-color: var(--changed); }
.host[data-status="unreachable"] { border-left-color: var(--unreachable); }
.status { font-weight: 700; text-transform: uppercase; font-size: .8rem; padding: 0 .35rem;
  border-radius: 3px; color: #fff; background: var(--ok); }
.status.failed { background: var(--failed); } .status.changed { background: var(--changed); }
.status.unreachable { background: var(--unreachable); }
.status.updated { background: var(--changed); } .status.skipped { background: var(--muted); }
.error { color: var(--failed); white-space: pre-wrap; font-family: ui-monospace, monospace; }
details.resource { border-top: 1px solid var(--line); padding: .25rem 0; }
details.resource > summary { cursor: pointer; font-family: ui-monospace, monospace; }
summary:focus-visible, a:focus-visible { outline: 3px solid #0b57d0; outline-offset: 2px; }
ul.changes { margin: .25rem 0 .25rem 1rem; padding-left: 1rem; }
pre.diff { background: var(--code); padding: .5rem; overflow-x: auto; margin: .25rem 0; }
table { border-collapse: collapse; margin: .25rem 0 1rem; }
th, td { text-align: left; padding: .2rem .6rem; border-bottom: 1px solid var(--line); }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
"""


def _e(text: Any) -> str:
    """Escaped for HTML, with control characters from a target made visible."""
    return html.escape(printable(str(text), tabs=True) if text is not None else "")


def _attr(text: Any) -> str:
    return html.escape(printable(str(text)), quote=True)


def _multiline(text: Any) -> str:
    return "\n".join(_e(line) for line in str(text).split("\n"))


def render(runs: Sequence[Dict[str, Any]],
           timelines: Optional[Dict[str, List[Dict[str, Any]]]] = None) -> str:
    """The report of ``runs`` (newest first), with a timeline per host in ``timelines``."""
    hosts = _hosts(runs)
    counts = {status: 0 for status in ORDER}
    for _, _, entry in hosts:
        counts[entry["status"]] = counts.get(entry["status"], 0) + 1
    title = "converge report: " + ", ".join(run["id"] for run in runs)
    out: List[str] = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>%s</title>" % _e(title), "<style>%s</style>" % STYLE, "</head>", "<body>",
        '<a class="skip" href="#hosts">Skip to the hosts</a>',
        "<header>", "<h1>converge report</h1>",
    ]
    for run in runs:
        out.append('<p class="meta">Run <strong>%s</strong>: %s of %s, started %s by %s, '
                   '%s%s</p>' % (
                       _e(run["id"]), _e(run["kind"]), _e(run.get("recipe") or "?"),
                       _e(run["started"]), _e(run.get("user") or "?"), _e(run["status"]),
                       ", %.2fs" % run["seconds"] if run.get("seconds") is not None else ""))
    out += ["</header>", '<nav aria-label="Summary"><ul>']
    for status in ORDER:
        out.append('<li data-count="%s"><span class="count">%d</span> %s</li>'
                   % (status, counts.get(status, 0), status))
    out += ["</ul></nav>", '<main id="hosts">', "<h2>Hosts</h2>"]
    for run, name, entry in hosts:
        out += _host(run, name, entry, len(runs) > 1)
    out += _slowest(hosts)
    for host, history in (timelines or {}).items():
        out += _timeline(host, history)
    out += ["</main>", "<footer><p class=\"meta\">Made by converge report.</p></footer>",
            "</body>", "</html>", ""]
    return "\n".join(out)


def _hosts(runs: Sequence[Dict[str, Any]]) -> List[Tuple[Dict[str, Any], str, Dict[str, Any]]]:
    """(run, host, entry) for every host of every run: failed first, then unreachable,
    changed and ok, each in the order the run had them."""
    found = [(run, name, entry) for run in runs for name, entry in run["hosts"].items()]
    return sorted(found, key=lambda item: ORDER.get(item[2]["status"], 9))


def _host(run: Dict[str, Any], name: str, entry: Dict[str, Any], many: bool) -> List[str]:
    status = entry["status"]
    anchor = "host-%s-%s" % (run["id"], name)
    label = "%s (run %s)" % (name, run["id"]) if many else name
    summary = entry.get("summary") or {}
    out = ['<section class="host" id="%s" data-host="%s" data-status="%s" data-run="%s" '
           'aria-labelledby="%s-h">' % (_attr(anchor), _attr(name), _attr(status),
                                        _attr(run["id"]), _attr(anchor)),
           '<h2 id="%s-h">%s <span class="status %s">%s</span></h2>'
           % (_attr(anchor), _e(label), _attr(status), _e(status)),
           '<p class="meta">%d updated, %d up to date, %d skipped, %d failed%s</p>' % (
               summary.get("updated", 0), summary.get("up_to_date", 0),
               summary.get("skipped", 0), summary.get("failed", 0),
               ", %.2fs" % entry["seconds"] if entry.get("seconds") else "")]
    if entry.get("error"):
        out.append('<p class="error" role="alert">%s</p>' % _multiline(entry["error"]))
    quiet = 0
    for event in entry.get("resources", []):
        if event.get("status") == "up_to_date":
            quiet += 1
            continue
        out += _resource(event)
    if quiet:
        out.append('<p class="meta">%d resource%s up to date.</p>'
                   % (quiet, "" if quiet == 1 else "s"))
    out.append("</section>")
    return out


def _resource(event: Dict[str, Any]) -> List[str]:
    status = event.get("status", "")
    word = {"up_to_date": "up to date"}.get(status, status)
    seconds = event.get("time")
    opened = " open" if status == "failed" else ""  # a failure is shown without a click
    out = ['<details class="resource" data-resource="%s" data-status="%s"%s>'
           % (_attr(event.get("id", "?")), _attr(status), opened),
           '<summary>%s action %s <span class="status %s">%s</span>%s</summary>' % (
               _e(event.get("id", "?")), _e(event.get("action", "")), _attr(status),
               _e(word), " %.3fs" % seconds if seconds is not None else "")]
    if event.get("skip_reason"):
        out.append('<p class="meta">skipped: %s</p>' % _e(event["skip_reason"]))
    if event.get("notified_by"):
        out.append('<p class="meta">notified by %s</p>' % _e(event["notified_by"]))
    if event.get("parent"):  # an inner resource of a composite
        out.append('<p class="meta">part of %s</p>' % _e(event["parent"]))
    changes = event.get("changes") or []
    if changes:
        out.append('<ul class="changes">%s</ul>'
                   % "".join("<li>%s</li>" % _e(change) for change in changes))
    diffs = event.get("diffs") or ([event["diff"]] if event.get("diff") else [])
    for diff in diffs:
        out.append('<pre class="diff">%s</pre>' % _multiline(diff))
    if event.get("error"):
        out.append('<p class="error">%s</p>' % _multiline(event["error"]))
    if event.get("source"):
        out.append('<p class="meta">declared at %s</p>' % _e(event["source"]))
    out.append("</details>")
    return out


def _slowest(hosts: Iterable[Tuple[Dict[str, Any], str, Dict[str, Any]]],
             top: int = 10) -> List[str]:
    rows = list(hosts)
    by_host = sorted(((entry.get("seconds") or 0.0, name, run["id"])
                      for run, name, entry in rows), reverse=True)[:top]
    by_resource = sorted(((event.get("time") or 0.0, name, str(event.get("id", "?")))
                          for _, name, entry in rows for event in entry.get("resources", [])),
                         reverse=True)[:top]
    out = ['<section aria-labelledby="slow-h">', '<h2 id="slow-h">Where the time went</h2>',
           "<h3>Slowest hosts</h3>",
           "<table><thead><tr><th scope=\"col\">host</th><th scope=\"col\">seconds</th>"
           "</tr></thead><tbody>"]
    out += ['<tr><td>%s</td><td class="num">%.3f</td></tr>' % (_e(name), seconds)
            for seconds, name, _ in by_host]
    out += ["</tbody></table>", "<h3>Slowest resources</h3>",
            "<table><thead><tr><th scope=\"col\">host</th><th scope=\"col\">resource</th>"
            "<th scope=\"col\">seconds</th></tr></thead><tbody>"]
    out += ['<tr><td>%s</td><td>%s</td><td class="num">%.3f</td></tr>'
            % (_e(name), _e(ident), seconds) for seconds, name, ident in by_resource]
    out += ["</tbody></table>", "</section>"]
    return out


def _timeline(host: str, history: List[Dict[str, Any]]) -> List[str]:
    """One host across runs: when it ran, what changed, where check found drift."""
    out = ['<section class="timeline" data-timeline="%s" aria-labelledby="tl-%s">'
           % (_attr(host), _attr(host)),
           '<h2 id="tl-%s">Timeline of %s</h2>' % (_attr(host), _e(host)),
           "<table><thead><tr><th scope=\"col\">started</th><th scope=\"col\">run</th>"
           "<th scope=\"col\">kind</th><th scope=\"col\">result</th>"
           "<th scope=\"col\">what changed</th></tr></thead><tbody>"]
    for entry in history:
        drift = entry["kind"] == "check" and entry["status"] == "changed"
        result = "drift found" if drift else entry["status"]
        what = ", ".join(entry["changed"][:8]) + (" ..." if len(entry["changed"]) > 8 else "")
        if entry.get("error"):
            what = entry["error"]
        out.append('<tr data-run="%s" data-drift="%s"><td>%s</td><td>%s</td><td>%s</td>'
                   "<td>%s</td><td>%s</td></tr>" % (
                       _attr(entry["id"]), "yes" if drift else "no", _e(entry["started"]),
                       _e(entry["id"]), _e(entry["kind"]), _e(result), _e(what)))
    out += ["</tbody></table>", "</section>"]
    return out
