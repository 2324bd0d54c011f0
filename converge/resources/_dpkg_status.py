"""dpkg's database read in place, for the apt backend: what ``dpkg-query -W`` says
about some packages, without starting it.

dpkg keeps the state of every package in /var/lib/dpkg/status (one stanza per
package and architecture) and journals changes it has not folded in yet as files
named by digits in /var/lib/dpkg/updates (a dpkg that was interrupted leaves them;
dpkg-query reads them on top of the status file, so this does too, in name order).
A stanza's ``Status:`` is "want flag state": ``install ok installed``, ``hold ok
installed``, ``deinstall ok config-files``, ``install reinstreq half-installed``...

Names are matched as dpkg-query matches them: ``name`` is every architecture's
instance of it, ``name:arch`` only the instance whose Architecture is ``arch``
(``libc6:amd64``; ``tzdata:all``). A virtual package (one only named in another's
Provides) has no stanza of its own: never installed, as dpkg-query reports it.
Stanzas are found by their ``Package:`` line as dpkg writes it, so a status file of
thousands of packages costs a few searches, not a parse of every stanza.
Standard library only, Python 3.8.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

STATUS = "/var/lib/dpkg/status"
UPDATES = "/var/lib/dpkg/updates"

# dpkg's package states, by the word in Status: (the second letter of
# ${db:Status-Abbrev}): what converge calls installed, broken or config files.
INSTALLED = ("installed", "triggers-awaited", "triggers-pending")
BROKEN = ("half-installed", "unpacked", "half-configured")
CONFIG_FILES = "config-files"

Stanza = Dict[str, str]


def _stanzas_of(data: bytes, name: bytes) -> Iterator[Stanza]:
    """Every stanza of ``data`` whose Package is ``name`` (one per architecture)."""
    key = b"Package: " + name + b"\n"
    at = 0 if data.startswith(key) else data.find(b"\n" + key)
    while at != -1:
        start = data.rfind(b"\n\n", 0, at + 1)
        start = 0 if start == -1 else start + 2
        end = data.find(b"\n\n", at + 1)
        end = len(data) if end == -1 else end
        yield fields(data[start:end])
        at = data.find(b"\n" + key, end)


def fields(stanza: bytes) -> Stanza:
    """One stanza's single-line fields (continuation lines left out), keys in
    lower case as dpkg compares them."""
    out: Stanza = {}
    for raw in stanza.decode("utf-8", "surrogateescape").split("\n"):
        if raw[:1] in (" ", "\t", "#", ""):
            continue
        key, sep, value = raw.partition(":")
        if sep:
            out[key.strip().lower()] = value.strip()
    return out


def _all_stanzas(data: bytes) -> Iterator[Stanza]:
    for chunk in data.split(b"\n\n"):
        if chunk.strip():
            yield fields(chunk)


def _split(spec: str) -> Tuple[str, Optional[str]]:
    name, _, arch = spec.partition(":")
    return name, arch or None


def instances(status: bytes, updates: Sequence[bytes], names: Sequence[str]
              ) -> Dict[str, List[Stanza]]:
    """For each package name (without an architecture), its stanzas after the
    updates journal is applied, in architecture order as dpkg-query lists them."""
    out: Dict[str, Dict[str, Stanza]] = {}
    for name in names:
        found = out.setdefault(name, {})
        for stanza in _stanzas_of(status, name.encode("utf-8")):
            found[stanza.get("architecture", "")] = stanza
    for journal in updates:  # the whole record of a package replaces its stanza
        for stanza in _all_stanzas(journal):
            name = stanza.get("package", "")
            if name in out:
                out[name][stanza.get("architecture", "")] = stanza
    return {name: [by_arch[a] for a in sorted(by_arch)] for name, by_arch in out.items()}


def state_of(stanzas: Sequence[Stanza]) -> Dict[str, Any]:
    """installed / broken (versions or None) and config_files of a package, from
    the stanzas of its instances (later ones win, as dpkg-query's later lines)."""
    state: Dict[str, Any] = {"installed": None, "broken": None, "config_files": False}
    for stanza in stanzas:
        words = stanza.get("status", "").split()
        status = words[2] if len(words) == 3 else ""
        version = stanza.get("version", "")
        if status in INSTALLED:
            state["installed"] = version
        elif status in BROKEN:
            state["broken"] = version
        elif status == CONFIG_FILES:
            state["config_files"] = True
    return state


def states(status: bytes, updates: Sequence[bytes], specs: Sequence[str]
           ) -> Dict[str, Dict[str, Any]]:
    """The state of each ``name`` or ``name:arch``, from a status file's bytes and
    the update journal files' bytes (in name order)."""
    found = instances(status, updates, sorted({_split(s)[0] for s in specs}))
    out = {}
    for spec in specs:
        name, arch = _split(spec)
        chosen = [s for s in found[name] if arch is None or s.get("architecture") == arch]
        out[spec] = state_of(chosen)
    return out


def read(system: Any) -> Tuple[Optional[bytes], List[bytes]]:
    """The status file's bytes (None: there is none) and the pending update files'
    bytes, in the order dpkg applies them (their names: digits, all of one length,
    so listdir's order)."""
    journal = [system.read_bytes(UPDATES + "/" + n) for n in system.listdir(UPDATES)
               if n.isdigit()]
    return system.read_bytes(STATUS), [j for j in journal if j is not None]
