"""remote_file: a file downloaded by the target from a URL.

Example::

    remote_file("/opt/tools/jq", "https://example.com/jq-1.7-linux64", mode="0755",
                checksum="5942c9b0934e510ee61eb3e30273f1b3fe2590df93933a93d7c58b81d19c8ff5")
    remote_file("/etc/app/ca.pem", source="https://pki.example.com/ca.pem",
                headers={"Authorization": "Bearer token"}, action="create_if_missing")

The agent downloads on the target with Python's standard library (http, https,
and file URLs; a proxy from the target's environment). The file is replaced
atomically, and only after ``checksum`` (sha256), when given, matched: a
mismatch, an HTTP error (404...), a timeout or a TLS error fails the resource,
saying which, and leaves the old file whole. With a checksum the current file's
own sha256 is compared first, and nothing is downloaded when it matches. Without
one, a conditional GET (the ETag and Last-Modified of the last download,
remembered in the state directory) asks the server whether anything changed.
``headers`` are sent but never shown. The parent directory must exist (as for
``file``). Plan downloads (into memory) to say what would change, and writes
nothing. Rollback restores the previous file, or deletes a file the run created.
"""

from __future__ import annotations

import hashlib
import json
import re
import stat as stat_mod
from typing import Any, Dict, List, Optional
from urllib.parse import urlsplit

from ..agent import managed
from ..errors import ResourceError
from . import _http
from . import _validate as v
from ._base import Change, Resource, prop

SHA256 = re.compile(r"[0-9a-f]{64}")
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


