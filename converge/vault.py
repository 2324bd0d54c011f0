"""Secrets at rest: Ansible Vault files and values, read and written byte for byte as
ansible-vault does, so teams keep the files they already have.

The format (Ansible Vault 1.1, and 1.2 when a vault id other than ``default`` is
named in the header)::

    $ANSIBLE_VAULT;1.1;AES256            or  $ANSIBLE_VAULT;1.2;AES256;prod
    <hex of: hex(salt) \\n hex(hmac) \\n hex(ciphertext)>, in lines of 80

    key material = PBKDF2-HMAC-SHA256(password, salt (32 random bytes), 10000 rounds,
                                      80 bytes)
    cipher key, hmac key, counter = key material [0:32], [32:64], [64:80]
    ciphertext = AES-256-CTR(cipher key, counter, PKCS#7-padded plaintext)
    hmac = HMAC-SHA256(hmac key, ciphertext)

Every primitive comes from the ``cryptography`` library, imported only here and
only when something is encrypted or decrypted.

Decrypted values are *revealed*: converge remembers them for the rest of the run
and hides them by value, wherever they turn up (a resource whose properties hold
one is sensitive; output, reports and errors replace them with ``(sensitive)``).
"""

from __future__ import annotations

import binascii
import os
import re
import stat
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from .errors import VaultError

HEADER = "$ANSIBLE_VAULT"
CIPHER = "AES256"
SALT_BYTES = 32
ROUNDS = 10000
LINE = 80
DEFAULT_ID = "default"
VAULT_ID = re.compile(r"[A-Za-z0-9_.\-]+")
SHORTEST_SCRUBBED = 4  # shorter revealed values are hidden where a value equals them
STRING_INDENT = " " * 10  # encrypt-string's layout, as ansible-vault prints it


# -- revealed values --------------------------------------------------------------

_revealed: set[str] = set()


def reveal(value: str) -> str:
    """Remember a decrypted value for the rest of this run; return it."""
    if value:
        _revealed.add(value)
    return value


def revealed() -> frozenset[str]:
    return frozenset(_revealed)


def forget() -> None:
    """Forget every revealed value (tests; a long-lived process between runs)."""
    _revealed.clear()


