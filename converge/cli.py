"""The command line: parse, call the library, render, and map errors to exit codes
in one place (:func:`main`). Heavy libraries are imported only by the commands
that need them, so ``converge --help`` starts fast."""

from __future__ import annotations

import functools
import inspect
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, List, Optional, Sequence, Tuple

# Plain help: typer would import rich (60 ms) for every command. Read at import only.
_saved = os.environ.get("TYPER_USE_RICH")
os.environ["TYPER_USE_RICH"] = "0"
import typer  # noqa: E402

if _saved is None:
    del os.environ["TYPER_USE_RICH"]
else:
    os.environ["TYPER_USE_RICH"] = _saved

from ._version import __version__  # noqa: E402
from .cli_fleet import Selection, with_selection  # noqa: E402
from .cli_runs import app as runs_app  # noqa: E402
from .cli_runs import report as report_command  # noqa: E402
from .cli_runs import with_store  # noqa: E402
from .cli_vault import app as vault_app  # noqa: E402
from .cli_vault import with_vault  # noqa: E402
from .errors import ConvergeError, printable, printable_lines  # noqa: E402
from .forks import FILES_PER_HOST, FORKS_PER_CPU, MAX_FORKS, default_forks  # noqa: E402

if TYPE_CHECKING:
    from .transport import Transport

# Exit codes (documented in docs/operations.md; stable).
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGED = 2  # --detailed-exitcode: changes made; check: drift found
EXIT_FAILED = 4  # --detailed-exitcode: failures (6 = changes and failures)
EXIT_ABORTED = 3  # --max-fail: too many hosts failed, later batches never started

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="converge: configuration management for Linux servers, in plain Python.",
    context_settings={"help_option_names": ["-h", "--help"]},
)


app.add_typer(vault_app, name="vault")
new_app = typer.Typer(no_args_is_help=True, help="Write a working skeleton to start from.\n\n"
                      "A cookbook, or a resource type of a cookbook's own.",
                      context_settings={"help_option_names": ["-h", "--help"]})
app.add_typer(new_app, name="new")


@new_app.command("cookbook")
def new_cookbook(name: str = typer.Argument(..., metavar="NAME", help="The cookbook's name "
                                            "(a folder of this name is made here).")) -> None:
    """Write a cookbook in ./NAME.

    recipe.py, attributes.yaml, README.md, resources/ and a test."""
    from .scaffold import new_cookbook as make

    for path in make(name, Path.cwd()):
        typer.echo("wrote %s" % path)


NewCookbookOpt = typer.Option(Path("."), "--cookbook", metavar="DIR",
                              help="The cookbook's folder (default: this one).")


@new_app.command("resource")
def new_resource(
    name: str = typer.Argument(..., metavar="NAME",
                               help="The type's name (as recipes call it)."),
    cookbook: Path = NewCookbookOpt,
) -> None:
    """Write a resource type in COOKBOOK/resources/NAME.py.

    A file it manages, with rollback, used by the cookbook's recipe."""
    from .scaffold import new_resource as make

    for path in make(name, cookbook):
        typer.echo("wrote %s" % path)
app.add_typer(runs_app, name="runs")
app.command("report")(report_command)


def _plain_usage() -> None:
    """typer writes a required argument as ``{RECIPE}`` in usage lines, which reads as
    a placeholder syntax of its own; write ``RECIPE``, as click and man pages do."""
    from typer.core import TyperArgument

    typer_metavar = TyperArgument.make_metavar

    def make_metavar(self: TyperArgument, ctx: Any, *, usage: bool = False) -> str:
        text = str(typer_metavar(self, ctx, usage=usage))
        if usage and text.startswith("{") and "}" in text:
            text = text[1:].replace("}", "", 1)
        return text

    TyperArgument.make_metavar = make_metavar  # type: ignore[method-assign]


_plain_usage()


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


RecipeArg = typer.Argument(..., metavar="RECIPE",
                           help="A recipe file, or a cookbook folder with recipe.py.")
AttrOpt = typer.Option([], "--attr", "-a", metavar="KEY=VALUE",
                       help="Set an attribute (highest precedence), e.g. -a chrony.maxpoll=10.")
