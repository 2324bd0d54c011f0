"""greeting: a file whose content this resource owns.

Example::

    greeting("/etc/motd", text="Welcome")

Runs on the controller (construction, validation) and on targets (current,
changes, apply, before): standard library and converge.resources only.
"""

from typing import Any, Dict, List, Optional

from converge.resources import _validate as v
from converge.resources._base import Change, Resource, prop


class Greeting(Resource, type_name="greeting"):
    """Keep a file holding one text, followed by a newline."""

    actions = ("create", "delete")

    path: str = prop(doc="The file.", identity=True, coerce=v.path)
    text: str = prop("", doc="What the file says (a newline is added).", coerce=v.text)

    def normalise(self) -> None:
        """Controller side, once the declarations are checked: what they cannot say."""
        if not self.path.startswith("/"):
            raise self.fail("path must be absolute, such as /etc/motd, not %r" % (self.path,))

    def current(self, system: Any) -> Optional[bytes]:
        """Target side: the file's bytes, or None when there is no file."""
        return system.read_bytes(self.path)

    def changes(self, current: Optional[bytes]) -> List[Change]:
        """Pure: what differs, each change a sentence (none: up to date)."""
        wanted = (self.text + "\n").encode("utf-8")
        if self.action == "delete":
            return [Change("delete %s" % self.path)] if current is not None else []
        if current == wanted:
            return []
        verb = "create" if current is None else "update"
        return [Change("%s %s with %r" % (verb, self.path, self.text), data=wanted)]

    def before(self, system: Any, current: Any, changes: List[Change]) -> Dict[str, Any]:
        """For the run journal: keep the file, so a rollback restores it."""
        return {"files": [self.path]}

    def apply(self, system: Any, changes: List[Change]) -> None:
        """Target side: act, through the System object only."""
        for change in changes:
            if change.data is None:
                system.remove(self.path)
            else:
                system.write_atomic(self.path, change.data, mode=0o644)