def holds_secret(value: Any) -> bool:
    """Whether a value (a string, bytes, or lists and dicts of them) contains a
    revealed value: ``"password=%s" % secret`` holds the secret."""
    if not _revealed:
        return False
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        return any(secret in value if len(secret) >= SHORTEST_SCRUBBED else secret == value
                   for secret in _revealed)
    if isinstance(value, dict):
        return any(holds_secret(k) or holds_secret(v) for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(holds_secret(item) for item in value)
    return False


def scrub(text: str) -> str:
    """The text with every revealed value (of four characters or more) replaced by
    ``(sensitive)``; shorter ones are hidden only where they are the whole text."""
    if not _revealed or not isinstance(text, str):
        return text
    if text in _revealed:
        return "(sensitive)"
    for secret in sorted((s for s in _revealed if len(s) >= SHORTEST_SCRUBBED),
                         key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, "(sensitive)")
    return text


def scrub_data(value: Any) -> Any:
    """scrub() applied to every string inside lists and dicts (a JSON report)."""
    if not _revealed:
        return value
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {scrub_data(k): scrub_data(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_data(item) for item in value]
    if isinstance(value, tuple):
        return tuple(scrub_data(item) for item in value)
    return value


# -- the format ---------------------------------------------------------------------


class Envelope:
    """A vault text's header and its hex body."""

    __slots__ = ("version", "cipher", "vault_id", "body")

    def __init__(self, version: str, cipher: str, vault_id: Optional[str],
                 body: bytes) -> None:
        self.version, self.cipher, self.vault_id, self.body = version, cipher, vault_id, body


def is_vault(data: Union[str, bytes]) -> bool:
    """Whether a file's content or a value is vault-encrypted."""
    text = data.decode("ascii", "replace") if isinstance(data, bytes) else data
    return text.lstrip().startswith(HEADER + ";")


def parse(text: Union[str, bytes], where: str = "vault text") -> Envelope:
    raw = text.decode("ascii", "replace") if isinstance(text, bytes) else text
    lines = raw.strip().splitlines()
    if not lines:
        raise VaultError("%s is empty, not vault-encrypted" % where)
    header = lines[0].strip().split(";")
    if header[0] != HEADER or len(header) < 3:
        raise VaultError("%s does not start with a vault header ($ANSIBLE_VAULT;1.1;AES256)"
                         % where)
    version, cipher = header[1], header[2]
    if version not in ("1.1", "1.2"):
        raise VaultError("%s is vault format %s; converge reads 1.1 and 1.2 (ansible-vault "
                         "rekey rewrites older files)" % (where, version))
    if cipher != CIPHER:
        raise VaultError("%s uses cipher %s; only AES256 is supported" % (where, cipher))
    vault_id = header[3] if version == "1.2" and len(header) > 3 else None
    body = "".join(line.strip() for line in lines[1:]).encode("ascii", "replace")
    return Envelope(version, cipher, vault_id, body)


def _keys(password: bytes, salt: bytes) -> Tuple[bytes, bytes, bytes]:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

    material = PBKDF2HMAC(algorithm=hashes.SHA256(), length=80, salt=salt,
                          iterations=ROUNDS).derive(password)
    return material[:32], material[32:64], material[64:80]


def encrypt(plaintext: bytes, password: bytes, vault_id: Optional[str] = None,
            salt: Optional[bytes] = None) -> str:
    """Vault text for ``plaintext`` (1.2 with the vault id in the header when one other
    than ``default`` is given), ending in a newline as ansible-vault writes it."""
    from cryptography.hazmat.primitives import hashes, padding
    from cryptography.hazmat.primitives import hmac as crypto_hmac
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    salt = salt if salt is not None else os.urandom(SALT_BYTES)
    key, mac_key, counter = _keys(password, salt)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CTR(counter)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    mac = crypto_hmac.HMAC(mac_key, hashes.SHA256())
    mac.update(ciphertext)
    inner = b"\n".join([binascii.hexlify(salt), binascii.hexlify(mac.finalize()),
                        binascii.hexlify(ciphertext)])
    body = binascii.hexlify(inner).decode("ascii")
    if vault_id and vault_id != DEFAULT_ID:
        header = ";".join([HEADER, "1.2", CIPHER, vault_id])
    else:
        header = ";".join([HEADER, "1.1", CIPHER])
    return "\n".join([header] + [body[i:i + LINE] for i in range(0, len(body), LINE)]) + "\n"


def _open(envelope: Envelope, password: bytes) -> Optional[bytes]:
    """The plaintext, or None when this password's HMAC does not match."""
    import hmac as std_hmac  # here, as cryptography: only a run that opens a vault

    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    try:
        inner = binascii.unhexlify(envelope.body)
        salt_hex, mac_hex, data_hex = inner.split(b"\n", 2)
        salt, mac, ciphertext = (binascii.unhexlify(salt_hex), binascii.unhexlify(mac_hex),
                                 binascii.unhexlify(data_hex))
    except (binascii.Error, ValueError):
        raise VaultError("damaged") from None
    key, mac_key, counter = _keys(password, salt)
    expected = std_hmac.new(mac_key, ciphertext, "sha256").digest()
    if not std_hmac.compare_digest(expected, mac):
        return None
    decryptor = Cipher(algorithms.AES(key), modes.CTR(counter)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise VaultError("damaged") from None


# -- passwords ----------------------------------------------------------------------


class Secret:
    """One vault password: its id, and where it comes from (a file, an executable that
    prints it, or a prompt), read once, when first needed."""

    def __init__(self, vault_id: str, source: str, value: Optional[bytes] = None) -> None:
        self.vault_id = vault_id
        self.source = source  # a path, or "prompt"
        self._value = value

    def __repr__(self) -> str:
        return "Secret(%r, %r)" % (self.vault_id, self.source)

    @property
    def label(self) -> str:
        where = "a prompt" if self.source == "prompt" else self.source
        return "%s (%s)" % (self.vault_id, where)

    def password(self) -> bytes:
        if self._value is None:
            self._value = self._read()
        return self._value

    def _read(self) -> bytes:
        if self.source == "prompt":
            import getpass

            if not sys.stdin.isatty():
                raise VaultError("vault password for id %s: --ask-vault-pass needs a "
                                 "terminal" % self.vault_id,
                                 hint="give --vault-password-file FILE in scripts and CI")
            value = getpass.getpass("Vault password (%s): " % self.vault_id).encode()
        else:
            path = Path(self.source)
            try:
                info = path.stat()
            except OSError as exc:
                raise VaultError("vault password file %s: %s"
                                 % (self.source, exc.strerror or exc)) from None
            if stat.S_ISREG(info.st_mode) and info.st_mode & 0o111:
                value = self._run(path)
            else:
                try:
                    value = path.read_bytes()
                except OSError as exc:
                    raise VaultError("vault password file %s: %s"
                                     % (self.source, exc.strerror or exc)) from None
        value = value.strip()
        if not value:
            raise VaultError("vault password for id %s from %s is empty"
                             % (self.vault_id, self.source))
        return value

    def _run(self, path: Path) -> bytes:
        """An executable prints the password; a ``*-client`` script is asked for the
        vault id with ``--vault-id``, as Ansible's client scripts are."""
        import subprocess

        argv = [str(path.absolute())]
        if re.search(r"-client(\.[^/]*)?$", path.name):
            argv += ["--vault-id", self.vault_id]
        try:
            done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  stdin=subprocess.DEVNULL, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise VaultError("vault password script %s failed: %s" % (path, exc)) from None
        if done.returncode != 0:
            words = done.stderr.decode("utf-8", "replace").strip().splitlines()
            raise VaultError("vault password script %s exited %d%s"
                             % (path, done.returncode, ": " + words[-1] if words else ""))
        return done.stdout


class Keyring:
    """The vault passwords of this run, from the command line and the environment."""

    def __init__(self, secrets: Sequence[Secret] = ()) -> None:
        self.secrets = list(secrets)

    @classmethod
    def from_options(cls, password_files: Sequence[str] = (), vault_ids: Sequence[str] = (),
                     ask: bool = False, environ: Optional[Mapping[str, str]] = None
                     ) -> "Keyring":
        """--vault-password-file FILE, --vault-id [ID@]FILE|prompt, --ask-vault-pass,
        and CONVERGE_VAULT_PASSWORD_FILE when none of them is given."""
        env: Mapping[str, str] = os.environ if environ is None else environ
        secrets = [Secret(DEFAULT_ID, path) for path in password_files]
        for text in vault_ids:
            name, at, source = text.rpartition("@")
            name = name if at else DEFAULT_ID
            if not source or not VAULT_ID.fullmatch(name):
                raise VaultError("--vault-id %s: expected ID@FILE or ID@prompt (an id of "
                                 "letters, digits, '.', '_' or '-')" % text)
            secrets.append(Secret(name, source))
        if ask:
            secrets.append(Secret(DEFAULT_ID, "prompt"))
        if not secrets and env.get("CONVERGE_VAULT_PASSWORD_FILE"):
            secrets.append(Secret(DEFAULT_ID, env["CONVERGE_VAULT_PASSWORD_FILE"]))
        return cls(secrets)

    def candidates(self, vault_id: Optional[str]) -> List[Secret]:
        """The secret named by the header first, then every other (as Ansible tries)."""
        named = [s for s in self.secrets if vault_id and s.vault_id == vault_id]
        return named + [s for s in self.secrets if s not in named]

    def for_encrypt(self, vault_id: Optional[str] = None) -> Secret:
        if not self.secrets:
            raise VaultError("no vault password given",
                             hint=HOW_TO_GIVE)
        if vault_id:
            for secret in self.secrets:
                if secret.vault_id == vault_id:
                    return secret
            raise VaultError("--encrypt-vault-id %s names no given vault id (given: %s)"
                             % (vault_id, ", ".join(s.vault_id for s in self.secrets)))
        if len({s.vault_id for s in self.secrets}) > 1:
            raise VaultError("several vault ids given (%s): choose one with "
                             "--encrypt-vault-id ID"
                             % ", ".join(s.vault_id for s in self.secrets))
        return self.secrets[0]

    def decrypt(self, text: Union[str, bytes], where: str) -> bytes:
        """The plaintext of a vault text; a wrong or missing password names ``where``."""
        envelope = parse(text, where)
        if not self.secrets:
            raise VaultError("%s is encrypted with Ansible Vault and no vault password was "
                             "given" % where, hint=HOW_TO_GIVE)
        for secret in self.candidates(envelope.vault_id):
            try:
                plain = _open(envelope, secret.password())
            except VaultError as exc:
                if exc.message == "damaged":
                    raise VaultError("%s: the vault text is damaged (not the hex that "
                                     "ansible-vault writes)" % where) from None
                raise
            if plain is not None:
                return plain
        raise VaultError("%s: the vault password does not decrypt it (tried: %s)"
                         % (where, ", ".join(s.label for s in self.candidates(
                             envelope.vault_id))),
                         hint="check the password file, or give the right --vault-id")

    def vault_id_of(self, text: Union[str, bytes], where: str) -> str:
        """The id of the password that opens a vault text (to re-encrypt it with)."""
        envelope = parse(text, where)
        for secret in self.candidates(envelope.vault_id):
            if _open(envelope, secret.password()) is not None:
                return secret.vault_id
        raise VaultError("%s: the vault password does not decrypt it" % where)


HOW_TO_GIVE = ("give --vault-password-file FILE, --vault-id ID@FILE or --ask-vault-pass, "
               "or set CONVERGE_VAULT_PASSWORD_FILE")

_keyring = Keyring()


def configure(keyring: Keyring) -> None:
    """The passwords this run decrypts with (set once by the command line)."""
    global _keyring
    _keyring = keyring


def keyring() -> Keyring:
    return _keyring


# -- YAML with vault values ------------------------------------------------------------


def read_yaml_text(path: Union[str, Path], where: Optional[str] = None) -> str:
    """A YAML file's text, decrypted (and every string in it revealed) when the whole
    file is vault-encrypted."""
    data = Path(path).read_bytes()
    if not is_vault(data):
        return data.decode("utf-8")
    label = where or str(path)
    plain = _keyring.decrypt(data, label)
    try:
        text = plain.decode("utf-8")
    except UnicodeDecodeError:
        raise VaultError("%s: the decrypted content is not UTF-8 text" % label) from None
    _reveal_strings(text)
    return text


def _reveal_strings(text: str) -> None:
    """Every string value of a decrypted YAML document becomes a revealed value."""
    import yaml

    try:
        data = _load(text, "")
    except yaml.YAMLError:
        return  # the caller parses it again and reports the error with its line
    for value in _strings(data):
        reveal(value)


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def loader(where: str) -> Any:
    """A yaml SafeLoader class that also reads ``!vault |`` values, decrypting them
    with the configured passwords (each one revealed)."""
    import yaml

    class VaultLoader(yaml.SafeLoader):  # the pure one: its messages are the documented ones
        pass

    def construct(load: Any, node: Any) -> str:
        text = load.construct_scalar(node)
        label = "%s:%d" % (where, node.start_mark.line + 1) if where else "a !vault value"
        plain = _keyring.decrypt(text, label)
        try:
            return reveal(plain.decode("utf-8"))
        except UnicodeDecodeError:
            raise VaultError("%s: the decrypted value is not UTF-8 text" % label) from None

    VaultLoader.add_constructor("!vault", construct)
    return VaultLoader


def safe_load(text: str, where: str) -> Any:
    """yaml.safe_load, plus ``!vault`` values."""
    return _load(text, where)


def _load(text: str, where: str) -> Any:
    """What yaml.safe_load does, with the SafeLoader subclass of :func:`loader`."""
    reader = loader(where)(text)
    try:
        return reader.get_single_data()
    finally:
        reader.dispose()


def encrypt_string(value: str, secret: Secret, name: Optional[str] = None) -> str:
    """A value to paste into YAML, laid out as ansible-vault encrypt_string lays it."""
    text = encrypt(value.encode("utf-8"), secret.password(), secret.vault_id)
    body = "".join(STRING_INDENT + line + "\n" for line in text.splitlines())
    return ("%s: !vault |\n" % name if name else "!vault |\n") + body


# -- files ----------------------------------------------------------------------------


def write_atomic(path: Path, data: bytes, mode: Optional[int] = None) -> None:
    """Replace a file whole: a temporary file beside it, fsync, rename."""
    import tempfile

    if mode is None:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            mode = 0o600
    fd, temp = tempfile.mkstemp(prefix=".%s." % path.name, dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        raise


def private_dir() -> str:
    """A 0700 directory for decrypted text, on a memory file system where there is one."""
    import tempfile

    for base in ("/dev/shm", os.environ.get("XDG_RUNTIME_DIR") or ""):
        if base and os.path.isdir(base) and os.access(base, os.W_OK):
            return tempfile.mkdtemp(prefix="converge-vault-", dir=base)
    return tempfile.mkdtemp(prefix="converge-vault-")


def edit_text(initial: bytes, name: str,
              editor: Optional[Callable[[str], int]] = None) -> bytes:
    """Let the user edit ``initial`` in $EDITOR through a private 0600 file that is
    removed afterwards, whether the editor succeeds or not."""
    folder = private_dir()
    path = os.path.join(folder, os.path.basename(name) or "vault")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(initial)
        status = (editor or _run_editor)(path)
        if status != 0:
            raise VaultError("the editor exited %d; %s is unchanged" % (status, name))
        with open(path, "rb") as handle:
            return handle.read()
    finally:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        os.rmdir(folder)


def _run_editor(path: str) -> int:
    import shlex
    import subprocess

    command = shlex.split(os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi")
    try:
        return subprocess.call([*command, path])
    except OSError as exc:
        raise VaultError("cannot start the editor %s: %s (set EDITOR)"
                         % (command[0], exc.strerror or exc)) from None
