"""`converge lab …` and `converge test`: plain output, LabError as one line and exit 1."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, List, Optional, TypeVar

import typer

from converge.lab.errors import LabError

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Throwaway sandbox nodes on this machine, to try recipes in.\n\n"
    "Built from namespaces and overlays, each running a real sshd.",
)


CountArg = typer.Argument(1, metavar="[N]", help="How many nodes to start (default 1).")
NameOpt = typer.Option(None, "--name", metavar="NAME", help="The lab to act on: each named "
                       "lab has its own nodes, directory and address range (default: the "
                       "default lab).")
MirrorOpt = typer.Option(
    [], "--mirror", metavar="PKG", help="Mirror distribution packages (and what they need) "
    "into the lab repository first; repeat, or separate with commas.")
NodeArg = typer.Argument(..., metavar="NODE", help="Node name, e.g. node1.")
CommandArg = typer.Argument(None, metavar="[COMMAND]...",
                            help="Command to run (a shell if none).")
NodesArg = typer.Argument(None, metavar="[NODE]...", help="Nodes (all when none).")
RecipeArg = typer.Argument(..., metavar="RECIPE", help="A recipe file, or a cookbook folder.")
NodeCountOpt = typer.Option(1, "--nodes", "-n", metavar="N", help="How many fresh nodes.")
KeepOpt = typer.Option(False, "--keep", help="Leave the nodes running afterwards.")


def _clear_errors(func: F) -> F:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except LabError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def Lab(name: Optional[str] = None) -> Any:  # noqa: N802 - imported when a command runs
    """The lab (the default one, or the named one), loaded only by lab commands:
    `converge apply` does not pay for it."""
    from converge.lab.lab import Lab as _Lab

    return _Lab(name=name)


def _split(values: List[str]) -> List[str]:
    return [name for value in values for name in value.replace(",", " ").split()]


@app.command()
@_clear_errors
def up(
    n: int = CountArg,
    mirror: List[str] = MirrorOpt,
    name: Optional[str] = NameOpt,
) -> None:
    """Start N nodes and wait until every node's sshd answers."""
    for node in Lab(name).up(n, mirror=_split(mirror)):
        typer.echo(f"{node.name}\t{node.address}")


@app.command("ls")
@_clear_errors
def ls(name: Optional[str] = NameOpt) -> None:
    """List the lab's nodes, one a line.

    Each line: the node's name, its address, its PID on this machine, up or dead."""
    nodes = Lab(name).nodes()
    if not nodes:
        typer.echo("no lab nodes", err=True)
        return
    for node in nodes:
        typer.echo(f"{node.name}\t{node.address}\t{node.pid}\t{'up' if node.alive else 'dead'}")


@app.command(context_settings={"allow_interspersed_args": False})
@_clear_errors
def ssh(
    node: str = NodeArg,
    command: Optional[List[str]] = CommandArg,
    name: Optional[str] = NameOpt,
) -> None:
    """SSH into a node with the lab key, checking its host key."""
    lab = Lab(name)
    target = lab.node(node)
    target.check_alive()
    argv = lab.ssh_command(target, command or [])
    sys.stdout.flush()
    os.execvp(argv[0], argv)


@app.command()
@_clear_errors
def inventory(name: Optional[str] = NameOpt) -> None:
    """Print the path of an inventory of the running nodes.

    A YAML inventory, for converge apply -i."""
    typer.echo(str(Lab(name).inventory_path()))


@app.command()
@_clear_errors
def down(nodes: Optional[List[str]] = NodesArg, name: Optional[str] = NameOpt) -> None:
    """Stop nodes and check that nothing of them is left."""
    removed = Lab(name).down(nodes or None)
    typer.echo(f"removed {' '.join(removed)}" if removed else "no lab nodes")


TestTagsOpt = typer.Option([], "--tags", "-t", metavar="TAG[,TAG]",
                           help="Only resources with one of these tags, as apply.")
TestSkipTagsOpt = typer.Option([], "--skip-tags", metavar="TAG[,TAG]",
                               help="Leave out resources with these tags, as apply.")
TestVaultFileOpt = typer.Option([], "--vault-password-file", metavar="FILE",
                                help="The vault password (a file or a program), as apply.")
TestVaultIdOpt = typer.Option([], "--vault-id", metavar="ID@FILE",
                              help="A vault password with its id, as apply.")


@_clear_errors
def test(
    recipe: Path = RecipeArg,
    nodes: int = NodeCountOpt,
    keep: bool = KeepOpt,
    tags: List[str] = TestTagsOpt,
    skip_tags: List[str] = TestSkipTagsOpt,
    vault_password_file: List[str] = TestVaultFileOpt,
    vault_id: List[str] = TestVaultIdOpt,
    recipe_options: Any = None,
) -> None:
    """Apply a recipe twice in fresh lab nodes: idempotent?

    Exit 1 if a run fails or the second run changes anything."""
    from converge import vault
    from converge.lab.idempotence import run_test

    # the recipe is compiled here too (to mirror its packages), and in the node
    vault.configure(vault.Keyring.from_options(vault_password_file, vault_id))
    to_stderr = recipe_options.json_file == "-"  # standard output is the report alone
    args = list(recipe_options.apply_args())
    for option, values in (("--tags", tags), ("--skip-tags", skip_tags)):
        args += [part for value in values for part in (option, value)]
    for path in vault_password_file:  # read in the node, where the machine's files show
        args += ["--vault-password-file", str(Path(path).absolute())]
    for text in vault_id:
        name, at, source = text.rpartition("@")
        source = source if source == "prompt" else str(Path(source).absolute())
        args += ["--vault-id", (name + at if at else "") + source]
    raise typer.Exit(run_test(recipe, nodes=nodes, keep=keep,
                              echo=functools.partial(typer.echo, err=to_stderr),
                              args=args, json_file=recipe_options.json_file))


def register(main: typer.Typer,
             recipe_options: Callable[[Callable[..., None]], Callable[..., None]]) -> None:
    """Mount `lab` and `test` on converge's main command line; `test` takes the recipe
    options of apply (``recipe_options``: the main CLI's decorator that adds them)."""
    main.add_typer(app, name="lab")
    main.command("test")(recipe_options(test))
