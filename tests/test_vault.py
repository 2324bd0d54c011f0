"""Ansible Vault files and values: byte-compatible with the real ansible-vault both
ways, passwords from files, scripts, ids and the environment, and decrypted values
hidden by value in every channel of a local run."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from converge import vault
from converge.errors import VaultError

ANSIBLE_VAULT = shutil.which("ansible-vault")
needs_ansible = pytest.mark.skipif(
    ANSIBLE_VAULT is None and os.environ.get("CI") != "true",
    reason="ansible-vault is not installed (scripts/install.sh --dev installs it)")

SECRET = "s3cret-%s" % os.urandom(6).hex()


@pytest.fixture(autouse=True)
def _fresh_vault() -> object:
    vault.forget()
    vault.configure(vault.Keyring())
    yield
    vault.forget()
    vault.configure(vault.Keyring())


def ansible(*args: str, cwd: Path, stdin: Optional[str] = None) -> subprocess.CompletedProcess:
    assert ANSIBLE_VAULT, "ansible-vault is missing: scripts/install.sh --dev installs it"
    env = {**os.environ, "ANSIBLE_LOCAL_TEMP": str(cwd / ".ansible-tmp"),
           "ANSIBLE_HOME": str(cwd / ".ansible")}
    done = subprocess.run([ANSIBLE_VAULT, *args], cwd=cwd, capture_output=True, text=True,
                          input=stdin, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return done


def converge(*args: str, cwd: Path, env: Optional[Dict[str, str]] = None,
             stdin: Optional[str] = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "converge", *args], cwd=cwd, text=True,
                          capture_output=True, input=stdin, timeout=120,
                          env={**os.environ, **(env or {})})


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "pw").write_text("correct horse\n")
    (tmp_path / "prod-pw").write_text("battery staple\n")
    return tmp_path


# -- the format, against the real ansible-vault ----------------------------------------


@needs_ansible
@pytest.mark.parametrize("vault_id", [None, "prod"], ids=["1.1", "1.2-with-id"])
def test_ansible_vault_reads_what_we_encrypt(work: Path, vault_id: Optional[str]) -> None:
    plain = "db:\n  password: %s\n  port: 5432\n" % SECRET
    (work / "vars.yml").write_text(plain)
    ids = ["--vault-id", "%s@prod-pw" % vault_id] if vault_id else ["--vault-password-file",
                                                                    "pw"]
    done = converge("vault", "encrypt", "vars.yml", *ids, cwd=work)
    assert done.returncode == 0, done.stderr
    text = (work / "vars.yml").read_text()
    header = "$ANSIBLE_VAULT;1.2;AES256;prod" if vault_id else "$ANSIBLE_VAULT;1.1;AES256"
    assert text.splitlines()[0] == header
    assert all(len(line) <= 80 for line in text.splitlines()) and text.endswith("\n")
    assert SECRET not in text
    assert ansible("view", *ids, "vars.yml", cwd=work).stdout == plain


@needs_ansible
@pytest.mark.parametrize("vault_id", [None, "prod"], ids=["1.1", "1.2-with-id"])
def test_we_read_what_ansible_vault_encrypts(work: Path, vault_id: Optional[str]) -> None:
    plain = "token: %s\n" % SECRET
    (work / "vars.yml").write_text(plain)
    ids = (["--vault-id", "%s@prod-pw" % vault_id, "--encrypt-vault-id", vault_id]
           if vault_id else ["--vault-password-file", "pw"])
    ansible("encrypt", *ids, "vars.yml", cwd=work)
    assert (work / "vars.yml").read_text().startswith(
        "$ANSIBLE_VAULT;1.2;AES256;prod" if vault_id else "$ANSIBLE_VAULT;1.1;AES256\n")
    done = converge("vault", "view", "vars.yml", *ids[:2], cwd=work)
    assert done.returncode == 0, done.stderr
    assert done.stdout == plain


@needs_ansible
def test_encrypt_string_both_ways(work: Path) -> None:
    ours = converge("vault", "encrypt-string", "--name", "token", "--vault-password-file",
                    "pw", cwd=work, stdin=SECRET + "\n")
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout.startswith("token: !vault |\n          $ANSIBLE_VAULT;1.1;AES256\n")
    body = "".join(line.strip() + "\n" for line in ours.stdout.splitlines()[1:])
    (work / "value.vault").write_text(body)
    # ansible-vault view ends what it prints with a newline; the value has none
    assert ansible("view", "--vault-password-file", "pw", "value.vault",
                   cwd=work).stdout in (SECRET, SECRET + "\n")
    assert vault.Keyring.from_options(["%s/pw" % work]).decrypt(body, "v") == SECRET.encode()
    theirs = ansible("encrypt_string", "--vault-password-file", "pw", "--name", "token",
                     SECRET, cwd=work).stdout
    (work / "theirs.yml").write_text("other: plain\n" + theirs)
    vault.configure(vault.Keyring.from_options(["%s/pw" % work]))
    assert vault.safe_load((work / "theirs.yml").read_text(), "theirs.yml") == {
        "other": "plain", "token": SECRET}
    assert SECRET in vault.revealed()


def test_a_fixed_salt_gives_the_known_text() -> None:
    """PBKDF2-SHA256, AES-256-CTR and HMAC-SHA256 laid out as ansible-vault does: the
    same salt gives the same text, and the text opens with the password only."""
    salt = bytes(range(32))
    first = vault.encrypt(b"hello\n", b"pw", salt=salt)
    assert first == vault.encrypt(b"hello\n", b"pw", salt=salt)
    assert vault.Keyring([vault.Secret("default", "unused", b"pw")]).decrypt(
        first, "x") == b"hello\n"
    with pytest.raises(VaultError, match="does not decrypt it"):
        vault.Keyring([vault.Secret("default", "unused", b"other")]).decrypt(first, "x")
    inner = bytes.fromhex("".join(first.splitlines()[1:]))
    assert inner.split(b"\n")[0] == salt.hex().encode()


def test_a_damaged_text_is_named(tmp_path: Path) -> None:
    text = vault.encrypt(b"x", b"pw")
    damaged = text.replace(text.splitlines()[1], "zz" + text.splitlines()[1][2:])
    with pytest.raises(VaultError, match="damaged"):
        vault.Keyring([vault.Secret("default", "unused", b"pw")]).decrypt(damaged, "f.yml")


# -- passwords -------------------------------------------------------------------------


def test_password_sources(work: Path) -> None:
    text = vault.encrypt(b"v", b"from-script", "ops")
    script = work / "ops-client.sh"
    script.write_text("#!/bin/sh\n[ \"$1 $2\" = '--vault-id ops' ] && echo from-script\n")
    script.chmod(0o700)
    ring = vault.Keyring.from_options(["%s/pw" % work], ["ops@%s" % script])
    assert ring.decrypt(text, "t") == b"v"  # the ops id is tried first, the script asked
    plain_script = work / "print-pw"
    plain_script.write_text("#!/bin/sh\necho correct horse\n")
    plain_script.chmod(0o700)
    assert vault.Keyring.from_options([str(plain_script)]).decrypt(
        vault.encrypt(b"w", b"correct horse"), "t") == b"w"
    env_ring = vault.Keyring.from_options(environ={
        "CONVERGE_VAULT_PASSWORD_FILE": str(work / "pw")})
    assert env_ring.decrypt(vault.encrypt(b"e", b"correct horse"), "t") == b"e"
    with pytest.raises(VaultError, match="--vault-id nope@: expected ID@FILE"):
        vault.Keyring.from_options(vault_ids=["nope@"])
    failing = work / "fail"
    failing.write_text("#!/bin/sh\necho 'no such secret' >&2\nexit 3\n")
    failing.chmod(0o700)
    with pytest.raises(VaultError, match="exited 3: no such secret"):
        vault.Keyring.from_options([str(failing)]).decrypt(text, "t")


# -- runs: wrong password, values hidden everywhere -------------------------------------

RECIPE = """\
from converge import execute, file
file("out/db.conf", content="password=%s\\n" % attrs.db.password, mode="0600")
file("out/plain.txt", content="port=%s\\n" % attrs.db.port)
"""


def _cookbook(work: Path, recipe: str = RECIPE, *, whole: bool) -> Path:
    book = work / "book"
    book.mkdir()
    (book / "recipe.py").write_text(recipe)
    (work / "out").mkdir()
    secret = vault.Secret("default", str(work / "pw"))
    if whole:
        attrs = "db:\n  password: %s\n  port: 5432\n" % SECRET
        (book / "attributes.yaml").write_text(vault.encrypt(attrs.encode(), secret.password()))
    else:
        (book / "attributes.yaml").write_text(
            "db:\n  port: 5432\n" + textwrap.indent(
                vault.encrypt_string(SECRET, secret, "password"), "  "))
    return book


@pytest.mark.parametrize("whole", [True, False], ids=["encrypted-file", "vault-value"])
def test_a_vault_value_never_shows(work: Path, whole: bool) -> None:
    _cookbook(work, whole=whole)
    env = {"CONVERGE_VAULT_PASSWORD_FILE": str(work / "pw")}
    outputs: List[str] = []
    for args in (["plan", "book"], ["apply", "book", "--diff", "--json", "report.json"],
                 ["check", "book"]):
        done = converge(*args, cwd=work, env=env)
        assert done.returncode in (0, 2), done.stderr
        outputs += [done.stdout, done.stderr]
    report = (work / "report.json").read_text()
    assert (work / "out/db.conf").read_text() == "password=%s\n" % SECRET
    assert "update content in file out/db.conf (sensitive)" in outputs[2]
    assert "+port=5432" in outputs[2]  # the other file shows its diff as always
    assert "(sensitive)" in "".join(outputs)
    assert SECRET not in "".join(outputs) + report
    state = Path(os.environ["CONVERGE_STATE_DIR"])
    for path in state.rglob("*"):
        if path.is_file() and "backup" not in path.parts:
            assert SECRET.encode() not in path.read_bytes(), path
    assert json.loads(report)["hosts"]["localhost"]["resources"][0]["id"] == \
        "file[out/db.conf]"


def test_a_wrong_password_stops_before_anything(work: Path) -> None:
    _cookbook(work, whole=True)
    (work / "wrong").write_text("nope\n")
    done = converge("apply", "book", "--vault-password-file", "wrong", cwd=work)
    assert done.returncode == 1
    assert done.stderr == (
        "error: book/attributes.yaml: the vault password does not decrypt it (tried: "
        "default (wrong))\n  check the password file, or give the right --vault-id\n")
    assert not (work / "out/db.conf").exists()
    missing = converge("apply", "book", cwd=work,
                       env={"CONVERGE_VAULT_PASSWORD_FILE": ""})
    assert missing.returncode == 1
    assert "book/attributes.yaml is encrypted with Ansible Vault and no vault password " \
        "was given" in missing.stderr
    assert not (work / "out/db.conf").exists()


def test_a_vault_value_in_a_command_line_is_refused(work: Path) -> None:
    recipe = ('from converge import execute\n'
              'execute(["mysql", "--password=%s" % attrs.db.password])\n')
    _cookbook(work, recipe, whole=False)
    done = converge("apply", "book", cwd=work,
                    env={"CONVERGE_VAULT_PASSWORD_FILE": str(work / "pw")})
    assert done.returncode == 1
    assert "book/recipe.py:2: execute[(sensitive)" in done.stderr
    assert "command holds a value decrypted from a vault" in done.stderr
    assert "environment={...}" in done.stderr
    assert SECRET not in done.stdout + done.stderr


def test_a_compile_error_hides_the_value(work: Path) -> None:
    recipe = 'raise ValueError("cannot use %s" % attrs.db.password)\n'
    _cookbook(work, recipe, whole=True)
    done = converge("plan", "book", "--debug", cwd=work,
                    env={"CONVERGE_VAULT_PASSWORD_FILE": str(work / "pw")})
    assert done.returncode == 1
    assert "ValueError: cannot use (sensitive)" in done.stderr
    assert SECRET not in done.stdout + done.stderr


def test_inventory_with_vault_values(work: Path) -> None:
    from converge.inventory import load

    secret = vault.Secret("default", str(work / "pw"))
    (work / "inventory.yml").write_text(
        "hosts:\n  web1:\n    address: 127.0.0.1\n    vars:\n"
        + textwrap.indent(vault.encrypt_string(SECRET, secret, "token"), "      "))
    vault.configure(vault.Keyring.from_options([str(work / "pw")]))
    inv = load(str(work / "inventory.yml"))
    assert inv.hosts["web1"].vars == {"token": SECRET}


# -- edit and create ---------------------------------------------------------------------

EDITOR = """\
#!/bin/sh
# records where it was asked to edit, the file's and its folder's modes, then edits
stat -c '%%a %%n' "$1" "$(dirname "$1")" > %(log)s
df --output=fstype "$1" | tail -1 >> %(log)s
printf 'added: line\\n' >> "$1"
exit %(status)d
"""


def _editor(work: Path, status: int) -> Dict[str, str]:
    path = work / ("editor%d" % status)
    path.write_text(EDITOR % {"log": work / "editor.log", "status": status})
    path.chmod(0o700)
    return {"EDITOR": str(path), "VISUAL": ""}


def test_edit_goes_through_a_private_file_that_is_removed(work: Path) -> None:
    (work / "v.yml").write_text("a: 1\n")
    assert converge("vault", "encrypt", "v.yml", "--vault-id", "prod@prod-pw",
                    cwd=work).returncode == 0
    done = converge("vault", "edit", "v.yml", "--vault-id", "prod@prod-pw", cwd=work,
                    env=_editor(work, 0))
    assert done.returncode == 0, done.stderr
    modes, fstype = (work / "editor.log").read_text().splitlines()[:2], \
        (work / "editor.log").read_text().splitlines()[2]
    temp_file, temp_dir = modes[0].split(" ", 1)[1], modes[1].split(" ", 1)[1]
    assert modes[0].startswith("600 ") and modes[1].startswith("700 ")
    if os.path.isdir("/dev/shm"):
        assert temp_dir.startswith("/dev/shm/") and fstype.strip() == "tmpfs"
    assert not os.path.exists(temp_file) and not os.path.exists(temp_dir)
    text = (work / "v.yml").read_text()
    assert text.startswith("$ANSIBLE_VAULT;1.2;AES256;prod\n")
    ring = vault.Keyring.from_options(vault_ids=["prod@%s" % (work / "prod-pw")])
    assert ring.decrypt(text, "v.yml") == b"a: 1\nadded: line\n"


def test_a_failing_editor_changes_nothing_and_leaves_nothing(work: Path) -> None:
    (work / "v.yml").write_text("a: 1\n")
    assert converge("vault", "encrypt", "v.yml", "--vault-password-file", "pw",
                    cwd=work).returncode == 0
    before = (work / "v.yml").read_bytes()
    done = converge("vault", "edit", "v.yml", "--vault-password-file", "pw", cwd=work,
                    env=_editor(work, 1))
    assert done.returncode == 1
    assert "the editor exited 1; v.yml is unchanged" in done.stderr
    assert (work / "v.yml").read_bytes() == before
    temp_dir = (work / "editor.log").read_text().splitlines()[1].split(" ", 1)[1]
    assert not os.path.exists(temp_dir)


def test_create_rekey_decrypt(work: Path) -> None:
    done = converge("vault", "create", "new.yml", "--vault-password-file", "pw", cwd=work,
                    env=_editor(work, 0))
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE((work / "new.yml").stat().st_mode) == 0o600
    assert converge("vault", "rekey", "new.yml", "--vault-password-file", "pw",
                    "--new-vault-id", "prod@prod-pw", cwd=work).returncode == 0
    assert (work / "new.yml").read_text().startswith("$ANSIBLE_VAULT;1.2;AES256;prod\n")
    old = converge("vault", "view", "new.yml", "--vault-password-file", "pw", cwd=work)
    assert old.returncode == 1 and "does not decrypt it" in old.stderr
    shown = converge("vault", "decrypt", "new.yml", "--output", "-", "--vault-id",
                     "prod@prod-pw", cwd=work)
    assert shown.stdout == "added: line\n"
    assert converge("vault", "decrypt", "new.yml", "--vault-id", "prod@prod-pw",
                    cwd=work).returncode == 0
    assert (work / "new.yml").read_text() == "added: line\n"
    again = converge("vault", "decrypt", "new.yml", "--vault-id", "prod@prod-pw", cwd=work)
    assert again.returncode == 1 and "new.yml is not encrypted" in again.stderr


def _on_a_terminal(argv: List[str], cwd: Path, answer: str) -> str:
    """Run converge with a pseudo-terminal as its terminal, answer its prompt once,
    and return all it wrote there."""
    import pty
    import select

    pid, fd = pty.fork()
    if pid == 0:  # the child: its stdin, stdout and stderr are the terminal
        try:
            os.chdir(cwd)
            os.execv(sys.executable, [sys.executable, "-m", "converge", *argv])
        finally:
            os._exit(127)
    seen, answered = b"", False
    while True:
        ready, _, _ = select.select([fd], [], [], 60)
        assert ready, "converge wrote nothing for 60 s: %r" % seen
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the child is gone and the terminal closed
            break
        if not chunk:
            break
        seen += chunk
        if not answered and b"Vault password" in seen:
            os.write(fd, answer.encode() + b"\n")
            answered = True
    _, status = os.waitpid(pid, 0)
    assert answered, seen
    assert os.waitstatus_to_exitcode(status) == 0, seen
    return seen.decode()


def test_ask_vault_pass_prompts_on_the_terminal_and_echoes_nothing(work: Path) -> None:
    (work / "secret.yml").write_text(vault.encrypt(SECRET.encode(), b"correct horse"))
    shown = _on_a_terminal(["vault", "view", "secret.yml", "--ask-vault-pass"], work,
                           "correct horse")
    assert "Vault password (default): " in shown
    assert SECRET in shown
    assert "correct horse" not in shown  # the terminal's echo was off while typing


def test_ask_vault_pass_without_a_terminal_is_one_clear_error(work: Path) -> None:
    (work / "secret.yml").write_text(vault.encrypt(SECRET.encode(), b"correct horse"))
    done = converge("vault", "view", "secret.yml", "--ask-vault-pass", cwd=work,
                    stdin="correct horse\n")
    assert done.returncode != 0
    assert "--ask-vault-pass needs a terminal" in done.stderr, done.stderr
    assert "--vault-password-file" in done.stderr
    assert SECRET not in done.stdout + done.stderr