JsonOpt = typer.Option(None, "--json", metavar="FILE", help="Write the JSON report to FILE "
                       "('-' for standard output).")
DiffOpt = typer.Option(False, "--diff", help="Show a unified diff of content changes.")
PlanDiffOpt = typer.Option(True, "--diff/--no-diff", help="Show unified diffs of content "
                           "changes (the default here).")
CookbookOpt = typer.Option([], "--cookbook-path", "-C", metavar="DIR", help="A folder of "
                           "cookbooks to search for include_recipe (repeatable).")
RootOpt = typer.Option("/", "--root", metavar="DIR", help="Work on this directory tree as if "
                       "it were / (local runs; paths stay inside it, execute and guards do "
                       "not: see docs/operations.md).")
HistoryRootOpt = typer.Option("/", "--root", metavar="DIR", help="List the runs journaled "
                              "in this directory tree (by apply --root DIR).")
RollbackRootOpt = typer.Option("/", "--root", metavar="DIR", help="Undo a run made in this "
                               "directory tree (by apply --root DIR).")
DebugOpt = typer.Option(False, "--debug", help="Show tracebacks for errors.")
ProfileOpt = typer.Option(False, "--profile", help="After the recap, show where each host's "
                          "time went (connecting, authenticating, starting the agent, "
                          "compiling, the slowest resources, reporting); in --json too.")
FailFastOpt = typer.Option(False, "--fail-fast", help="Stop at the first failed resource.")


HostOpt = typer.Option([], "--host", "-H", metavar="[USER@]HOST[:PORT]",
                       help="A target host, reached over SSH, instead of this machine "
                       "(repeatable).")
InventoryOpt = typer.Option([], "--inventory", "-i", metavar="FILE",
                            help="The target hosts of this inventory, reached over SSH: a "
                            "YAML file, an executable (Ansible's inventory-script protocol) "
                            "or an inventory.py (repeatable; merged in order).")
LimitOpt = typer.Option([], "--limit", "-l", metavar="PATTERN", help="Only hosts matching "
                        "a host name, group or glob ('!pattern' excludes; repeatable).")
ForksOpt = typer.Option(None, "--forks", "-f", min=1, metavar="N", show_default=False,
                        help="How many hosts are worked on at once (default: %d per CPU, "
                        "at most %d, %d open files a host within the open-file limit, "
                        "at most the hosts)." % (FORKS_PER_CPU, MAX_FORKS, FILES_PER_HOST))
BecomeOpt = typer.Option(False, "--become", "-b", help="Run the agent as root with sudo.")
BecomePassOpt = typer.Option(False, "--ask-become-pass", "-K",
                             help="Prompt for the sudo password (sent over the connection).")
AcceptNewOpt = typer.Option(False, "--accept-new", help="Record the keys of hosts not yet in "
                            "known_hosts (a changed key is always refused).")
UserOpt = typer.Option(None, "--user", "-u", metavar="USER",
                       help="SSH user for hosts that name none.")
KeyOpt = typer.Option(None, "--key", metavar="FILE", help="SSH private key for hosts that "
                      "name none.")
PersistOpt = typer.Option(None, "--persist", metavar="DURATION", help="Keep each host's "
                          "SSH connection open this long after the run (60s, 5m; default "
                          "60s, or $CONVERGE_SSH_PERSIST), for the next run to reuse: "
                          "converge disconnect closes them.")
NoPersistOpt = typer.Option(False, "--no-persist", help="Connect afresh and keep nothing "
                            "open after the run.")
LockTimeoutOpt = typer.Option(60.0, "--lock-timeout", metavar="SECONDS", min=0,
                              help="How long to wait for another converge run on a target "
                              "to finish before giving up (exit 1).")
KeepRunsOpt = typer.Option(50, "--keep-runs", metavar="N", min=1, help="How many run "
                           "journals (with their backups) each target keeps.")