class RemoteFile(Resource, type_name="remote_file"):
    """Download a file from a URL on the target, verified when a checksum is given."""

    actions = ("create", "create_if_missing")

    path: str = prop(doc="Where the file goes on the target; its folder must exist.",
                     identity=True, coerce=v.path)
    source: str = prop(doc="The URL: http://, https:// or file:// (read on the target).")
    checksum: Optional[str] = prop(None, doc="The sha256 of the content: verified before the "
                                   "file is replaced, and no download when the file has it.")
    mode: Optional[str] = prop(None, doc="Permissions, such as '0644'.", coerce=v.mode)
    owner: Optional[str] = prop(None, doc="Owning user name or uid.", coerce=v.account)
    group: Optional[str] = prop(None, doc="Owning group name or gid.", coerce=v.account)
    headers: Optional[Dict[str, str]] = prop(None, doc="HTTP request headers (tokens...); "
                                             "never shown.", sensitive=True)
    use_conditional_get: bool = prop(True, doc="Without a checksum, ask the server whether "
                                     "the file changed since the last download "
                                     "(If-None-Match / If-Modified-Since).")
    timeout: float = prop(60.0, doc="Seconds to wait for the server before failing.")

    def normalise(self) -> None:
        url = v.text(self.source, "source", one_line=True)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https", "file") or (
                parts.scheme != "file" and not parts.hostname) or any(c.isspace() for c in url):
            raise self.fail("source %s is not an http://, https:// or file:// URL"
                            % v.quoted(_http.shown(url)))
        if parts.scheme == "file" and (parts.netloc not in ("", "localhost")
                                       or not parts.path.startswith("/")):
            raise self.fail("source %s: a file:// URL needs an absolute path (file:///srv/x)"
                            % v.quoted(url))
        if self.checksum is not None:
            if not SHA256.fullmatch(self.checksum.lower()):
                raise self.fail("checksum %s is not a sha256 (64 hexadecimal digits)"
                                % v.quoted(self.checksum))
            self.checksum = self.checksum.lower()
        if self.headers is not None:
            for key, value in self.headers.items():
                if not HEADER_NAME.fullmatch(key):
                    raise self.fail("header name %s is not a valid HTTP header name"
                                    % v.quoted(key))
                if any(c in value for c in "\r\n\0"):
                    raise self.fail("the value of header %s must be one line of text (not "
                                    "shown)" % key)
        if self.timeout <= 0:
            raise self.fail("timeout must be a positive number of seconds, not %r"
                            % (self.timeout,))
        self.timeout = float(self.timeout)

    # -- target ----------------------------------------------------------------------

    def current(self, system: Any) -> Dict[str, Any]:
        state = self._current(system)
        self.__dict__["_state"] = state  # apply writes what was downloaded here
        return state

    def _current(self, system: Any) -> Dict[str, Any]:
        st = system.stat(self.path)
        state: Dict[str, Any] = {"exists": st is not None, "new": None}
        if st is not None:
            if not stat_mod.S_ISREG(st.st_mode):
                raise ResourceError("%s exists and is not a regular file (a link is never "
                                    "written through)" % self.path)
            state.update(mode="%04o" % stat_mod.S_IMODE(st.st_mode), uid=st.st_uid,
                         gid=st.st_gid, owner=system.user_name(st.st_uid),
                         group=system.group_name(st.st_gid))
        state["want_uid"] = managed.resolve_account(system.uid, self.owner, "owner")
        state["want_gid"] = managed.resolve_account(system.gid, self.group, "group")
        if st is not None and self.action == "create_if_missing":
            return state
        have = system.read_bytes(self.path) if st is not None else None
        state["sha256"] = None if have is None else hashlib.sha256(have).hexdigest()
        if self.checksum is not None and state["sha256"] == self.checksum:
            return state  # no download at all
        record = self._record(system)
        etag = modified = None
        if self.use_conditional_get and self.checksum is None and have is not None and \
                record.get("sha256") == state["sha256"]:
            etag, modified = record.get("etag"), record.get("last_modified")
        got = _http.fetch(system, self.source, self.headers or {}, self.timeout, etag, modified)
        if got.data is None:  # 304: the file we have is the server's
            return state
        digest = hashlib.sha256(got.data).hexdigest()
        if self.checksum is not None and digest != self.checksum:
            raise ResourceError("checksum mismatch for %s: expected %s, the download has %s; "
                                "%s was left as it is" % (_http.shown(self.source),
                                                          self.checksum, digest, self.path))
        state["new"] = {"data": got.data, "sha256": digest, "etag": got.etag,
                        "last_modified": got.last_modified}
        state["have"] = have
        return state

    def changes(self, current: Dict[str, Any]) -> List[Change]:
        out: List[Change] = []
        new = current["new"]
        write = None if new is None else managed.Write(
            self.path, new["data"], int(self.mode, 8) if self.mode else None,
            current["want_uid"], current["want_gid"])
        if not current["exists"]:
            out.append(Change("create new file %s" % self.path, data=write))
        if write is not None and new["sha256"] != current.get("sha256"):
            have = current.get("have")
            text = managed.content_text(self, "file %s" % self.path, have, new["data"])
            if not self.hides_content:
                text += " (from %s)" % _http.shown(self.source)
            out.append(managed.change(self, text, write, have))
        if current["exists"]:
            out.extend(managed.attribute_changes(self, current))
        return out

    def _record(self, system: Any) -> Dict[str, Any]:
        try:
            data = json.loads(system.read_text(_record_path(system, self.path)) or "{}")
        except ValueError:
            return {}
        return data if isinstance(data, dict) and data.get("source") == self.source else {}

    def before(self, system: Any, current: Any, changes: List[Change]) -> Dict[str, Any]:
        """Journal hook: the file as it was (kept whole by the journal)."""
        return managed.journal_files(system, self.path)

    def apply(self, system: Any, changes: List[Change]) -> None:
        writes = [c.data for c in changes if isinstance(c.data, managed.Write)]
        current = self._seen(system)
        mode = int(self.mode, 8) if self.mode else None
        new = current["new"]
        if writes:
            managed.write(system, writes[0])
            from ..agent.journal import ensure_dir, state_dir, write_file

            ensure_dir(system, state_dir(system) + "/remote_file", 0o700)
            write_file(system, _record_path(system, self.path), json.dumps({
                "source": self.source, "sha256": new["sha256"], "etag": new["etag"],
                "last_modified": new["last_modified"]}).encode("utf-8") + b"\n")
            return
        kinds = {c.data for c in changes}
        if "mode" in kinds and mode is not None:
            system.chmod(self.path, mode)
        if "owner" in kinds or "group" in kinds:
            system.chown(self.path, current["want_uid"], current["want_gid"])

    def _seen(self, system: Any) -> Dict[str, Any]:
        """The state changes() was computed from (the download is not repeated)."""
        seen: Optional[Dict[str, Any]] = self.__dict__.get("_state")
        return seen if seen is not None else self.current(system)


def _record_path(system: Any, path: str) -> str:
    from ..agent.journal import state_dir

    key = hashlib.sha256(managed.absolute(system, path).encode("utf-8")).hexdigest()[:24]
    return "%s/remote_file/%s.json" % (state_dir(system), key)
