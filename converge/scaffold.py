"""`converge new cookbook NAME` and `converge new resource NAME`: working skeletons,
as `chef generate cookbook` writes them. The new resource manages a file (current,
changes, apply, and the journal's ``before`` hook, so rollback restores it), and
the cookbook's recipe uses it, so `converge test COOKBOOK` exercises it at once."""

from __future__ import annotations

import keyword
import re
from pathlib import Path
from typing import List

from .errors import ConvergeError

NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")

RECIPE = '''\
"""{name}: what this cookbook makes of a machine.

    converge apply {name}              # this machine
    converge test {name}               # twice in a fresh lab node: the second run changes nothing
    converge apply {name} -i inventory.yml
"""

from converge import attrs, directory, file

directory(attrs.{name}.folder, mode="0755")
file(attrs.{name}.folder + "/README", content="Managed by converge ({name}).\\n",
     mode="0644")
'''

ATTRIBUTES = '''\
# Defaults of this cookbook's attributes: inventory vars and -a override them.
{name}:
  folder: /srv/{name}
'''

README = '''\
# {name}

A converge cookbook. Try it in a throwaway lab node, twice (the second run must
change nothing):

    converge test {name}

Apply it to this machine, or push it to a fleet:

    converge apply {name}
    converge apply {name} -i inventory.yml

| attribute | default | what |
|---|---|---|
| `{name}.folder` | `/srv/{name}` | the folder the cookbook manages |

Its own resource types are in `resources/` (`converge new resource NAME --cookbook
{name}` adds one); `converge resources -C {name}` lists them.
'''

TEST = '''\
"""Run with pytest: `converge test` applies the cookbook twice in a fresh lab node
(as root, on Linux) and fails when the second run changes anything."""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def test_{name}_converges_and_is_idempotent():
    done = subprocess.run([sys.executable, "-m", "converge", "test", str(HERE)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
'''

RESOURCE = '''\
"""{name}: a file whose content this resource owns (a working example: change it
to manage what you need).

Example::

    {name}("/etc/motd", text="Welcome")

Runs on the controller (construction, validation) and on targets (current,
changes, apply, before): standard library, converge.resources and converge.agent
only. The file is written by converge's managed-file layer (converge.agent.managed):
diff (hidden when the resource is sensitive), journal, atomic write.
"""

from typing import Any, Dict, List, Optional

from converge.agent import managed
from converge.resources import _validate as v
from converge.resources._base import Change, Resource, prop


class {cls}(Resource, type_name="{name}"):
    """Keep a file holding one text, followed by a newline."""

    actions = ("create", "delete")

    path: str = prop(doc="The file.", identity=True, coerce=v.path)
    text: str = prop("", doc="What the file says (a newline is added).", coerce=v.text)

    def normalise(self) -> None:
        if not self.path.startswith("/"):
            raise self.fail("path must be absolute, such as /etc/motd, not %r" % (self.path,))

    def current(self, system: Any) -> Optional[bytes]:
        """The file's bytes, or None when there is no file."""
        return system.read_bytes(self.path)

    def changes(self, current: Optional[bytes]) -> List[Change]:
        wanted = (self.text + "\\n").encode("utf-8")
        if self.action == "delete":
            gone = managed.Write(self.path, None)
            return [Change("delete %s" % self.path, data=gone)] if current is not None else []
        if current == wanted:
            return []
        verb = "create" if current is None else "update"
        return [managed.change(self, "%s %s with %r" % (verb, self.path, self.text),
                               managed.Write(self.path, wanted, 0o644), current)]

    def before(self, system: Any, current: Any, changes: List[Change]) -> Dict[str, Any]:
        """For the journal: keep the file, so a rollback restores it."""
        return managed.journal_files(system, self.path)

    def apply(self, system: Any, changes: List[Change]) -> None:
        for change in changes:
            managed.write(system, change.data)
'''

USE = '''
from converge import {name}  # noqa: E402 - this cookbook's own type (resources/{name}.py)

{name}(attrs.{cookbook}.folder + "/{name}.txt", text="written by the {name} resource")
'''


def _check(name: str, what: str) -> None:
    if not NAME.fullmatch(name) or keyword.iskeyword(name):
        raise ConvergeError("%s name %r: use lower-case letters, digits and _, starting "
                            "with a letter (it is a Python name)" % (what, name))


def new_cookbook(name: str, parent: Path) -> List[Path]:
    """A cookbook folder ``parent/name``: recipe, attributes, README, a test."""
    _check(name, "cookbook")
    folder = parent / name
    if folder.exists():
        raise ConvergeError("%s exists already: choose another name or folder" % folder)
    (folder / "resources").mkdir(parents=True)
    (folder / "tests").mkdir()
    written = []
    for path, text in ((folder / "recipe.py", RECIPE), (folder / "attributes.yaml", ATTRIBUTES),
                       (folder / "README.md", README), (folder / "tests" / ("test_%s.py" % name),
                                                        TEST)):
        path.write_text(text.format(name=name))
        written.append(path)
    return written


def new_resource(name: str, cookbook: Path) -> List[Path]:
    """``cookbook/resources/name.py``, and a use of it in the cookbook's recipe."""
    _check(name, "resource")
    recipe = cookbook / "recipe.py"
    if not recipe.is_file():
        raise ConvergeError("%s is not a cookbook (no recipe.py): give --cookbook DIR, or run "
                            "converge new cookbook NAME first" % cookbook)
    path = cookbook / "resources" / (name + ".py")
    if path.exists():
        raise ConvergeError("%s exists already" % path)
    from .resources._base import load_all

    if name in load_all():
        raise ConvergeError("resource type %r is built into converge: choose another name"
                            % name)
    path.parent.mkdir(exist_ok=True)
    cls = "".join(part.capitalize() for part in name.split("_"))
    path.write_text(RESOURCE.format(name=name, cls=cls))
    with recipe.open("a") as handle:
        handle.write(USE.format(name=name, cookbook=cookbook.resolve().name))
    return [path, recipe]
