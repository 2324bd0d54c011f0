"""Resource types, one module each, named after the type (``sysctl.py`` defines
``sysctl``): adding a type means adding a module, nothing else.

Modules are imported when first needed: a lookup in the registry imports the
type's module, so an agent converging two types imports two modules. Reading
``REGISTRY`` from this package, or calling :func:`load_all`, loads them all (the
DSL, the docs and ``converge resources`` need every type)."""

from __future__ import annotations

from typing import Any

from ._base import Change, Resource, Skipped, load_all, prop


def __getattr__(name: str) -> Any:
    if name == "REGISTRY":
        return load_all()
    raise AttributeError("module %r has no attribute %r" % (__name__, name))


__all__ = ["REGISTRY", "Change", "Resource", "Skipped", "load_all", "prop"]