def _option_group(group: str, make: Callable[..., Any], options: Sequence[Tuple[str, Any, Any]]
                  ) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """A decorator giving a command the ``options`` (parameter, type, typer option), handed
    to it as one object, ``make(**values)``, in its parameter named ``group``."""

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        signature = inspect.signature(command)
        own = [p for p in signature.parameters.values() if p.name != group]
        added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option,
                                   annotation=kind) for name, kind, option in options]

        @functools.wraps(command)
        def wrapper(**values: Any) -> None:
            chosen = {name: values.pop(name) for name, _, _ in options}
            values[group] = make(**chosen)
            command(**values)

        wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=own + added)
        return wrapper

    return decorate


class RecipeOptions:
    """The options that shape a recipe and its report, shared by apply, plan, check and
    test: attributes, cookbook path, JSON report, diffs, tracebacks."""

    def __init__(self, attr: Sequence[str] = (), cookbook_path: Sequence[Path] = (),
                 json_file: Optional[str] = None, diff: bool = False,
                 debug: bool = False, profile: bool = False) -> None:
        self.attr, self.cookbook_path = list(attr), list(cookbook_path)
        self.json_file, self.diff, self.debug = json_file, diff, debug
        self.profile = profile

    def apply_args(self) -> List[str]:
        """These options as arguments of a `converge apply` run elsewhere (a lab node),
        the JSON report aside; cookbook paths made absolute."""
        args: List[str] = []
        for assignment in self.attr:
            args += ["-a", assignment]
        for folder in self.cookbook_path:
            args += ["-C", str(Path(folder).absolute())]
        return args + (["--diff"] if self.diff else []) + (["--debug"] if self.debug else []) \
            + (["--profile"] if self.profile else [])


# The recipe options, declared once: (parameter, type, option); see :func:`with_recipe`.
RECIPE_OPTIONS: Tuple[Tuple[str, Any, Any], ...] = (
    ("attr", List[str], AttrOpt),
    ("cookbook_path", List[Path], CookbookOpt),
    ("json_file", Optional[str], JsonOpt),
    ("diff", bool, DiffOpt),
    ("debug", bool, DebugOpt),
    ("profile", bool, ProfileOpt),
)


def with_recipe(*, diff: bool = False) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Give a command the recipe options (-a, -C, --json, --diff, --debug, --profile), handed to it
    as one :class:`RecipeOptions` in its ``recipe_options`` parameter. ``diff=True``:
    diffs are shown unless --no-diff (plan)."""
    options = [(name, kind, PlanDiffOpt if name == "diff" and diff else option)
               for name, kind, option in RECIPE_OPTIONS]
    return _option_group("recipe_options", RecipeOptions, options)


# The SSH target options every command that reaches targets takes, declared once:
# (parameter, type, option); see :func:`with_targets`.
TARGET_OPTIONS: Tuple[Tuple[str, Any, Any], ...] = (
    ("hosts", List[str], HostOpt),
    ("inventory", List[Path], InventoryOpt),
    ("limit", List[str], LimitOpt),
    ("forks", Optional[int], ForksOpt),
    ("become", bool, BecomeOpt),
    ("ask_become_pass", bool, BecomePassOpt),
    ("accept_new", bool, AcceptNewOpt),
    ("user", Optional[str], UserOpt),
    ("key", Optional[str], KeyOpt),
    ("persist", Optional[str], PersistOpt),
    ("no_persist", bool, NoPersistOpt),
)


def with_targets(*, forks: bool = True) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Give a command the SSH target options (-H, -i, -l, --become, -K, --accept-new,
    --user, --key, --persist, --no-persist, and --forks where the command runs hosts
    in parallel), handed to
    it as one :class:`Targets` in its ``targets`` parameter."""
    return _option_group("targets", Targets,
                         [o for o in TARGET_OPTIONS if forks or o[0] != "forks"])


