"""The command line: parse, call the library, render, and map errors to exit codes
in one place (:func:`main`). Heavy libraries are imported only by the commands
that need them, so ``converge --help`` starts fast."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any, List, Optional

# Plain help: typer would import rich (60 ms) for every command. Read at import only.
_saved = os.environ.get("TYPER_USE_RICH")
os.environ["TYPER_USE_RICH"] = "0"
import typer  # noqa: E402

if _saved is None:
    del os.environ["TYPER_USE_RICH"]
else:
    os.environ["TYPER_USE_RICH"] = _saved

from ._version import __version__  # noqa: E402
from .errors import ConvergeError  # noqa: E402

# Exit codes (documented in docs/operations.md; stable).
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGED = 2  # --detailed-exitcode: changes made; check: drift found
EXIT_FAILED = 4  # --detailed-exitcode: failures (6 = changes and failures)

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="converge: configuration management for Linux servers, in plain Python.",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo("converge %s" % __version__)
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """converge: configuration management for Linux servers, in plain Python."""


RecipeArg = typer.Argument(..., help="A recipe file, or a cookbook folder with recipe.py.")
AttrOpt = typer.Option([], "--attr", "-a", metavar="KEY=VALUE",
                       help="Set an attribute (highest precedence), e.g. -a chrony.maxpoll=10.")
JsonOpt = typer.Option(None, "--json", metavar="FILE", help="Write the JSON report to FILE "
                       "('-' for standard output).")
DiffOpt = typer.Option(False, "--diff", help="Show a unified diff of content changes.")
CookbookOpt = typer.Option([], "--cookbook-path", "-C", help="A folder of cookbooks to "
                           "search for include_recipe (repeatable).")
RootOpt = typer.Option("/", "--root", help="Converge this directory tree as if it were / "
                       "(local runs; for trying recipes safely).")
DebugOpt = typer.Option(False, "--debug", help="Show tracebacks for errors.")
FailFastOpt = typer.Option(False, "--fail-fast", help="Stop at the first failed resource.")


def _converge(recipe: Path, mode: str, attr: List[str], json_file: Optional[str], diff: bool,
              cookbook_path: List[Path], root: str, debug: bool, fail_fast: bool,
              quiet: bool = False) -> Any:
    from .recipe import parse_assignments
    from .report import Console, summary_line, write_json
    from .runner import run
    from .transport.local import LocalTransport

    started = time.monotonic()
    console = Console(diff=diff, plan=(mode == "plan"), quiet=quiet)
    transport = LocalTransport(root=root, debug=debug)
    outcome = run(recipe, [transport], mode=mode, attrs=parse_assignments(attr),
                  cookbook_path=cookbook_path, fail_fast=fail_fast,
                  on_event=lambda host, event: console.event(event, host))
    counts = outcome.report["hosts"][transport.host]["summary"]
    typer.echo(summary_line(counts, time.monotonic() - started, plan=(mode == "plan")))
    if json_file:
        write_json(outcome.report, json_file)
    return outcome


@app.command()
def apply(
    recipe: Path = RecipeArg,
    attr: List[str] = AttrOpt,
    json_file: Optional[str] = JsonOpt,
    diff: bool = DiffOpt,
    cookbook_path: List[Path] = CookbookOpt,
    root: str = RootOpt,
    debug: bool = DebugOpt,
    fail_fast: bool = FailFastOpt,
    detailed_exitcode: bool = typer.Option(
        False, "--detailed-exitcode",
        help="Exit 0 no changes, 2 changes, 4 failures, 6 changes and failures (as Puppet)."),
) -> None:
    """Converge the machine to the recipe: change what differs, report every resource."""
    outcome = _converge(recipe, "apply", attr, json_file, diff, cookbook_path, root, debug,
                        fail_fast)
    if detailed_exitcode:
        code = (EXIT_CHANGED if outcome.changed else 0) | (EXIT_FAILED if outcome.failed else 0)
        raise typer.Exit(code)
    raise typer.Exit(EXIT_ERROR if outcome.failed else EXIT_OK)


@app.command()
def plan(
    recipe: Path = RecipeArg,
    attr: List[str] = AttrOpt,
    json_file: Optional[str] = JsonOpt,
    no_diff: bool = typer.Option(False, "--no-diff", help="Do not show content diffs."),
    cookbook_path: List[Path] = CookbookOpt,
    root: str = RootOpt,
    debug: bool = DebugOpt,
) -> None:
    """Show what apply would change, with diffs; change nothing."""
    outcome = _converge(recipe, "plan", attr, json_file, not no_diff, cookbook_path, root,
                        debug, False)
    raise typer.Exit(EXIT_ERROR if outcome.failed else EXIT_OK)


@app.command()
def check(
    recipe: Path = RecipeArg,
    attr: List[str] = AttrOpt,
    json_file: Optional[str] = JsonOpt,
    diff: bool = DiffOpt,
    cookbook_path: List[Path] = CookbookOpt,
    root: str = RootOpt,
    debug: bool = DebugOpt,
) -> None:
    """Detect drift: exit 0 in sync, 2 when anything would change, 1 on error."""
    outcome = _converge(recipe, "plan", attr, json_file, diff, cookbook_path, root, debug,
                        False, quiet=True)
    if outcome.failed:
        raise typer.Exit(EXIT_ERROR)
    raise typer.Exit(EXIT_CHANGED if outcome.changed else EXIT_OK)


@app.command()
def resources(
    name: Optional[str] = typer.Argument(None, help="One resource type to describe."),
) -> None:
    """List every resource type with its actions and properties."""
    from .docs import describe_types

    typer.echo(describe_types(name), nl=False)


def _mount_optional() -> None:
    """Sub-commands that live in their own modules (the lab)."""
    try:
        from .lab.cli import register
    except ImportError:
        return
    register(app)


_mount_optional()


def main(argv: Optional[List[str]] = None) -> None:
    """Entry point: expected errors become one clear message and exit 1."""
    args = sys.argv[1:] if argv is None else argv
    try:
        app(args=args, prog_name="converge")
    except ConvergeError as exc:
        if "--debug" in args:
            import traceback

            traceback.print_exc()
        sys.stderr.write("error: %s\n" % exc)
        sys.exit(EXIT_ERROR)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)


if __name__ == "__main__":
    main()
