"""`converge vault`: create, edit and read files and values encrypted with Ansible
Vault (byte-compatible with ansible-vault), and the password options that every
command reading YAML takes (:func:`with_vault`)."""

from __future__ import annotations

import functools
import inspect
import sys
from pathlib import Path
from typing import Any, Callable, List, Optional, Tuple

import typer

from .errors import VaultError

PasswordFileOpt = typer.Option(
    [], "--vault-password-file", metavar="FILE",
    help="The vault password: a file, or an executable that prints it (repeatable). "
    "Default: $CONVERGE_VAULT_PASSWORD_FILE.")
VaultIdOpt = typer.Option(
    [], "--vault-id", metavar="ID@FILE",
    help="A vault password with its id: ID@FILE, or ID@prompt (repeatable).")
AskVaultOpt = typer.Option(False, "--ask-vault-pass", help="Prompt for the vault password.")

# The password options, declared once: (parameter, type, option); see with_vault.
VAULT_OPTIONS: Tuple[Tuple[str, Any, Any], ...] = (
    ("vault_password_file", List[str], PasswordFileOpt),
    ("vault_id", List[str], VaultIdOpt),
    ("ask_vault_pass", bool, AskVaultOpt),
)


def keyring_from(values: dict[str, Any]) -> Any:
    from .vault import Keyring

    return Keyring.from_options(values.pop("vault_password_file"), values.pop("vault_id"),
                                values.pop("ask_vault_pass"))


def with_vault(command: Callable[..., None]) -> Callable[..., None]:
    """Give a command the vault password options; the passwords are configured for
    the run before the command starts (and read only if an encrypted file is met)."""
    signature = inspect.signature(command)
    added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option,
                               annotation=kind) for name, kind, option in VAULT_OPTIONS]

    @functools.wraps(command)
    def wrapper(**values: Any) -> None:
        from . import vault

        vault.configure(keyring_from(values))
        command(**values)

    wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=list(signature.parameters.values()) + added)
    return wrapper


app = typer.Typer(
    no_args_is_help=True,
    help="Files and values encrypted with Ansible Vault.\n\nansible-vault reads what these "
    "commands write, and they read what it writes.",
    context_settings={"help_option_names": ["-h", "--help"]},
)

EncryptIdOpt = typer.Option(None, "--encrypt-vault-id", metavar="ID",
                            help="Which of the given vault ids to encrypt with.")
OutputOpt = typer.Option(None, "--output", metavar="FILE",
                         help="Write here instead of in place ('-' for standard output).")
FilesArg = typer.Argument(..., metavar="FILE...", help="The files.")
FileArg = typer.Argument(..., metavar="FILE", help="The file.")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise VaultError("cannot read %s: %s" % (path, exc.strerror or exc)) from None


def _write(path: Path, data: bytes, output: Optional[str]) -> None:
    from .vault import write_atomic

    if output == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    target = Path(output) if output else path
    try:
        write_atomic(target, data)
    except OSError as exc:
        raise VaultError("cannot write %s: %s" % (target, exc.strerror or exc)) from None


@app.command()
@with_vault
def encrypt(files: List[Path] = FilesArg, output: Optional[str] = OutputOpt,
            encrypt_vault_id: Optional[str] = EncryptIdOpt) -> None:
    """Encrypt files in place (or to --output)."""
    from . import vault

    secret = vault.keyring().for_encrypt(encrypt_vault_id)
    for path in files:
        data = _read(path)
        if vault.is_vault(data):
            raise VaultError("%s is already encrypted" % path)
        _write(path, vault.encrypt(data, secret.password(), secret.vault_id).encode(), output)
        typer.echo("encrypted %s" % path, err=True)


@app.command()
@with_vault
def decrypt(files: List[Path] = FilesArg, output: Optional[str] = OutputOpt) -> None:
    """Decrypt files in place (or to --output; '-' prints them)."""
    from . import vault

    for path in files:
        data = _read(path)
        if not vault.is_vault(data):
            raise VaultError("%s is not encrypted" % path)
        _write(path, vault.keyring().decrypt(data, str(path)), output)
        if output != "-":
            typer.echo("decrypted %s" % path, err=True)