class Targets:
    """The command line's SSH options (all empty: converge this machine)."""

    def __init__(self, hosts: Sequence[str] = (), inventory: Sequence[Path] = (),
                 limit: Sequence[str] = (), forks: Optional[int] = None, become: bool = False,
                 ask_become_pass: bool = False, accept_new: bool = False,
                 user: Optional[str] = None, key: Optional[str] = None,
                 persist: Optional[str] = None, no_persist: bool = False) -> None:
        self.hosts, self.limit = list(hosts), list(limit)
        self.persist, self.no_persist = persist, no_persist
        self.inventory, self.forks = list(inventory), forks
        self.become, self.ask_become_pass, self.accept_new = become, ask_become_pass, accept_new
        self.user, self.key = user, key
        self.lock_timeout, self.keep_runs = 60.0, 50

    @property
    def remote(self) -> bool:
        return bool(self.hosts or self.inventory)

    def run_options(self, lock_timeout: float, keep_runs: int) -> "Targets":
        """These targets with the journal and lock options of apply and rollback."""
        import copy

        chosen = copy.copy(self)
        chosen.lock_timeout, chosen.keep_runs = lock_timeout, keep_runs
        return chosen

    def persist_seconds(self) -> float:
        """How long connections stay open after the run (0: not kept; see
        converge/transport/persist.py)."""
        from .transport.persist import default_persist, parse_duration

        if self.no_persist:
            return 0.0
        return parse_duration(self.persist) if self.persist else default_persist()

    def local(self, root: str, debug: bool) -> "Transport":
        """The transport for this machine (``--root``)."""
        from .transport.local import LocalTransport

        return LocalTransport(root=root, debug=debug, keep_runs=self.keep_runs,
                              lock_timeout=self.lock_timeout, on_notice=_notice("localhost"))

    def ssh(self, debug: bool) -> List["Transport"]:
        """One SSH transport per selected host."""
        from .cli_fleet import resolve_failed
        from .inventory import targets as select_targets
        from .transport.ssh import SSHTransport

        hosts, _ = select_targets(self.hosts, [str(p) for p in self.inventory],
                                  resolve_failed(self.limit))
        password = None
        if self.ask_become_pass:
            import getpass

            password = getpass.getpass("become (sudo) password: ")
        self.selected = hosts
        keep = self.persist_seconds()
        if keep > 0 and hosts:
            from .resident import prestart as ready_controller
            from .transport.persist import prestart

            prestart()  # the broker starts while the recipe is read and compiled
            ready_controller(keep)  # and the next run's controller (converge/launch.py)
        return [SSHTransport(h, user=self.user, key=self.key, persist=keep,
                             become=self.become or self.ask_become_pass or None,
                             become_password=password, accept_new=self.accept_new,
                             debug=debug, keep_runs=self.keep_runs,
                             lock_timeout=self.lock_timeout, on_notice=_notice(h.name),
                             on_output=_output(h.name))
                for h in hosts]


def _output(host: str) -> Any:
    """Where a target's command output goes (execute's live=True): standard error,
    each line after the host's name, escaped (it comes from the target)."""
    from .errors import printable

    return lambda line: typer.echo("%s: %s" % (host, printable(line)), err=True)


def _notice(host: str) -> Any:
    """Where the agent's notices go: standard error, with the host for remote runs."""
    prefix = "" if host == "localhost" else printable(host) + ": "
    return lambda text: typer.echo(prefix + printable(text), err=True)


def _converge(recipe: Path, mode: str, options: RecipeOptions, root: str, fail_fast: bool,
              quiet: bool = False, targets: Optional[Targets] = None,
              recorder: Any = None, selection: Optional[Selection] = None) -> Any:
    from .recipe import parse_assignments
    from .report import Console, write_json
    from .runner import run

    started = time.monotonic()
    selection = selection or Selection()
    attrs = parse_assignments(options.attr)
    if selection.list_tags:
        _list_tags(recipe, attrs, options.cookbook_path, root, options.debug, targets)
    console = Console(_console_stream(options.json_file), diff=options.diff,
                      plan=(mode == "plan"), quiet=quiet)
    if targets is not None and targets.remote:
        if root != "/":
            raise typer.BadParameter("--root is for local runs, not with -H or -i")
        outcome = _push(recipe, mode, attrs, options.cookbook_path, options.debug,
                        fail_fast, console, targets, recorder, selection, options.profile)
    else:
        transport = (targets or _NO_TARGETS).local(root, options.debug)
        try:
            outcome = run(recipe, [transport], mode=mode, attrs=attrs,
                          cookbook_path=options.cookbook_path, fail_fast=fail_fast,
                          recorder=recorder, profile=options.profile,
                          on_event=lambda host, event: console.event(event, host),
                          **selection.run_options())
        except KeyboardInterrupt as exc:  # typer would exit 130 and say nothing
            from .agent.interrupt import as_interrupted
            from .errors import printable

            interrupted = as_interrupted(exc)
            typer.echo(printable(interrupted.message()), err=True)
            raise typer.Exit(interrupted.exit_code) from None
        _local_summary(outcome, transport.host, started, mode == "plan", console.stream)
    if options.profile:
        from .report import profile_lines

        console.stream.write("".join(line + "\n" for line in [""] + profile_lines(
            outcome.report)))
        console.stream.flush()
    if options.json_file:
        write_json(outcome.report, options.json_file)
    return outcome


