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


ImageOpt = typer.Option(None, "--image", metavar="IMAGE", help="Start the nodes from a "
                        "lab image (debian-11, debian-12, debian-13; built first if it is "
                        "not) instead of this machine's own root.")
image_app = typer.Typer(no_args_is_help=True, help="Debian images lab nodes can start from.\n\n"
                        "Minimal root file systems of Debian 11, 12 and 13 (converge lab up "
                        "--image, converge test --image).")
app.add_typer(image_app, name="image")
ImageNamesArg = typer.Argument(..., metavar="IMAGE...",
                               help="Image names: debian-11, debian-12, debian-13.")


def Images() -> Any:  # noqa: N802 - imported when a command runs
    from converge.lab.images import Images as _Images

    return _Images()


@app.command()
@_clear_errors
def up(
    n: int = CountArg,
    mirror: List[str] = MirrorOpt,
    name: Optional[str] = NameOpt,
    image: Optional[str] = ImageOpt,
) -> None:
    """Start N nodes and wait until every node's sshd answers."""
    for node in Lab(name).up(n, mirror=_split(mirror), image=image,
                             echo=functools.partial(typer.echo, err=True)):
        typer.echo(f"{node.name}\t{node.address}")


@image_app.command("build")
@_clear_errors
def image_build(
    names: List[str] = ImageNamesArg,
    rebuild: bool = typer.Option(False, "--rebuild", help="Build again even if current."),
) -> None:
    """Build images with mmdebstrap from Debian's archive (once: a current image is
    reused until its package list changes)."""
    images = Images()
    for image_name in _split(names):
        images.check_name(image_name)
    for image_name in _split(names):
        found = None if rebuild else images.find(image_name)
        if found is not None:
            typer.echo(f"{image_name}: up to date ({found.path})")
            continue
        built = images.build(image_name, rebuild=rebuild, echo=typer.echo)
        typer.echo(f"{image_name}: {built.path}")


@image_app.command("ls")
@_clear_errors
def image_ls() -> None:
    """List the images built on this machine, one a line.

    Each line: the name, the release, its size, when it was built, and whether it
    is current (else a newer package list will build it again)."""
    images = Images()
    found = images.list()
    if not found:
        typer.echo(f"no images in {images.directory}", err=True)
        return
    for image in found:
        info = image.info
        state = "current" if images.is_current(image) else "outdated"
        typer.echo(f"{image.name}\t{info.get('release')}\t{info.get('bytes', 0) / 2**20:.0f} MiB"
                   f"\t{info.get('built')}\t{state}\t{image.path}")


@image_app.command("rm")
@_clear_errors
def image_rm(names: List[str] = ImageNamesArg) -> None:
    """Delete images (running nodes started from one keep running)."""
    for image_name in _split(names):
        for path in Images().remove(image_name):
            typer.echo(f"removed {path}")


@app.command("ls")
@_clear_errors
def ls(name: Optional[str] = NameOpt) -> None:
    """List the lab's nodes, one a line.

    Each line: the node's name, its address, its PID on this machine, up or dead,
    and the image it started from, if it did."""
    nodes = Lab(name).nodes()
    if not nodes:
        typer.echo("no lab nodes", err=True)
        return
    for node in nodes:
        image = f"\t{node.image}" if node.image else ""
        typer.echo(f"{node.name}\t{node.address}\t{node.pid}\t{'up' if node.alive else 'dead'}"
                   f"{image}")


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
    """Stop nodes and check that nothing of them is left.

    Warm SSH connections to them (converge apply --persist) are closed first."""
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
TestImageOpt = typer.Option([], "--image", metavar="IMAGE[,IMAGE]", help="Test on nodes "
                            "from these lab images (debian-11, debian-12, debian-13), each "
                            "image's nodes apart, and show a table of the results; the "
                            "recipe is pushed over SSH there (absolute paths).")


@_clear_errors
def test(
    recipe: Path = RecipeArg,
    nodes: int = NodeCountOpt,
    keep: bool = KeepOpt,
    tags: List[str] = TestTagsOpt,
    skip_tags: List[str] = TestSkipTagsOpt,
    vault_password_file: List[str] = TestVaultFileOpt,
    vault_id: List[str] = TestVaultIdOpt,
    image: List[str] = TestImageOpt,
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
                              args=args, json_file=recipe_options.json_file,
                              images=_split(image)))


def register(main: typer.Typer,
             recipe_options: Callable[[Callable[..., None]], Callable[..., None]]) -> None:
    """Mount `lab` and `test` on converge's main command line; `test` takes the recipe
    options of apply (``recipe_options``: the main CLI's decorator that adds them)."""
    main.add_typer(app, name="lab")
    main.command("test")(recipe_options(test))
