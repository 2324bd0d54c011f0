"""line: one line in a file, present or absent, the rest of the file untouched.

Example::

    line("/root/.bashrc", 'alias sar="LANG=C sar"')
    line("/etc/ssh/sshd_config", "PermitRootLogin no", match=r"^#?\\s*PermitRootLogin\\b")
    line("/etc/environment", match=r"^http_proxy=", action="absent")

The semantics are Ansible's lineinfile: with ``match`` (a regular expression, searched
in each line), the *last* matching line is replaced by ``line``; when nothing
matches and the line is not there yet, it is appended at the end (a file without a
final newline gets one first). Without ``match`` the line is appended unless an
identical line exists. ``absent`` removes every line that matches (or, without
``match``, every line equal to ``line``).

The identity includes the line (or the match), so several ``line`` resources can
manage one file: ``line[/root/.bashrc: alias sar="LANG=C sar"]``. A missing file is
created with mode 0644, unless ``create=False``, which makes it a failure. The file
is replaced atomically, keeping its mode and owner, and only when it changes, so a
second run is ``(up to date)`` and leaves the mtime alone. Pick ``match`` so that
it also matches ``line``, or the replaced line and the appended one can differ.
"""

from __future__ import annotations

import os
import re
import stat as stat_mod
from typing import Any, Dict, List, Optional

from ..agent import managed
from ..errors import ResourceError
from . import _validate as v
from ._base import Change, Resource, prop, short_hash


class Line(Resource, type_name="line"):
    """Make sure a line is in a file (replacing a matching line), or is not."""

    actions = ("present", "absent")

    path: str = prop(doc="The file.", identity=True, coerce=v.path)
    line: Optional[str] = prop(None, doc="The whole line, without its newline.",
                               sensitive=True, required_for=("present",))
    match: Optional[str] = prop(None, doc="A regular expression (Python syntax, searched in "
                                "each line): present replaces the last matching line; absent "
                                "removes every matching line.", sensitive=True)
    create: bool = prop(True, doc="Create the file (mode 0644) when it is missing; when False, "
                        "a missing file is a failure.")

    def normalise(self) -> None:
        if self.line is not None:
            if "\n" in self.line or "\r" in self.line:
                raise self.fail("line contains a newline; declare one line resource per line")
            v.text(self.line, "line")
        if self.match is not None:
            if not self.match:
                raise self.fail("match must be a non-empty regular expression")
            v.text(self.match, "match", one_line=True)
            v.regex(self.match, "match")
        if self.line is None and self.match is None:
            raise self.fail("give the line, or a match for action='absent'")

    @property
    def name(self) -> str:
        what = self.line if self.line is not None else self.match
        if what is not None and self.meta.sensitive:  # unique, and shows nothing
            what = "(sensitive) " + short_hash(what.encode("utf-8"))
        return self.path if what is None else "%s: %s" % (self.path, what)

    def _show(self, text: str) -> str:
        return managed.shown(self, "'%s'" % text)

    def _show_found(self, text: str) -> str:
        """A line read from the file: hidden too when the file holds a secret."""
        return managed.shown(self, "'%s'" % text, read=True)

    def writes(self) -> List[str]:
        return [os.path.normpath(self.path)]

    # -- target ----------------------------------------------------------------------

    def current(self, system: Any) -> Dict[str, Any]:
        st = system.stat(self.path)
        if st is None:
            if self.action == "present" and not self.create:
                raise ResourceError("%s does not exist (create=False)" % self.path,
                                    hint="create the file first, or drop create=False")
            return {"text": None}
        if stat_mod.S_ISLNK(st.st_mode):
            raise ResourceError("%s is a symbolic link; manage the file it points to" % self.path)
        if not stat_mod.S_ISREG(st.st_mode):
            raise ResourceError("%s is not a regular file" % self.path)
        data = system.read_bytes(self.path) or b""
        return {"text": data.decode("utf-8", "surrogateescape"), "uid": st.st_uid,
                "gid": st.st_gid}

    def changes(self, current: Dict[str, Any]) -> List[Change]:
        text = current["text"]
        if text is None and self.action == "absent":
            return []
        lines = (text or "").split("\n")
        if lines[-1] == "":
            lines.pop()
        regex = re.compile(self.match) if self.match is not None else None
        out: List[Change] = []
        if self.action == "absent":
            keep = [x for x in lines if not (regex.search(x) if regex else
                                             x.rstrip("\r") == self.line)]
            gone = len(lines) - len(keep)
            if gone:
                what = "matching %s" % self._show(self.match or "") if regex else \
                    self._show(self.line or "")
                out.append(Change("remove %d line%s %s from %s" % (
                    gone, "" if gone == 1 else "s", what, self.path)))
            lines = keep
        else:
            assert self.line is not None
            hits = [i for i, x in enumerate(lines) if regex and regex.search(x)]
            if text is None:
                out.append(Change("create new file %s" % self.path))
            if hits:
                old = lines[hits[-1]]
                if old != self.line:
                    lines[hits[-1]] = self.line
                    out.append(Change("replace line %d %s with %s in %s" % (
                        hits[-1] + 1, self._show_found(old), self._show(self.line), self.path)))
            elif self.line not in (x.rstrip("\r") for x in lines):
                lines.append(self.line)
                out.append(Change("append line %s to %s" % (self._show(self.line), self.path)))
        if not out:
            return []
        new = ("\n".join(lines) + "\n" if lines else "").encode("utf-8", "surrogateescape")
        old = None if text is None else text.encode("utf-8", "surrogateescape")
        # a new file is 0644; an existing one keeps its mode and owner
        write = managed.Write(self.path, new, 0o644) if text is None else \
            managed.Write(self.path, new, None, current["uid"], current["gid"])
        out[-1].diff = managed.diff(self, old, new, self.path)
        for change in out:
            change.data = write
        return out

    def before(self, system: Any, current: Any, changes: List[Change]) -> Dict[str, Any]:
        """Journal hook: the whole file is kept; a rollback restores it."""
        return managed.journal_files(system, self.path)

    def apply(self, system: Any, changes: List[Change]) -> None:
        managed.write(system, changes[-1].data)