def _list_tags(recipe: Path, attrs: Any, cookbook_path: List[Path], root: str, debug: bool,
               targets: Optional[Targets]) -> None:
    """plan --list-tags: the tags of the recipe as compiled for the first host."""
    from .inventory import host_vars
    from .recipe import Attrs, compile_recipe

    if targets is not None and targets.remote:
        transport = targets.ssh(debug)[0]
        layered = Attrs(host_vars(targets.selected).get(transport.host, {}))
    else:
        transport, layered = (targets or _NO_TARGETS).local(root, debug), Attrs({})
    layered.merge(attrs)
    try:
        plan = compile_recipe(recipe, attrs=layered, facts=transport.facts,
                              cookbook_path=cookbook_path, host=transport.host,
                              remote=bool(targets and targets.remote))
    finally:
        transport.close()
    typer.echo("\n".join(plan.options.get("tags") or ["(no tags)"]))
    raise typer.Exit(EXIT_OK)


def _console_stream(json_file: Optional[str]) -> Any:
    """Where console lines go: standard error when the JSON report takes standard
    output (``--json -``), so that ``converge apply r.py --json - | jq`` works."""
    return sys.stderr if json_file == "-" else sys.stdout


def _local_summary(outcome: Any, host: str, started: float, plan: bool, stream: Any) -> None:
    """The summary line of a local run, or its error when the run did not start (the
    lock was not free, the rollback was refused): no "Converged 0 resources" then."""
    from .report import summary_line

    entry = outcome.report["hosts"][host]
    if not (entry.get("error") and not entry["summary"]["total"]):
        stream.write(summary_line(entry["summary"], time.monotonic() - started, plan=plan)
                     + "\n")
        stream.flush()
    if entry.get("error"):
        typer.echo("error: %s" % printable_lines(entry["error"]), err=True)


_NO_TARGETS = Targets()
_NO_OPTIONS = RecipeOptions()


def _push(recipe: Path, mode: str, attrs: Any, cookbook_path: List[Path], debug: bool,
          fail_fast: bool, console: Any, targets: Targets, recorder: Any = None,
          selection: Optional[Selection] = None, profile: bool = False) -> Any:
    """Converge the inventory's or -H hosts over SSH."""
    from .inventory import host_vars
    from .report import FleetConsole
    from .runner import run

    transports = targets.ssh(debug)
    hosts = targets.selected
    fleet = FleetConsole(console, len(transports), live=len(transports) == 1)
    try:
        outcome = run(recipe, transports, mode=mode, attrs=attrs, host_vars=host_vars(hosts),
                      cookbook_path=cookbook_path, fail_fast=fail_fast, remote=True,
                      forks=targets.forks, on_event=fleet.event, on_host=fleet.host_done,
                      recorder=recorder, on_batch=fleet.batch, profile=profile,
                      **(selection or Selection()).run_options())
    finally:
        fleet.stop()
    fleet.finish(outcome.report, plan=(mode == "plan"))
    return outcome


