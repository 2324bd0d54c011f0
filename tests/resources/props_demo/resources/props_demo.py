"""props_demo: a cookbook's type whose properties use every kind of declaration.

Example::

    props_demo("/srv/demo", text="hello")

Only compiled by tests/resources/test_props.py: it never converges.
"""

from typing import Any, List, Optional, Union

from converge.resources import _validate as v
from converge.resources._base import Change, Resource, prop


def _listed(value: Any, what: str) -> Any:
    """One label is a list of one."""
    return [value] if isinstance(value, str) else value


class PropsDemo(Resource, type_name="props_demo"):
    """Declarations only."""

    actions = ("create", "delete")

    path: str = prop(doc="A path.", identity=True, coerce=v.path)
    mode: Optional[str] = prop(None, doc="A mode.", coerce=v.mode)
    size: int = prop(1, doc="A count.")
    ratio: float = prop(1.0, doc="A ratio.")
    flag: bool = prop(False, doc="A flag.")
    kind: str = prop("plain", doc="A kind.", choices=("plain", "fancy"))
    level: Union[bool, str] = prop(False, doc="A level.", choices=(False, True, "auto"))
    labels: List[str] = prop(factory=list, doc="Labels.", coerce=_listed)
    text: Optional[str] = prop(None, doc="A text.", required_for=("create",))
    secret: Optional[str] = prop(None, doc="A secret.", sensitive=True)

    def current(self, system: Any) -> Any:
        return None

    def changes(self, current: Any) -> List[Change]:
        return []