@app.command()
@with_vault
def view(files: List[Path] = FilesArg) -> None:
    """Print the decrypted content of files."""
    from . import vault

    for path in files:
        sys.stdout.buffer.write(vault.keyring().decrypt(_read(path), str(path)))
    sys.stdout.flush()


@app.command()
@with_vault
def edit(file: Path = FileArg,
         encrypt_vault_id: Optional[str] = EncryptIdOpt) -> None:
    """Edit an encrypted file in $EDITOR.

    Through a private file on a memory file system, removed afterwards; saved
    again with the same vault id."""
    from . import vault

    data = _read(file)
    ring = vault.keyring()
    plain = ring.decrypt(data, str(file))
    vault_id = encrypt_vault_id or ring.vault_id_of(data, str(file))
    edited = vault.edit_text(plain, file.name)
    if edited == plain:
        typer.echo("%s unchanged" % file, err=True)
        return
    secret = ring.for_encrypt(vault_id)
    _write(file, vault.encrypt(edited, secret.password(), secret.vault_id).encode(), None)
    typer.echo("saved %s" % file, err=True)


@app.command()
@with_vault
def create(file: Path = FileArg,
           encrypt_vault_id: Optional[str] = EncryptIdOpt) -> None:
    """Create an encrypted file, written in $EDITOR."""
    from . import vault

    if file.exists():
        raise VaultError("%s exists: use converge vault edit" % file)
    secret = vault.keyring().for_encrypt(encrypt_vault_id)
    secret.password()  # ask before the editor opens
    text = vault.edit_text(b"", file.name)
    _write(file, vault.encrypt(text, secret.password(), secret.vault_id).encode(), None)
    typer.echo("created %s" % file, err=True)


@app.command()
@with_vault
def rekey(files: List[Path] = FilesArg,
          new_vault_password_file: Optional[str] = typer.Option(
              None, "--new-vault-password-file", metavar="FILE",
              help="The new password: a file or an executable."),
          new_vault_id: Optional[str] = typer.Option(
              None, "--new-vault-id", metavar="ID@FILE",
              help="The new password with its id (ID@FILE or ID@prompt).")) -> None:
    """Encrypt files again with a new password."""
    from . import vault

    if bool(new_vault_password_file) == bool(new_vault_id):
        raise VaultError("rekey needs one of --new-vault-password-file or --new-vault-id")
    new = vault.Keyring.from_options([new_vault_password_file] if new_vault_password_file
                                     else [], [new_vault_id] if new_vault_id else [],
                                     environ={}).for_encrypt()
    for path in files:
        plain = vault.keyring().decrypt(_read(path), str(path))
        _write(path, vault.encrypt(plain, new.password(), new.vault_id).encode(), None)
        typer.echo("rekeyed %s" % path, err=True)


@app.command("encrypt-string")
@with_vault
def encrypt_string(
    value: Optional[str] = typer.Argument(
        None, metavar="[VALUE]", help="The value (omit it to read standard input, or to "
        "be prompted on a terminal: a value on the command line is visible to other users)."),
    name: Optional[str] = typer.Option(None, "--name", "-n", metavar="NAME",
                                       help="Print it as 'NAME: !vault |' for a YAML file."),
    encrypt_vault_id: Optional[str] = EncryptIdOpt,
) -> None:
    """Encrypt one value to paste into a YAML file.

    As ansible-vault encrypt_string does."""
    from . import vault

    secret = vault.keyring().for_encrypt(encrypt_vault_id)
    if value is None:
        if sys.stdin.isatty():
            import getpass

            value = getpass.getpass("Value to encrypt: ")
        else:
            value = sys.stdin.read()
            value = value[:-1] if value.endswith("\n") else value
    typer.echo(vault.encrypt_string(value, secret, name), nl=False)

