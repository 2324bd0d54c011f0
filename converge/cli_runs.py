"""`converge runs` and `converge report`: the run store from the command line, and
the ``--store`` option of the commands that record runs (:func:`with_store`)."""

from __future__ import annotations

import functools
import inspect
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import typer

from .errors import printable, printable_lines

StoreOpt = typer.Option(None, "--store", metavar="URL", help="The run store: "
                        "sqlite:///PATH or postgresql://... (default: $CONVERGE_STORE, else "
                        "store.db in the state directory).")


def with_store(kind: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Give a command ``--store`` and record its run there: the command gets a
    ``recorder`` (converge/store.py) to hand to the runner."""

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        signature = inspect.signature(command)
        own = [p for p in signature.parameters.values() if p.name != "recorder"]
        added = inspect.Parameter("store", inspect.Parameter.KEYWORD_ONLY, default=StoreOpt,
                                  annotation=Optional[str])

        @functools.wraps(command)
        def wrapper(**values: Any) -> None:
            from .store import Recorder, StoreError, connect

            def warn(text: str) -> None:
                typer.echo("warning: " + text, err=True)

            url = values.pop("store")
            try:
                store = connect(url)
            except StoreError as exc:
                if url and not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
                    raise  # a mistyped --store is an error, not a warning
                warn("%s; the run goes on, unrecorded" % exc.message)
                command(recorder=None, **values)
                return
            recipe = values.get("recipe")
            recorder = Recorder(store, kind, str(recipe) if recipe else None, sys.argv[1:],
                                warn=warn)
            try:
                command(recorder=recorder, **values)
            finally:
                recorder.finish(None, interrupted=True)  # no-op once the run finished
                store.close()

        wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=own + [added])
        return wrapper

    return decorate


app = typer.Typer(
    invoke_without_command=True,
    help="The runs recorded in the run store.\n\nList them, or show one as the console "
    "did.",
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def runs(
    ctx: typer.Context,
    host: Optional[str] = typer.Option(None, "--host", metavar="HOST",
                                       help="Only runs that reached this host."),
    status: Optional[str] = typer.Option(
        None, "--status", metavar="STATUS", help="Only runs whose result is failed, "
        "unreachable, changed or ok, or whose state is running or interrupted."),
    recipe: Optional[str] = typer.Option(None, "--recipe", metavar="TEXT",
                                         help="Only runs of a recipe whose path contains TEXT."),
    since: Optional[str] = typer.Option(None, "--since", metavar="DATE",
                                        help="Only runs started on or after DATE "
                                        "(2026-12-01, or 2026-12-01T08:00)."),
    limit: int = typer.Option(20, "--limit", "-n", min=1, metavar="N",
                              help="At most this many runs."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
    store: Optional[str] = StoreOpt,
) -> None:
    """List runs, newest first, each with its hosts' results."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = store
        return
    from .store import connect

    opened = connect(store)
    try:
        found = opened.runs(host=host, status=status, recipe=recipe, since=since, limit=limit)
    finally:
        opened.close()
    if json_out:
        typer.echo(json.dumps([_listed(run) for run in found], indent=2))
        return
    if not found:
        typer.echo("(no runs recorded)")
        return
    for run in found:
        counts = _counts(run)
        typer.echo(printable("%s  %s  %-8s  %-11s  %s  %s" % (
            run["id"], run["started"][:19].replace("T", " "), run["kind"],
            run["result"] or run["status"],
            " ".join("%s=%d" % (k, v) for k, v in counts.items()), run.get("recipe") or "")))


def _counts(run: Dict[str, Any]) -> Dict[str, int]:
    counts = {"ok": 0, "changed": 0, "failed": 0, "unreachable": 0}
    for entry in run["hosts"].values():
        counts[entry["status"]] = counts.get(entry["status"], 0) + 1
    return counts


def _listed(run: Dict[str, Any]) -> Dict[str, Any]:
    shown = {k: v for k, v in run.items() if k != "hosts"}
    shown["hosts"] = {name: {"status": entry["status"], "error": entry.get("error")}
                      for name, entry in run["hosts"].items()}
    return shown


@app.command()
def show(
    ctx: typer.Context,
    run_id: Optional[str] = typer.Argument(None, metavar="[RUN_ID]",
                                           help="A run id (or its unique beginning); "
                                           "default: the last run."),
    diff: bool = typer.Option(False, "--diff", help="Show the diffs too."),
    json_out: bool = typer.Option(False, "--json", help="Print the run as JSON."),
) -> None:
    """Print one run as the console showed it."""
    from .report import Console, summary_line
    from .store import connect

    opened = connect(ctx.obj)
    try:
        run = opened.run(opened.resolve(run_id))
    finally:
        opened.close()
    if json_out:
        typer.echo(json.dumps(run, indent=2))
        return
    typer.echo(printable("run %s: %s of %s, started %s by %s (%s)" % (
        run["id"], run["kind"], run.get("recipe") or "?", run["started"], run.get("user"),
        run["result"] or run["status"])))
    console = Console(diff=diff, plan=run["kind"] == "check")
    for host, entry in run["hosts"].items():
        typer.echo(printable(host))
        for event in entry["resources"]:
            for line in console.lines(event):
                typer.echo("  " + line)
        if entry.get("error"):  # the target's words: escaped, as on the console
            typer.echo("  error: %s" % printable_lines(entry["error"]).replace("\n", "\n  "))
        typer.echo("  " + summary_line(entry["summary"], entry.get("seconds") or 0.0,
                                       plan=run["kind"] == "check"))


RunIdsArg = typer.Argument(None, metavar="[RUN_ID]...",
                          help="Run ids (or their unique beginnings); default: the last run.")
OutputOpt = typer.Option(Path("report.html"), "--output", "-o", metavar="FILE",
                         help="Where to write the HTML file.")
TimelineOpt = typer.Option([], "--host", metavar="HOST", help="Add a timeline of this host "
                           "across the recorded runs (repeatable).")


def report(
    run_ids: List[str] = RunIdsArg,
    output: Path = OutputOpt,
    host: List[str] = TimelineOpt,
    store: Optional[str] = StoreOpt,
) -> None:
    """Write one self-contained HTML report of runs.

    No network, no scripts: failed hosts first, each resource's changes and diffs,
    the slowest hosts and resources."""
    from .html_report import render
    from .store import connect

    started = time.monotonic()
    opened = connect(store)
    try:
        ids = [opened.resolve(r) for r in run_ids] if run_ids else [opened.resolve(None)]
        runs = [opened.run(run_id) for run_id in ids]
        timelines = {name: opened.host_history(name) for name in host}
    finally:
        opened.close()
    text = render(runs, timelines)
    output.write_text(text, encoding="utf-8")
    typer.echo("wrote %s (%d hosts, %d KiB) in %.2fs" % (
        output, sum(len(r["hosts"]) for r in runs), len(text.encode()) // 1024,
        time.monotonic() - started), err=True)
