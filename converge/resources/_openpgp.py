"""OpenPGP public keys for apt, in pure Python: dearmor an ASCII-armored key
(``-----BEGIN PGP PUBLIC KEY BLOCK-----``: base64 between the armor lines,
checked against its CRC-24 when the armor carries one), and check that binary
data is a sequence of well-formed OpenPGP packets starting with a public key,
which is what apt's ``Signed-By`` keyring file must hold. No gpg is needed.
Standard library only, Python 3.8 (the agent dearmors keys fetched on targets).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import List, Tuple, Union

ARMOR = re.compile(r"-----BEGIN PGP ([A-Z0-9 ,/]+)-----[ \t]*\r?\n(.*?)-----END PGP \1-----",
                   re.DOTALL)
HEADER = re.compile(r"[A-Za-z][A-Za-z0-9-]*: ")
PUBLIC_KEY, PUBLIC_SUBKEY, SECRET_KEY, SECRET_SUBKEY = 6, 14, 5, 7
# what a public keyring holds: keys, signatures, user ids and attributes, trust, marker
KEYRING_TAGS = {2, 6, 10, 12, 13, 14, 17}


class BadKey(ValueError):
    """Not a usable public key; the message says why (it never quotes the data)."""


def is_armored(data: Union[str, bytes]) -> bool:
    text = data.decode("ascii", "replace") if isinstance(data, bytes) else data
    return "-----BEGIN PGP " in text


def crc24(data: bytes) -> int:
    """The armor checksum of RFC 4880, section 6.1."""
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def dearmor(text: str) -> bytes:
    """The binary keyring of one or more armored public key blocks (concatenated)."""
    blocks = ARMOR.findall(text)
    if not blocks:
        raise BadKey("it has no complete '-----BEGIN PGP PUBLIC KEY BLOCK-----' ... "
                        "'-----END PGP PUBLIC KEY BLOCK-----' armor")
    out = b""
    for kind, body in blocks:
        if "PRIVATE" in kind or "SECRET" in kind:
            raise BadKey("it is a PRIVATE key block: give the public key (gpg --export "
                            "--armor KEYID), and keep the private one off servers")
        if kind != "PUBLIC KEY BLOCK":
            raise BadKey("it is a 'PGP %s', not a 'PGP PUBLIC KEY BLOCK'" % kind)
        out += _block(body)
    check(out)
    return out


def _block(body: str) -> bytes:
    lines = [line.strip() for line in body.splitlines()]
    while lines and HEADER.match(lines[0]):  # Version:, Comment: ...
        lines.pop(0)
    lines = [line for line in lines if line]
    checksum = None
    if lines and lines[-1].startswith("=") and len(lines[-1]) == 5:
        checksum = lines.pop()[1:]
    try:
        data = base64.b64decode("".join(lines), validate=True)
    except (binascii.Error, ValueError):
        raise BadKey("its armored body is not valid base64") from None
    if checksum is not None:
        try:
            want = int.from_bytes(base64.b64decode(checksum, validate=True), "big")
        except (binascii.Error, ValueError):
            raise BadKey("its armor checksum line is not valid base64") from None
        if crc24(data) != want:
            raise BadKey("its armor checksum (CRC-24) does not match: the key was "
                            "damaged or cut when copied")
    return data


def packets(data: bytes) -> List[Tuple[int, bytes]]:
    """(tag, body) of every packet; BadKey when the data is not whole packets."""
    out: List[Tuple[int, bytes]] = []
    pos = 0
    while pos < len(data):
        first = data[pos]
        if not first & 0x80:
            raise BadKey("it is not OpenPGP data (byte %d is not a packet header)" % pos)
        if first & 0x40:  # new format
            tag = first & 0x3F
            length, pos = _new_length(data, pos + 1)
        else:
            tag, kind = (first >> 2) & 0x0F, first & 0x03
            if kind == 3:
                raise BadKey("it has a packet of indeterminate length, which keys never use")
            size = (1, 2, 4)[kind]
            if pos + 1 + size > len(data):
                raise BadKey("it ends inside a packet header")
            length = int.from_bytes(data[pos + 1:pos + 1 + size], "big")
            pos += 1 + size
        if pos + length > len(data):
            raise BadKey("it ends inside a packet (cut short?)")
        out.append((tag, data[pos:pos + length]))
        pos += length
    return out


def _new_length(data: bytes, pos: int) -> Tuple[int, int]:
    if pos >= len(data):
        raise BadKey("it ends inside a packet header")
    first = data[pos]
    if first < 192:
        return first, pos + 1
    if first < 224:
        if pos + 1 >= len(data):
            raise BadKey("it ends inside a packet header")
        return ((first - 192) << 8) + data[pos + 1] + 192, pos + 2
    if first == 255:
        if pos + 5 > len(data):
            raise BadKey("it ends inside a packet header")
        return int.from_bytes(data[pos + 1:pos + 5], "big"), pos + 5
    raise BadKey("it has a partial-length packet, which keys never use")


def check(data: bytes) -> List[str]:
    """Check a binary public keyring; the key ids of its primary keys."""
    if not data:
        raise BadKey("it is empty")
    found = packets(data)
    tags = [tag for tag, _ in found]
    if SECRET_KEY in tags or SECRET_SUBKEY in tags:
        raise BadKey("it holds a PRIVATE key: give the public key (gpg --export KEYID), "
                        "and keep the private one off servers")
    if tags[0] != PUBLIC_KEY:
        raise BadKey("it does not start with a public key packet (it starts with a "
                        "packet of type %d)" % tags[0])
    odd = sorted(set(tags) - KEYRING_TAGS)
    if odd:
        raise BadKey("it holds packets a public key never has (type %s)"
                        % ", ".join(str(t) for t in odd))
    return [key_id(body) for tag, body in found if tag == PUBLIC_KEY]


def key_id(body: bytes) -> str:
    """The long key id apt shows (NO_PUBKEY 0123456789ABCDEF) of a v4 key;
    a v5/v6 key's fingerprint prefix; '?' for older versions."""
    version = body[0] if body else 0
    if version == 4:
        digest = hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body).hexdigest()  # noqa: S324 - the OpenPGP v4 fingerprint is SHA-1 by definition
        return digest[-16:].upper()
    if version in (5, 6):
        prefix = b"\x9a" if version == 5 else b"\x9b"
        digest = hashlib.sha256(prefix + len(body).to_bytes(4, "big") + body).hexdigest()
        return digest[:16].upper()
    return "?"


def keyring(data: Union[str, bytes]) -> bytes:
    """Binary keyring bytes from armored text or binary data (checked either way)."""
    if isinstance(data, bytes) and not is_armored(data[:4096]):
        check(data)
        return data
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return dearmor(text)
