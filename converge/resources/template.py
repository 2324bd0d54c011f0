"""template: a file rendered from a jinja2 template when the recipe is compiled.

Example::

    template("/etc/chrony/chrony.conf", source="chrony.conf.j2",
             variables={"servers": ["0.pool.ntp.org"]}, mode="0644")

The template sees ``variables``, ``attrs`` and ``node``; an undefined name is an
error naming the template file and line (jinja2's StrictUndefined). Rendering
happens on the controller, so the plan carries the final content and targets
need no jinja2.
"""

from __future__ import annotations

from typing import Any, Dict

from ._base import prop
from .file import File


class Template(File, type_name="template"):
    """Manage a file whose content is rendered from a jinja2 template."""

    variables: Dict[str, Any] = prop(factory=dict, doc="Names the template can use, besides "
                                     "attrs and node.", wire=False, sensitive=True)

    def normalise(self) -> None:
        if self.content is not None:
            raise self.fail("a template takes source= (the template file), not content=")
        if self.source is None:
            raise self.fail("source= is required: the template file to render")
        super().normalise()

    def _load_source(self, source: str) -> str:
        from ..context import current

        return current().render_template(source, self.variables)
