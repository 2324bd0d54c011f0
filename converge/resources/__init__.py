"""Resource types, one module each. Every public module here is imported, so each
type registers itself: adding a type means adding a module, nothing else."""

from __future__ import annotations

import importlib
import pkgutil

from ._base import REGISTRY, Change, Resource, Skipped, prop

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
    if not _info.name.startswith("_"):
        importlib.import_module(__name__ + "." + _info.name)

__all__ = ["REGISTRY", "Change", "Resource", "Skipped", "prop"]