@app.command()
@with_recipe()
@with_targets()
@with_vault
@with_store("apply")
@with_selection()
def apply(
    recipe: Path = RecipeArg,
    root: str = RootOpt,
    fail_fast: bool = FailFastOpt,
    detailed_exitcode: bool = typer.Option(
        False, "--detailed-exitcode",
        help="Exit 0 no changes, 2 changes, 4 failures, 6 changes and failures (as Puppet)."),
    lock_timeout: float = LockTimeoutOpt,
    keep_runs: int = KeepRunsOpt,
    targets: Targets = _NO_TARGETS,
    recorder: Any = None,
    selection: Selection = Selection(),  # noqa: B008 - filled in by with_selection
    recipe_options: RecipeOptions = _NO_OPTIONS,
) -> None:
    """Converge this machine (or the targets) to the recipe.

    What differs is changed and reported; what already matches is reported (up to
    date) and left alone. Each target journals the run (converge history) and
    takes its run lock; the run is recorded in the run store (converge runs,
    converge report)."""
    outcome = _converge(recipe, "apply", recipe_options, root, fail_fast,
                        targets=targets.run_options(lock_timeout, keep_runs),
                        recorder=recorder, selection=selection)
    if outcome.report["summary"].get("aborted"):
        raise typer.Exit(EXIT_ABORTED)
    if detailed_exitcode:
        code = (EXIT_CHANGED if outcome.changed else 0) | (EXIT_FAILED if outcome.failed else 0)
        raise typer.Exit(code)
    raise typer.Exit(EXIT_ERROR if outcome.failed else EXIT_OK)


@app.command()
@with_recipe(diff=True)
@with_targets()
@with_vault
@with_selection(list_tags=True)
def plan(
    recipe: Path = RecipeArg,
    root: str = RootOpt,
    targets: Targets = _NO_TARGETS,
    selection: Selection = Selection(),  # noqa: B008 - filled in by with_selection
    recipe_options: RecipeOptions = _NO_OPTIONS,
) -> None:
    """Show what apply would change, with diffs; change nothing."""
    outcome = _converge(recipe, "plan", recipe_options, root, False, targets=targets,
                        selection=selection)
    if outcome.report["summary"].get("aborted"):
        raise typer.Exit(EXIT_ABORTED)
    raise typer.Exit(EXIT_ERROR if outcome.failed else EXIT_OK)


@app.command()
@with_recipe()
@with_targets()
@with_vault
@with_store("check")
@with_selection()
def check(
    recipe: Path = RecipeArg,
    root: str = RootOpt,
    targets: Targets = _NO_TARGETS,
    recorder: Any = None,
    selection: Selection = Selection(),  # noqa: B008 - filled in by with_selection
    recipe_options: RecipeOptions = _NO_OPTIONS,
) -> None:
    """Detect drift: exit 0 in sync, 2 drift, 1 error.

    Prints only what would change, and the summary; changes nothing."""
    outcome = _converge(recipe, "plan", recipe_options, root, False, quiet=True,
                        targets=targets, recorder=recorder, selection=selection)
    if outcome.report["summary"].get("aborted"):
        raise typer.Exit(EXIT_ABORTED)
    if outcome.failed:
        raise typer.Exit(EXIT_ERROR)
    raise typer.Exit(EXIT_CHANGED if outcome.changed else EXIT_OK)


@app.command()
@with_targets(forks=False)
@with_vault
def history(
    json_out: bool = typer.Option(False, "--json", help="Print the journal as JSON."),
    root: str = HistoryRootOpt,
    debug: bool = DebugOpt,
    targets: Targets = _NO_TARGETS,
) -> None:
    """List the runs journaled on the target and what each changed.

    Oldest first; each run's id is what converge rollback takes."""
    import json

    from .report import history_lines

    transports = _transports(targets, root, debug)
    found: dict[str, Any] = {}
    failed = False
    for transport in transports:
        try:
            found[transport.host] = transport.history()
        except ConvergeError as exc:
            if not targets.remote:
                raise
            found[transport.host], failed = {"error": str(exc)}, True
        finally:
            transport.close()
    if json_out:
        typer.echo(json.dumps(found if targets.remote else found["localhost"], indent=2))
    else:
        for host, runs in found.items():
            if targets.remote:
                typer.echo(printable(host))
            if isinstance(runs, dict):
                typer.echo("  ! " + printable_lines(runs["error"]).replace("\n", "\n  "))
                continue
            lines = history_lines(runs) or ["(no runs journaled)"]
            typer.echo("\n".join(("  " + line if targets.remote else line) for line in lines))
    raise typer.Exit(EXIT_ERROR if failed else EXIT_OK)


