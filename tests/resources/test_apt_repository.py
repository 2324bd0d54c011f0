"""apt_repository under a temporary root (no apt-get there: the update is left to
the lab tests, and a warning says it did not run): bad input refused while
compiling, keys dearmored in pure Python and checked (CRC-24, private keys,
garbage), the deb822 text, idempotence without touching mtimes, the default
suite from /etc/os-release, a link at the file's place replaced and never
followed, remove, and the same repository listed by another file named."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any, Callable, Dict

import pytest

from converge.errors import PropertyError
from converge.resources import _openpgp as pgp
from tests.conftest import Converger

# A throwaway ed25519 public key made with gpg --quick-gen-key for these tests.
KEY = """\
-----BEGIN PGP PUBLIC KEY BLOCK-----

mDMEaw/ldxYJKwYBBAHaRw8BAQdAsjCUzNlVpph1JL8z+2lq1S8njHjkD8rQbxHn
zmmaUL60JGNvbnZlcmdlIHRlc3QgPHRlc3RAZXhhbXBsZS5pbnZhbGlkPoiQBBMW
CAA4FiEEpNONmVDBbozzfT0kVpiH1rBlzRMFAmsP5XcCGwMFCwkIBwIGFQoJCAsC
BBYCAwECHgECF4AACgkQVpiH1rBlzRNt5gD/d2+Cqqb9vn23H8XYCzjpwbfMQNUj
aoOjRPdro6zulEQBAJC0g2gOmwDAee6hJS8mQszX/OA6g7blGFUYTnkEnuIC
=WuVv
-----END PGP PUBLIC KEY BLOCK-----
"""
KEY_ID = "569887D6B065CD13"
BODY = "".join(KEY.splitlines()[2:-2])
BINARY = base64.b64decode(BODY)
SOURCES = "/etc/apt/sources.list.d/local.sources"
KEYRING = "/etc/apt/keyrings/local.gpg"
HEAD = "from converge import apt_repository\n"


def recipe(args: str) -> str:
    return HEAD + "apt_repository(%s)\n" % args


@pytest.fixture
def apt(converger: Converger) -> Converger:
    converger.path("/etc/apt/sources.list.d").mkdir(parents=True)
    converger.path("/etc/os-release").write_text('ID=debian\nVERSION_CODENAME="bookworm"\n')
    converger.write("key.asc", KEY)
    return converger


@pytest.mark.parametrize("args, message", [
    pytest.param("'a/b', 'https://x.example/'", "repo_name 'a/b' is not a file name apt reads",
                 id="name-slash"),
    pytest.param("'a b', 'https://x.example/'", "repo_name 'a b' is not", id="name-space"),
    pytest.param("'..', 'https://x.example/'", "repo_name '..' is not", id="name-dotdot"),
    pytest.param("'a..b', 'https://x.example/'", "repo_name 'a..b' is not", id="name-dots"),
    pytest.param("'x', 'ftp://x.example/'", "uri 'ftp://x.example/' is not an http://",
                 id="uri-scheme"),
    pytest.param("'x', 'https:///debian'", "uri 'https:///debian' is not", id="uri-no-host"),
    pytest.param("'x', 'https://x.example/a b'", "is not an http://", id="uri-space"),
    pytest.param("'x', 'https://u:secret@x.example/'",
                 "uri 'https://u:***@x.example/' holds a password", id="uri-password"),
    pytest.param("'x', 'https://x.example/', components=['main contrib']",
                 "component 'main contrib' is not a component name", id="component-space"),
    pytest.param("'x', 'https://x.example/', distribution='./'",
                 "a flat repository (distribution './') has no components", id="flat-comps"),
    pytest.param("'x', 'https://x.example/', distribution='stable', components=()",
                 "distribution 'stable' needs components", id="suite-no-comps"),
    pytest.param("'x', 'https://x.example/', distribution='a b'",
                 "distribution 'a b' is not a suite", id="suite-space"),
    pytest.param("'x', 'https://x.example/', arch='AMD 64'", "arch 'AMD 64' is not",
                 id="arch"),
    pytest.param("'x', 'https://x.example/', key='http://x.example/k.asc'",
                 "a key URL must be https://", id="key-http"),
    pytest.param("'x', action='add'", "uri is required for action 'add'", id="no-uri"),
])
def test_bad_input_is_refused_while_compiling(apt: Converger, args: str, message: str) -> None:
    with pytest.raises(PropertyError, match=_escaped(message)) as info:
        apt.compile(recipe(args))
    assert "recipe.py:2: apt_repository[" in str(info.value)


def _escaped(text: str) -> str:
    import re

    return re.escape(text)


@pytest.mark.parametrize("key, message", [
    pytest.param(KEY.replace("=WuVv", "=WuVw"), "armor checksum (CRC-24) does not match",
                 id="crc"),
    pytest.param(KEY.replace("mDMEaw", "mDMEax"), "", id="damaged-body"),
    pytest.param(KEY.replace("PUBLIC", "PRIVATE"), "it is a PRIVATE key block", id="private"),
    pytest.param("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nnot base64!\n"
                 "-----END PGP PUBLIC KEY BLOCK-----\n", "not valid base64", id="not-base64"),
    pytest.param("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\naGVsbG8=\n"
                 "-----END PGP PUBLIC KEY BLOCK-----\n", "is not OpenPGP data", id="not-pgp"),
    pytest.param(KEY[:200], "no complete", id="cut"),
])
def test_a_bad_key_is_refused_while_compiling(apt: Converger, key: str, message: str) -> None:
    apt.write("bad.asc", key)
    with pytest.raises(PropertyError) as info:
        apt.compile(recipe("'x', 'https://x.example/', key='bad.asc'"))
    text = str(info.value)
    assert "recipe.py:2: apt_repository[x]: key file 'bad.asc' is not an OpenPGP public key: " \
        in text, text
    assert message in text
    assert "mDME" not in text  # the key itself is never quoted


def test_dearmor_matches_gpg_and_reads_key_ids() -> None:
    assert pgp.dearmor(KEY) == BINARY
    assert pgp.dearmor("    " + KEY.replace("\n", "\n    ")) == BINARY  # indented in a recipe
    assert pgp.dearmor(KEY.replace("\n=WuVv", "")) == BINARY  # the CRC line is optional
    assert pgp.dearmor(KEY + KEY) == BINARY + BINARY
    assert pgp.check(BINARY) == [KEY_ID]
    assert pgp.crc24(b"") == 0xB704CE
    with pytest.raises(pgp.BadKey, match="PRIVATE key"):
        pgp.check(bytes([0x80 | (5 << 2), 1, 4]))


@pytest.mark.parametrize("key", [
    pytest.param("KEY", id="literal"), pytest.param("'key.asc'", id="armored-file"),
    pytest.param("'key.gpg'", id="binary-file")])
def test_key_forms_give_the_same_keyring(apt: Converger, key: str) -> None:
    (apt.workdir / "key.gpg").write_bytes(BINARY)
    text = "KEY = %r\n" % KEY + recipe("'local', 'file:///srv/repo', distribution='./', "
                                       "components=(), key=%s" % key)
    plan = apt.compile(text)
    assert plan.steps[0].resource().key == BINARY


def test_add_is_idempotent(apt: Converger, mtimes: Callable[[Path], Dict[str, int]]) -> None:
    text = recipe("'local', 'file:///srv/repo', distribution='./', components=(), "
                  "key='key.asc'")
    events = apt.run(text)
    assert events[0]["status"] == "updated", events
    assert events[0]["changes"] == ["install key %s (%s)" % (KEYRING, KEY_ID),
                                    "create " + SOURCES]
    assert "+Signed-By: /etc/apt/keyrings/local.gpg" in events[0]["diffs"][0]
    assert events[0]["warnings"] == ["apt-get update was not run for local: converging the "
                                     "tree %s, not this machine" % apt.root]
    assert apt.path(SOURCES).read_text() == (
        "# Managed by converge: apt_repository[local]\nTypes: deb\nURIs: file:///srv/repo\n"
        "Suites: ./\nSigned-By: /etc/apt/keyrings/local.gpg\n")
    assert apt.path(KEYRING).read_bytes() == BINARY
    for path in (SOURCES, KEYRING):
        assert oct(os.stat(apt.path(path)).st_mode & 0o777) == "0o644"
    before = mtimes(apt.root)
    again = apt.run(text)
    assert [e["status"] for e in again] == ["up_to_date"]
    assert mtimes(apt.root) == before

    os.chmod(apt.path(KEYRING), 0o600)  # _apt could not read it: put right, no update
    fixed = apt.run(text)
    assert fixed[0]["changes"] == ["change mode of %s from '0600' to '0644'" % KEYRING]
    assert fixed[0]["warnings"] == []
    assert oct(os.stat(apt.path(KEYRING)).st_mode & 0o777) == "0o644"


def test_default_suite_is_the_codename(apt: Converger) -> None:
    apt.run(recipe("'tools', 'https://apt.example.com/tools/', components=['main', 'extra'], "
                   "arch=['amd64', 'arm64'], deb_src=True"))
    assert apt.path("/etc/apt/sources.list.d/tools.sources").read_text() == (
        "# Managed by converge: apt_repository[tools]\nTypes: deb deb-src\n"
        "URIs: https://apt.example.com/tools/\nSuites: bookworm\nComponents: main extra\n"
        "Architectures: amd64 arm64\n")
    apt.path("/etc/os-release").write_text("ID=debian\n")
    events = apt.run(recipe("'sid', 'https://apt.example.com/sid/'"))
    assert events[0]["status"] == "failed"
    assert events[0]["error"].startswith("distribution is not given and this machine's "
                                         "/etc/os-release has no VERSION_CODENAME to use")


def test_a_link_at_the_files_place_is_replaced_not_followed(apt: Converger) -> None:
    victim = apt.path("/etc/shadow-like")
    victim.write_text("secret\n")
    os.symlink("/etc/shadow-like", apt.path(SOURCES))
    events = apt.run(recipe("'local', 'file:///srv/repo', distribution='./', components=()"))
    assert events[0]["status"] == "updated", events
    assert victim.read_text() == "secret\n"
    assert not os.path.islink(apt.path(SOURCES))
    assert "URIs: file:///srv/repo" in apt.path(SOURCES).read_text()


def test_remove_and_a_dropped_key(apt: Converger) -> None:
    add = recipe("'local', 'file:///srv/repo', distribution='./', components=(), key='key.asc'")
    apt.run(add)
    events = apt.run(recipe("'local', 'file:///srv/repo', distribution='./', components=()"))
    assert events[0]["changes"] == ["delete key %s (no key given)" % KEYRING,
                                    "update content in " + SOURCES]
    assert not apt.path(KEYRING).exists()
    apt.run(add)
    gone = apt.run(recipe("'local', action='remove'"))
    assert gone[0]["changes"] == ["delete " + SOURCES, "delete " + KEYRING]
    assert not apt.path(SOURCES).exists() and not apt.path(KEYRING).exists()
    assert [e["status"] for e in apt.run(recipe("'local', action='remove'"))] == ["up_to_date"]


def test_the_same_repository_in_another_file_is_named(apt: Converger) -> None:
    """A trailing slash is no difference to apt (Salt's pkgrepo had that bug:
    saltstack/salt#7696, #51654); a disabled deb822 stanza does not count."""
    lists = apt.path("/etc/apt/sources.list.d")
    (lists / "old.list").write_text("# old\ndeb [arch=amd64] https://apt.example.com/tools "
                                    "bookworm main\n")
    (lists / "off.sources").write_text("Types: deb\nURIs: https://apt.example.com/tools/\n"
                                       "Suites: bookworm\nComponents: main\nEnabled: no\n")
    events: Any = apt.run(recipe("'tools', 'https://apt.example.com/tools/'"))
    assert events[0]["warnings"][0].startswith(
        "/etc/apt/sources.list.d/old.list also lists https://apt.example.com/tools/ bookworm: "
        "apt then warns"), events[0]["warnings"]
    assert len(events[0]["warnings"]) == 2  # and the update that did not run


@pytest.mark.parametrize("name", ["foo-1.2.3", "foo_123", "FOO_1.23"])
def test_valid_names_are_kept_as_given(apt: Converger, name: str) -> None:
    """Ansible's deb822_repository rewrote such names (ansible/ansible#86243)."""
    apt.run(recipe("%r, 'https://apt.example.com/x/'" % name))
    assert apt.path("/etc/apt/sources.list.d/%s.sources" % name).is_file()


def test_one_component_may_be_given_as_a_string(apt: Converger) -> None:
    """components is declared a list, and its coerce makes one name a list of one."""
    plan = apt.compile("from converge import apt_repository\n"
                       "apt_repository('x', 'https://x.example/', components='contrib')\n")
    assert plan.steps[0].props["components"] == ["contrib"]
    with pytest.raises(PropertyError, match="component 'main contrib' is not a component name"):
        apt.compile("from converge import apt_repository\n"
                    "apt_repository('x', 'https://x.example/', components='main contrib')\n")
