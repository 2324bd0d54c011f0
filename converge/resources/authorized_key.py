"""authorized_key: one public key in a user's ``~/.ssh/authorized_keys``.

Example::

    authorized_key("deploy", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE9882IQvHzkVSqtLTxniWao4Y88Me3hQOWMbgTAT12X deploy@ci")
    authorized_key("ci", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE9882IQvHzkVSqtLTxniWao4Y88Me3hQOWMbgTAT12X", options="no-port-forwarding,no-pty")
    authorized_key("olduser", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE9882IQvHzkVSqtLTxniWao4Y88Me3hQOWMbgTAT12X", action="delete")

A key is known by its type and base64 body, so a changed comment or changed
options update its line in place rather than adding one (with ``comment=None`` an
existing comment is kept, else the key's own). ``~/.ssh`` (0700) and the file
(0600) are made for the user and the user's primary group when missing, and
wrong modes or owners of existing ones are corrected and reported.
``exclusive=True`` removes every other key of the file. Other lines (comments,
blank lines) are kept. Keys are checked when the recipe is compiled (a known type,
base64 that decodes to a blob of that type). The file is reached as every path is
(agent/paths.py): a link the user placed in their home is refused, never
followed. The journal keeps the file, so a rollback restores it.
"""

from __future__ import annotations

import base64
import re
import stat as stat_mod
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from ..agent import managed
from ..errors import ResourceError
from ._base import Change, Resource, prop

KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ssh-dss", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
             "ecdsa-sha2-nistp521", "sk-ssh-ed25519@openssh.com",
             "sk-ecdsa-sha2-nistp256@openssh.com")
USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}\$?")
LINE = re.compile(r"(?:^|\s)(%s)\s+([A-Za-z0-9+/]+={0,2})(?:\s+(.*))?$"
                  % "|".join(re.escape(t) for t in KEY_TYPES))


class Folder(NamedTuple):
    """Change.data: make ~/.ssh (mode, the user's uid and gid)."""

    path: str
    mode: int
    uid: int
    gid: int


class Attributes(NamedTuple):
    """Change.data: set the mode and owner of ~/.ssh or of the file."""

    path: str
    mode: int
    uid: int
    gid: int


def parse(line: str) -> Optional[Tuple[str, str, str, str]]:
    """(options, type, body, comment) of an authorized_keys line, or None."""
    match = LINE.search(line)
    if match is None:
        return None
    return (line[:match.start(1)].strip(), match.group(1), match.group(2),
            (match.group(3) or "").strip())


def _joined(value: Any, what: str) -> Any:
    """A list of options is one string, joined with commas."""
    return ",".join(str(o) for o in value) if isinstance(value, (list, tuple)) else value