def _transports(targets: Targets, root: str, debug: bool) -> List["Transport"]:
    if targets.remote:
        if root != "/":
            raise typer.BadParameter("--root is for local runs, not with -H or -i")
        return targets.ssh(debug)
    return [targets.local(root, debug)]


@app.command()
@with_targets()
@with_vault
@with_store("rollback")
def rollback(
    run_id: Optional[str] = typer.Argument(None, metavar="[RUN_ID]",
                                           help="The run to undo (an id from converge "
                                           "history, or its unique beginning). Default: the "
                                           "last apply that changed anything."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before removing packages "
                             "the run installed."),
    force: bool = typer.Option(False, "--force", help="Restore files even when they were "
                               "changed since that run."),
    json_file: Optional[str] = JsonOpt,
    diff: bool = DiffOpt,
    root: str = RollbackRootOpt,
    debug: bool = DebugOpt,
    lock_timeout: float = LockTimeoutOpt,
    keep_runs: int = KeepRunsOpt,
    targets: Targets = _NO_TARGETS,
    recorder: Any = None,
) -> None:
    """Undo a run: restore what it changed, as a run of its own.

    Files (content, mode, owner; created ones deleted), sysctls, cron entries, oom
    scores, packages it installed."""
    from .report import Console, FleetConsole, write_json
    from .runner import rollback as roll_back

    started = time.monotonic()
    targets = targets.run_options(lock_timeout, keep_runs)
    transports = _transports(targets, root, debug)
    if not yes:
        yes = _confirm_removals(transports, run_id)
    console = Console(_console_stream(json_file), diff=diff)
    if targets.remote:
        fleet = FleetConsole(console, len(transports), live=len(transports) == 1)
        try:
            outcome = roll_back(transports, run_id, force=force, yes=yes, forks=targets.forks,
                                on_event=fleet.event, on_host=fleet.host_done,
                                recorder=recorder)
        finally:
            fleet.stop()
        fleet.finish(outcome.report)
    else:
        outcome = roll_back(transports, run_id, force=force, yes=yes, recorder=recorder,
                            on_event=lambda host, event: console.event(event, host))
        _local_summary(outcome, transports[0].host, started, False, console.stream)
    if json_file:
        write_json(outcome.report, json_file)
    raise typer.Exit(EXIT_ERROR if outcome.failed else EXIT_OK)


def _confirm_removals(transports: List["Transport"], run_id: Optional[str]) -> bool:
    """Ask before a rollback removes packages (True: go ahead). Without a terminal
    the rollback goes on unconfirmed, and each target refuses to remove them."""
    if not sys.stdin.isatty():
        return False
    removals = []
    for transport in transports:
        try:
            preview = transport.preview_rollback(run_id)
        except ConvergeError:
            continue  # the rollback itself reports it
        if preview["remove_packages"]:
            removals.append(printable("%s: %s" % (transport.host,
                                                  ", ".join(preview["remove_packages"]))))
    if not removals:
        return False
    typer.echo("The rollback removes packages the run installed:\n  " + "\n  ".join(removals))
    if not typer.confirm("Remove them?", default=False):
        raise typer.Exit(EXIT_ERROR)
    return True


@app.command()
@with_targets()
@with_vault
def facts(
    root: str = RootOpt,
    debug: bool = DebugOpt,
    targets: Targets = _NO_TARGETS,
) -> None:
    """Print the facts a recipe reads as node.*, as JSON.

    node.ipaddress, node.local.NAME...: of this machine, or of each target as
    {host: facts}."""
    import json
    from concurrent.futures import ThreadPoolExecutor

    from .recipe import parse_local

    transports = _transports(targets, root, debug)

    def gather(transport: Transport) -> Any:
        try:
            return parse_local(transport.facts())
        except ConvergeError as exc:
            return {"error": str(exc)}
        finally:
            transport.close()

    with ThreadPoolExecutor(max_workers=targets.forks or default_forks(len(transports))) as pool:
        found = dict(zip([t.host for t in transports], pool.map(gather, transports),
                         strict=True))
    typer.echo(json.dumps(found, indent=2, sort_keys=True, default=str))
    failed = any(isinstance(v, dict) and set(v) == {"error"} for v in found.values())
    raise typer.Exit(EXIT_ERROR if failed else EXIT_OK)


