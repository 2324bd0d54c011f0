"""A real installable distribution that brings a resource type through the
``converge.resources`` entry point: the tests of installed packages' types build it
(tests/agent/test_extensions.py, tests/lab/test_custom_types.py)."""

from __future__ import annotations

import textwrap
from pathlib import Path

PACKAGE_TYPE = '''\
"""banner: a package's own type (an entry point in group converge.resources)."""

from typing import Any, Dict, List, Optional

from converge.resources._base import Change, Resource, prop


class Banner(Resource, type_name="banner"):
    """One line of text in a file."""

    actions = ("create",)
    path: str = prop(doc="The file.", identity=True)
    text: str = prop("", doc="The text.")

    def current(self, system: Any) -> Optional[bytes]:
        return system.read_bytes(self.path)

    def changes(self, current: Optional[bytes]) -> List[Change]:
        wanted = ("** %s **\\n" % self.text).encode()
        return [] if current == wanted else [Change("banner %s" % self.path, data=wanted)]

    def before(self, system: Any, current: Any, changes: List[Change]) -> Dict[str, Any]:
        return {"files": [self.path]}

    def apply(self, system: Any, changes: List[Change]) -> None:
        system.write_atomic(self.path, changes[0].data, mode=0o644)
'''


def banner_package(folder: Path) -> Path:
    """The source tree of the distribution converge-banner 1.0 (type ``banner``), made
    in ``folder``; pip installs it."""
    package = folder / "converge-banner"
    (package / "converge_banner").mkdir(parents=True)
    (package / "converge_banner/__init__.py").write_text("")
    (package / "converge_banner/banner.py").write_text(PACKAGE_TYPE)
    (package / "pyproject.toml").write_text(textwrap.dedent("""\
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "converge-banner"
        version = "1.0"
        [project.entry-points."converge.resources"]
        banner = "converge_banner.banner"
        """))
    return package
