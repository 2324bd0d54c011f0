"""Composite types: a resource whose actions are written with other resources.

::

    from converge import link, template
    from converge.resources._composite import Composite
    from converge.resources._base import prop

    class Site(Composite, type_name="site"):
        '''A web site: its configuration and the link that enables it.'''

        actions = ("create", "delete")
        name: str = prop(doc="The site.", identity=True)
        port: int = prop(80, doc="Where it listens.")

        def create(self) -> None:
            template("/etc/nginx/sites-available/%s" % self.name, source="site.j2",
                     variables={"port": self.port})
            link("/etc/nginx/sites-enabled/%s" % self.name,
                 to="/etc/nginx/sites-available/%s" % self.name)

A method per action declares the inner resources through the ordinary recipe
functions. It runs on the controller, while the recipe is compiled: the plan holds
the composite as a header step followed by its inner steps (each with the
composite as ``parent``), and the agent converges those as any others, then
reports the composite ``updated`` when one of them was, ``up to date`` when all
were (see docs/extending.md for the whole behaviour: guards, notifications both
ways, errors). Nothing of a composite type runs on a target, so its module is
never shipped there. Standard library only (this module is shipped).
"""

from __future__ import annotations

from typing import Any, List

from ._base import Change, Resource


class Composite(Resource):
    """Base class of composite types; see the module docstring."""

    #: the plan and the engine treat this type's steps as groups of inner steps
    composite = True

    def __init_subclass__(cls, type_name: str = "", **kwargs: Any) -> None:
        for action in tuple(cls.actions) + tuple(cls.notify_only) if type_name else ():
            if not callable(getattr(cls, action, None)):  # checked before it registers
                raise TypeError("composite type %r: action %r has no method (def %s(self): "
                                "declare its resources)" % (type_name, action, action))
        super().__init_subclass__(type_name=type_name, **kwargs)

    def current(self, system: Any) -> Any:
        raise TypeError("%s is a composite: its inner resources converge, not itself"
                        % self.identity)

    def changes(self, current: Any) -> List[Change]:
        raise TypeError("%s is a composite" % self.identity)

    def apply(self, system: Any, changes: List[Change]) -> None:
        raise TypeError("%s is a composite" % self.identity)


def is_composite(cls: Any) -> bool:
    """Whether a resource type (or resource) is a composite."""
    return bool(getattr(cls, "composite", False) is True)
