"""apt_repository: an apt source in deb822 form, and the key that signs it.

Example::

    apt_repository("nginx", "https://nginx.org/packages/debian", components=["nginx"],
                   key="nginx_signing.key")                 # a file next to the recipe
    apt_repository("tools", "https://apt.example.com/tools", distribution="./",
                   components=(), key="https://apt.example.com/tools.asc")
    apt_repository("old-tools", "https://apt.example.com/tools", action="remove")

``add`` writes /etc/apt/sources.list.d/<repo_name>.sources (Types, URIs, Suites,
Components, Architectures when ``arch`` is given, Signed-By) and, with ``key``,
the keyring /etc/apt/keyrings/<repo_name>.gpg, both mode 0644 (apt reads keys as
user _apt). ``key`` is an ASCII-armored public key, a file next to the recipe
(read while compiling, shipped in the plan), or an https:// URL the target
fetches; it is stored dearmored (binary OpenPGP) without gpg. A key that is not
a public OpenPGP key is refused while compiling. ``distribution`` defaults to the
target's codename (VERSION_CODENAME of its /etc/os-release); a flat repository
is ``distribution="./"`` with ``components=()``.

When the source or its key changed, ``apt-get update`` runs for that source
alone (the other sources' lists are kept), so a ``package`` declared later in
the run installs from it. When that update fails (a bad signature, an
unreachable server) the source and key are put back as they were and the
resource fails with apt's own message. ``remove`` deletes both files. A legacy
<repo_name>.list is left alone; a warning names every other sources file that
lists the same URI and suite. Rollback restores the previous files.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Union
from urllib.parse import urlsplit

from ..agent import managed
from ..errors import ResourceError
from . import _apt_sources as src
from . import _http
from . import _openpgp as pgp
from . import _repo_files as files
from . import _validate as v
from ._base import Change, Resource, prop, unplain

SCHEMES = ("http", "https", "file", "cdrom")


class AptRepository(Resource, type_name="apt_repository"):
    """Add or remove an apt source (deb822 .sources file) and its signing key."""

    actions = ("add", "remove")

    repo_name: str = prop(doc="The source's name: the file sources.list.d/<repo_name>.sources "
                          "and keyrings/<repo_name>.gpg (letters, digits, '_', '-', '.').",
                          identity=True)
    uri: Optional[str] = prop(None, doc="The repository's URI: http://, https://, file:/// "
                              "or cdrom:.", required_for=("add",))
    distribution: Optional[str] = prop(None, doc="The suite (bookworm, stable...), or a path "
                                       "ending in '/' for a flat repository ('./'). Unset: "
                                       "the target's codename, from its /etc/os-release.")
    components: Sequence[str] = prop(("main",), doc="Components (main, contrib...); () for a "
                                     "flat repository.", coerce=v.listed)
    key: Union[str, bytes, None] = prop(None, doc="The signing key: an ASCII-armored public "
                                        "key, a key file next to the recipe (armored or binary), "
                                        "or an https:// URL fetched by the target. Unset: no "
                                        "Signed-By (apt's trusted keys apply).")
    arch: Union[str, Sequence[str], None] = prop(None, doc="Architectures to fetch, such as "
                                                 "'amd64' or ['amd64', 'arm64']. Unset: apt's.")
    deb_src: bool = prop(False, doc="Also fetch source packages (Types: deb deb-src).")

    def normalise(self) -> None:
        name = self.repo_name
        if not src.FILE_NAME.fullmatch(name) or \
                name.startswith(".") or ".." in name or len(name) > 200:
            raise self.fail("repo_name %s is not a file name apt reads (letters, digits, '_', "
                            "'-', '.'; no '/', spaces or '..')" % v.quoted(name))
        if self.uri is not None:
            self.uri = self._checked_uri(self.uri)
        if self.distribution is not None:
            if not src.WORD.fullmatch(self.distribution.lstrip("./") or "x"):
                raise self.fail("distribution %s is not a suite such as 'bookworm', or a path "
                                "ending in '/' such as './'" % v.quoted(self.distribution))
        for comp in self.components:
            if not src.WORD.fullmatch(comp):
                raise self.fail("component %s is not a component name such as 'main' (no "
                                "spaces: give a list)" % v.quoted(comp))
        self.components = list(self.components)
        self.arch = self._checked_arch(self.arch)
        flat = self.distribution is not None and self.distribution.endswith("/")
        if flat and self.components:
            raise self.fail("a flat repository (distribution %s) has no components: give "
                            "components=()" % v.quoted(self.distribution))
        if self.distribution is not None and not flat and not self.components:
            raise self.fail("distribution %s needs components (a flat repository's "
                            "distribution ends in '/', such as './')"
                            % v.quoted(self.distribution))
        self.key = self._loaded_key(self.key)

    def _checked_uri(self, uri: Any) -> str:
        text = v.text(uri, "uri", one_line=True) if isinstance(uri, str) else uri
        parts = urlsplit(text) if isinstance(text, str) else None
        if parts is None or parts.scheme not in SCHEMES or any(c.isspace() for c in text) or \
                (parts.scheme in ("http", "https") and not parts.hostname):
            raise self.fail("uri %s is not an http://, https://, file:/// or cdrom: URI"
                            % v.quoted(_http.shown(text) if isinstance(text, str) else text))
        if parts.password is not None:
            raise self.fail("uri %s holds a password: put credentials in "
                            "/etc/apt/auth.conf.d/ (apt's own place), not in the source"
                            % v.quoted(_http.shown(text)))
        return text

    def _checked_arch(self, arch: Any) -> List[str]:
        arches = [] if arch is None else [arch] if isinstance(arch, str) else arch
        if not isinstance(arches, (list, tuple)) or \
                not all(isinstance(a, str) and src.ARCH.fullmatch(a) for a in arches):
            raise self.fail("arch %s is not an architecture such as 'amd64', or a list of them"
                            % v.quoted(arch))
        return list(arches)

    def _loaded_key(self, key: Any) -> Union[str, bytes, None]:
        """The key as the plan carries it: binary keyring bytes, or an https URL."""
        if key is None:
            return None
        if isinstance(key, str) and key.startswith(("https://", "http://")):
            if not key.startswith("https://") or any(c.isspace() for c in key):
                raise self.fail("key %s: a key URL must be https:// (a key over plain http "
                                "could be swapped on the way)" % v.quoted(_http.shown(key)))
            return key
        what = "key"
        try:
            if isinstance(key, str) and not pgp.is_armored(key):
                from ..context import current

                what = "key file %s" % v.quoted(key)
                key = current().find(key, ("files", ".")).read_bytes()
            if not isinstance(key, (str, bytes)):
                raise pgp.BadKey("it is a %s, not text or bytes" % type(key).__name__)
            return pgp.keyring(key)
        except pgp.BadKey as exc:
            raise self.fail("%s is not an OpenPGP public key: %s" % (what, exc)) from None

    def decoded(self) -> None:
        self.key = unplain(self.key)

    @property
    def sources_path(self) -> str:
        return "%s/%s.sources" % (src.SOURCES_DIR, self.repo_name)

    @property
    def keyring_path(self) -> str:
        return "%s/%s.gpg" % (src.KEYRING_DIR, self.repo_name)

    def writes(self) -> List[str]:
        return [self.sources_path, self.keyring_path]

    # -- target ----------------------------------------------------------------------

    def current(self, system: Any) -> Dict[str, Any]:
        state: Dict[str, Any] = {}
        for what, path in (("sources", self.sources_path), ("key", self.keyring_path)):
            found = files.state(system, path)
            state[what], state[what + "_mode"] = found["data"], found["mode"]
            state[what + "_other"] = found["other"]  # a link, a fifo: replaced
        if self.action == "add":
            suite = self.distribution or src.codename(system)
            state["want_key"] = self._wanted_key(system)
            keyring = self.keyring_path if state["want_key"] is not None else None
            state["want"] = src.render(self.identity, str(self.uri), suite, self.components,
                                       list(self.arch or ()), self.deb_src, keyring).encode()
            for other in src.duplicates(system, self.sources_path, str(self.uri), suite):
                self.warnings.append(
                    "%s also lists %s %s: apt then warns that it is configured multiple times, "
                    "or refuses to run when the two name different keys (Signed-By); remove "
                    "one of them" % (other, self.uri, suite))
        return state

    def _wanted_key(self, system: Any) -> Optional[bytes]:
        if not isinstance(self.key, str):
            return self.key
        data = _http.fetch(system, self.key, {}, 60.0).data or b""
        try:
            return pgp.keyring(data)
        except pgp.BadKey as exc:
            raise ResourceError("%s is not an OpenPGP public key: %s"
                                % (_http.shown(self.key), exc)) from None

    def changes(self, current: Dict[str, Any]) -> List[Change]:
        out: List[Change] = []
        sources, keyring = self.sources_path, self.keyring_path
        if self.action == "remove":
            for what, path in (("sources", sources), ("key", keyring)):
                if current[what] is not None or current[what + "_other"]:
                    out.append(Change("delete %s" % path, data=files.target(path, None)))
            return out
        want, have = current["want_key"], current["key"]
        if want is not None and want != have:
            ids = ", ".join(pgp.check(want))
            text = ("install key %s (%s)" % (keyring, ids) if have is None else
                    "update key %s to %s" % (keyring, ids))
            out.append(Change(text, data=files.target(keyring, want)))
        elif want is not None and current["key_mode"] != "0644":
            out.append(Change("change mode of %s from '%s' to '0644'"
                              % (keyring, current["key_mode"]), data=files.target(keyring, want)))
        elif want is None and (have is not None or current["key_other"]):
            out.append(Change("delete key %s (no key given)" % keyring,
                              data=files.target(keyring, None)))
        old = current["sources"]
        if old != current["want"]:
            verb = "create" if old is None else "update content in"
            out.append(managed.change(self, "%s %s" % (verb, sources),
                                      files.target(sources, current["want"]), old))
        elif current["sources_mode"] != "0644":
            out.append(Change("change mode of %s from '%s' to '0644'"
                              % (sources, current["sources_mode"]),
                              data=files.target(sources, current["want"])))
        return out

    def before(self, system: Any, current: Any, changes: List[Change]) -> Dict[str, Any]:
        """Journal hook: both files as they were (a rollback puts them back)."""
        return managed.journal_files(system, self.sources_path, self.keyring_path)

    def apply(self, system: Any, changes: List[Change]) -> None:
        old = {path: system.read_bytes(path) for path in self.writes()}
        new_content = False  # a mode put right needs no update
        for change in changes:
            want = change.data
            new_content = new_content or (want.content is not None
                                          and want.content != old[want.path])
            managed.write(system, want)
        if new_content:
            self._update(system, old)

    def _update(self, system: Any, old: Dict[str, Optional[bytes]]) -> None:
        if system.root != "/" or system.which("apt-get") is None:
            self.warnings.append("apt-get update was not run for %s: %s" % (
                self.repo_name, "apt-get is not installed" if system.root == "/" else
                "converging the tree %s, not this machine" % system.root))
            return
        failed = src.update(system, self.sources_path)
        if failed is None:
            return
        for path, data in old.items():  # put back what was there, as it was
            if data is None:
                if system.stat(path) is not None:
                    system.remove(path)
            else:
                managed.write(system, files.target(path, data))
        raise ResourceError("apt-get update of %s failed, so %s was put back as it was:\n%s"
                            % (self.repo_name, self.sources_path, failed),
                            hint="check the uri, the distribution and the key (apt's NO_PUBKEY "
                            "names the key id it needs)")