@app.command()
def resources(
    name: Optional[str] = typer.Argument(None, metavar="[TYPE]",
                                         help="One resource type to describe."),
    cookbook_path: List[Path] = CookbookOpt,
) -> None:
    """List every resource type with its actions and properties.

    converge's, installed packages', and those of the cookbook in this folder or
    given with -C (a cookbook, or a folder of cookbooks as apply's -C)."""
    from .docs import describe_types

    _load_types(cookbook_path)
    typer.echo(describe_types(name), nl=False)


def _load_types(cookbook_path: List[Path]) -> None:
    """Register installed packages' types, and those of the cookbook in this folder
    and of each -C folder (a cookbook, or a folder of cookbooks)."""
    from .agent import extensions

    extensions.load_entry_points()
    for folder in [Path.cwd(), *cookbook_path]:
        extensions.load_folder(str(folder / "resources"))
        if folder in cookbook_path:  # a folder of cookbooks, as apply's -C
            for book in sorted(p for p in folder.iterdir() if (p / "resources").is_dir()):
                extensions.load_folder(str(book / "resources"))


@app.command()
def disconnect() -> None:
    """Close the SSH connections kept open by earlier runs.

    Every warm connection of this user (see --persist): the next run connects
    afresh. Its broker process exits, and so does the ready controller (the
    process later runs are handed to: converge/launch.py)."""
    from .resident import stop
    from .transport.persist import disconnect as close_all

    closed = close_all()
    stop()
    typer.echo("closed %d warm connection%s" % (closed, "" if closed == 1 else "s"))


StubsOutputOpt = typer.Option(Path("typings"), "--output", "-o", metavar="DIR",
                              help="Where the stub goes: DIR/converge/__init__.pyi.")


@app.command()
def stubs(cookbook_path: List[Path] = CookbookOpt, output: Path = StubsOutputOpt) -> None:
    """Write type stubs that know your own resource types.

    converge's types, installed packages', and those of the cookbook in this
    folder or given with -C, in DIR/converge/__init__.pyi: point mypy_path (or
    MYPYPATH, or pyright's stubPath) at DIR and a misspelt property of your own
    types is flagged too."""
    from .stubs import recipe_stub

    _load_types(cookbook_path)
    target = output / "converge" / "__init__.pyi"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(recipe_stub(own=True))
    typer.echo("wrote %s: set mypy_path = %s (or MYPYPATH, or pyright's stubPath)"
               % (target, output))


def _mount_optional() -> None:
    """Sub-commands that live in their own modules (pull mode, the lab)."""
    from .cli_pull import register as register_pull

    register_pull(app)
    try:
        from .lab.cli import register
    except ImportError:
        return
    register(app, with_recipe())


_mount_optional()


def _app_for(args: Sequence[str]) -> typer.Typer:
    """The app to run ``args``: when they name one of the top-level commands, a copy
    of the app that holds only that command (typer makes a click command of every
    command it holds, reading their signatures, at each start: ~15 ms for all of
    them); else the whole app (--help, --version, a group, an unknown name)."""
    if not args or args[0].startswith("-"):
        return app
    from typer.main import get_command_name

    chosen = [info for info in app.registered_commands if args[0] == (
        info.name or get_command_name(getattr(info.callback, "__name__", "")))]
    if len(chosen) != 1:
        return app
    import copy

    only = copy.copy(app)
    only.registered_commands, only.registered_groups = chosen, []
    return only


def main(argv: Optional[List[str]] = None, command: Any = None) -> None:
    """Entry point: expected errors become one clear message and exit 1. ``command``:
    the click command typer builds from ``app``, when built already (the ready
    controller builds it once: converge/resident.py)."""
    args = sys.argv[1:] if argv is None else argv
    try:
        (command or _app_for(args))(args=args, prog_name="converge")
    except ConvergeError as exc:
        from .vault import scrub

        if "--debug" in args:
            import traceback

            sys.stderr.write(printable_lines(scrub(traceback.format_exc())))
        sys.stderr.write("error: %s\n" % printable_lines(scrub(str(exc))))
        sys.exit(EXIT_ERROR)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)


if __name__ == "__main__":
    main()