class AuthorizedKey(Resource, type_name="authorized_key"):
    """One public key of a user, in ~/.ssh/authorized_keys."""

    actions = ("create", "delete")

    user: str = prop(doc="Whose authorized_keys file (the user must exist).", identity=True)
    key: str = prop(doc="The public key: TYPE BASE64, optionally followed by a comment.")
    options: Optional[str] = prop(None, doc="Options before the key, as sshd reads them "
                                  "(no-port-forwarding,from=\"10.0.0.0/8\"); a list is joined "
                                  "with commas.", coerce=_joined)
    comment: Optional[str] = prop(None, doc="The comment after the key; None keeps the "
                                  "existing one (or the key's own).")
    exclusive: bool = prop(False, doc="Remove every other key of the file.")

    def normalise(self) -> None:
        if not USER.fullmatch(self.user):
            raise self.fail("user %r is not a user name" % (self.user,))
        if "\n" in self.key or "\r" in self.key:
            raise self.fail("key must be one line: TYPE BASE64 [comment]")
        parts = self.key.split(None, 2)
        if len(parts) < 2 or parts[0] not in KEY_TYPES:
            raise self.fail("key must start with a key type (%s) and its base64 body, such "
                            "as 'ssh-ed25519 AAAA...'" % ", ".join(KEY_TYPES[:3]))
        kind, body = parts[0], parts[1]
        try:
            blob = base64.b64decode(body, validate=True)
        except (ValueError, TypeError):
            raise self.fail("key's body is not base64") from None
        length = int.from_bytes(blob[:4], "big") if len(blob) >= 4 else -1
        if blob[4:4 + length] != kind.encode():
            raise self.fail("key's body is not a %s key (it says %r)"
                            % (kind, blob[4:4 + max(length, 0)][:40]))
        self.key = " ".join([kind, body] + ([parts[2].strip()] if len(parts) == 3 else []))
        for name in ("options", "comment"):
            value = getattr(self, name)
            if value is not None and ("\n" in value
                                      or "\r" in value or "\0" in value):
                raise self.fail("%s must be one line of text" % name)

    def _parts(self) -> Tuple[str, str, str]:
        """(type, body, the key's own comment)."""
        parts = self.key.split(" ", 2)
        return parts[0], parts[1], parts[2] if len(parts) == 3 else ""

    @property
    def name(self) -> str:
        """deploy ssh-ed25519 …J9yHQabc: the user and the key, so a user may have
        several."""
        kind, body, _ = self._parts()
        return "%s %s …%s" % (self.user, kind, body[-8:])

    # -- on the target ---------------------------------------------------------------

    def _where(self, system: Any) -> Tuple[str, str, int, int]:
        entry = system.account(self.user)
        if entry is None:
            raise ResourceError("user %s does not exist on this machine" % self.user,
                                hint="declare it first: user(%r)" % self.user)
        _, uid, gid, home = entry
        folder = home.rstrip("/") + "/.ssh"
        return folder, folder + "/authorized_keys", uid, gid

    def current(self, system: Any) -> Dict[str, Any]:
        folder, path, uid, gid = self._where(system)
        out: Dict[str, Any] = {"folder": folder, "path": path, "uid": uid, "gid": gid,
                               "folder_stat": system.stat(folder), "text": None}
        st = system.stat(path)
        if st is not None:
            if not stat_mod.S_ISREG(st.st_mode):
                raise ResourceError("%s is not a regular file" % path)
            out["text"] = (system.read_bytes(path) or b"").decode("utf-8", "surrogateescape")
        out["stat"] = st
        return out

    def _wanted(self, current: Dict[str, Any]) -> Tuple[str, List[str]]:
        """The file's new text, and what changed in it."""
        kind, body, own_comment = self._parts()
        lines = (current["text"] or "").splitlines()
        keep: List[str] = []
        said: List[str] = []
        found = False
        short = "%s \u2026%s" % (kind, body[-8:])
        for line in lines:
            parsed = parse(line)
            if parsed is None:
                keep.append(line)
                continue
            options, other_kind, other_body, comment = parsed
            if (other_kind, other_body) != (kind, body):
                if self.exclusive and self.action == "create":
                    said.append("remove key %s \u2026%s (exclusive)" % (other_kind,
                                                                         other_body[-8:]))
                else:
                    keep.append(line)
                continue
            if self.action == "delete" or found:
                said.append("remove key %s" % short)
                continue
            found = True
            want_options = options if self.options is None else self.options
            want_comment = comment if self.comment is None else self.comment
            new = " ".join(p for p in (want_options, kind, body, want_comment) if p)
            if want_options != options:
                said.append("update options of key %s from %r to %r"
                            % (short, options, want_options))
            if want_comment != comment:
                said.append("update comment of key %s from %r to %r"
                            % (short, comment, want_comment))
            keep.append(new)
        if self.action == "create" and not found:
            comment = self.comment if self.comment is not None else own_comment
            keep.append(" ".join(p for p in (self.options or "", kind, body, comment) if p))
            said.append("add key %s" % short)
        text = "".join(line + "\n" for line in keep)
        return text, said

    def changes(self, current: Dict[str, Any]) -> List[Change]:
        out: List[Change] = []
        text, said = self._wanted(current)
        if self.action == "delete" and current["text"] is None:
            return out
        folder_stat = current["folder_stat"]
        if self.action == "create":
            if folder_stat is None:
                out.append(Change("create directory %s (0700, %s)" % (current["folder"],
                                                                       self.user),
                                  data=Folder(current["folder"], 0o700, current["uid"],
                                              current["gid"])))
            else:
                out += self._attributes(current["folder"], folder_stat, 0o700, current)
            if current["stat"] is not None:
                out += self._attributes(current["path"], current["stat"], 0o600, current)
        if said or (current["text"] is None and self.action == "create"):
            verb = "create %s: " % current["path"] if current["text"] is None else ""
            write = managed.Write(current["path"], text.encode("utf-8", "surrogateescape"),
                                  0o600, current["uid"], current["gid"])
            for sentence in said:
                out.append(Change(verb + sentence, data=write))
                verb = ""
        return out

    def _attributes(self, path: str, st: Any, mode: int, current: Dict[str, Any]
                    ) -> List[Change]:
        out = []
        have = stat_mod.S_IMODE(st.st_mode)
        fix = Attributes(path, mode, current["uid"], current["gid"])
        if have & ~mode:  # more open than wanted (a stricter mode is left alone)
            out.append(Change("change mode of %s from '%04o' to '%04o'" % (path, have, mode),
                              data=fix))
        if (st.st_uid, st.st_gid) != (current["uid"], current["gid"]):
            out.append(Change("change owner of %s from %d:%d to %s (%d:%d)" % (
                path, st.st_uid, st.st_gid, self.user, current["uid"], current["gid"]),
                data=fix))
        return out

    def before(self, system: Any, current: Any, changes: List[Change]) -> Dict[str, Any]:
        """For the journal: the file is kept (and a ~/.ssh the run makes is recorded),
        so a rollback restores it."""
        return managed.journal_files(system, current["path"])

    def apply(self, system: Any, changes: List[Change]) -> None:
        for change in changes:
            data = change.data
            if isinstance(data, Folder):
                system.mkdir(data.path, data.mode, data.uid, data.gid)
            elif isinstance(data, Attributes):
                system.set_attributes(data.path, data.mode, data.uid, data.gid)
        writes = [c.data for c in changes if isinstance(c.data, managed.Write)]
        if writes:
            managed.write(system, writes[-1])
