"""apt's sources: the deb822 text apt_repository writes, the other sources it
compares with (sources.list, *.list and *.sources files: the same URI and
suite twice makes apt warn "configured multiple times", or refuse every command
with "Conflicting values set for option Signed-By" when their keys differ), and
the one-source ``apt-get update``. Standard library only, Python 3.8.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from ..errors import ResourceError

SOURCES_DIR = "/etc/apt/sources.list.d"
KEYRING_DIR = "/etc/apt/keyrings"
# apt reads only files of sources.list.d whose names are made of these (it ignores
# others with a notice nobody sees): the name must match this whole, before .sources
FILE_NAME = re.compile(r"[A-Za-z0-9_.-]+")
WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+~/-]*")
ARCH = re.compile(r"[a-z0-9][a-z0-9-]*")


def render(identity: str, uri: str, suite: str, components: Sequence[str],
           arch: Sequence[str], deb_src: bool, keyring: Optional[str]) -> str:
    """One deb822 stanza; Components only for a suite that is not a flat path."""
    lines = ["# Managed by converge: %s" % identity,
             "Types: deb" + (" deb-src" if deb_src else ""),
             "URIs: " + uri, "Suites: " + suite]
    if components:
        lines.append("Components: " + " ".join(components))
    if arch:
        lines.append("Architectures: " + " ".join(arch))
    if keyring:
        lines.append("Signed-By: " + keyring)
    return "\n".join(lines) + "\n"


def _same(uri: str) -> str:
    """URIs as apt compares them: a trailing slash makes no difference."""
    return uri.rstrip("/")


def entries(path: str, text: str) -> Set[Tuple[str, str]]:
    """The enabled (URI, suite) pairs of a sources file, one-line or deb822."""
    found: Set[Tuple[str, str]] = set()
    if path.endswith(".sources"):
        for stanza in re.split(r"\n[ \t]*\n", text):
            fields: Dict[str, str] = {}
            key = None
            for line in stanza.splitlines():
                if line.startswith("#") or not line.strip():
                    continue
                if line[0] in " \t" and key:
                    fields[key] += " " + line.strip()
                elif ":" in line:
                    key, _, value = line.partition(":")
                    key = key.strip().lower()
                    fields[key] = value.strip()
            if fields.get("enabled", "yes").lower() in ("no", "false", "0"):
                continue
            for uri in fields.get("uris", "").split():
                for suite in fields.get("suites", "").split():
                    found.add((_same(uri), suite))
        return found
    for line in text.splitlines():
        words = re.sub(r"\[[^\]]*\]", " ", line.split("#", 1)[0]).split()
        if len(words) >= 3 and words[0] in ("deb", "deb-src"):
            found.add((_same(words[1]), words[2]))
    return found


def duplicates(system: Any, own: str, uri: str, suite: str) -> List[str]:
    """Other source files that list the same URI and suite."""
    paths = ["/etc/apt/sources.list"] + [
        "%s/%s" % (SOURCES_DIR, name) for name in system.listdir(SOURCES_DIR)
        if name.endswith((".list", ".sources"))]
    out = []
    for path in paths:
        if path == own:
            continue
        text = system.read_text(path)
        if text is not None and (_same(uri), suite) in entries(path, text):
            out.append(path)
    return out


def update(system: Any, sources: str) -> Optional[str]:
    """``apt-get update`` of one sources file alone (the other sources' lists are
    kept: no list cleanup); apt's own error lines when it failed, else None.
    ``--error-on=any`` makes a download failure an error, not a warning."""
    argv = ["apt-get", "update", "-q", "--error-on=any",
            "-o", "Dir::Etc::sourcelist=" + sources,
            "-o", "Dir::Etc::sourceparts=-",
            "-o", "APT::Get::List-Cleanup=0"]
    result = system.run(argv, timeout=900)
    if result.ok:
        return None
    said = [line for line in result.output().splitlines()
            if line.startswith(("E:", "W:", "Err:", "Error:", "Warning:", " "))]
    return "\n".join(said[-12:]) or result.output().strip() or "exit %d" % result.returncode


def codename(system: Any) -> str:
    """The target's release codename (VERSION_CODENAME of /etc/os-release)."""
    from ..agent.facts import os_release

    release = os_release(system)
    name = release.get("VERSION_CODENAME", "")
    if not name or not WORD.fullmatch(name):
        raise ResourceError("distribution is not given and this machine's /etc/os-release "
                            "has no VERSION_CODENAME to use",
                            hint="give distribution= (such as 'bookworm', or './' for a "
                            "flat repository)")
    return name
