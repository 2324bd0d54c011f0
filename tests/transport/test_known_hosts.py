"""known_hosts is read once for a whole fleet, not once per host, and again when it
changes: what each host's connection is checked against is what paramiko's own
lookup finds in the file (plain, ``[address]:port`` and hashed entries)."""

from __future__ import annotations

import os
from pathlib import Path

import paramiko

from converge.transport.ssh import _known_keys

KIND = "ecdsa-sha2-nistp256"


def key() -> paramiko.PKey:
    return paramiko.ECDSAKey.generate()


def line(name: str, pkey: paramiko.PKey) -> str:
    return "%s %s %s\n" % (name, pkey.get_name(), pkey.get_base64())


def test_each_host_finds_its_own_key(tmp_path: Path) -> None:
    web, db, ported, hashed = key(), key(), key(), key()
    known = tmp_path / "known_hosts"
    known.write_text(line("10.0.0.1", web) + line("10.0.0.2", db)
                     + line("[10.0.0.3]:2222", ported)
                     + line(paramiko.HostKeys.hash_host("10.0.0.4"), hashed))
    assert _known_keys(str(known), "10.0.0.1") == [(KIND, web)]
    assert _known_keys(str(known), "10.0.0.2") == [(KIND, db)]
    assert _known_keys(str(known), "[10.0.0.3]:2222") == [(KIND, ported)]
    assert _known_keys(str(known), "10.0.0.3") == []
    assert _known_keys(str(known), "10.0.0.4") == [(KIND, hashed)]
    assert _known_keys(str(known), "10.0.0.9") == []


def test_the_file_is_parsed_once_until_it_changes(tmp_path: Path) -> None:
    first, second, third = key(), key(), key()
    known = tmp_path / "known_hosts"
    known.write_text(line("10.0.0.1", first))
    assert _known_keys(str(known), "10.0.0.1") == [(KIND, first)]
    stamp = known.stat()
    # the same size and modification time: the parsed file is used, not read again
    known.write_text(line("10.0.0.1", second))
    os.utime(known, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert _known_keys(str(known), "10.0.0.1") == [(KIND, first)]
    # a key recorded (--accept-new appends): read again
    with known.open("a") as fh:
        fh.write(line("10.0.0.2", third))
    assert _known_keys(str(known), "10.0.0.1") == [(KIND, second)]
    assert _known_keys(str(known), "10.0.0.2") == [(KIND, third)]
