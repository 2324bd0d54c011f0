"""converge: configuration management for Linux servers, in plain Python.

A recipe imports its resource functions from here::

    from converge import file, node, attrs

    file("/etc/motd", content="Hello from %s\\n" % node.hostname)

``node`` (facts) and ``attrs`` (attributes) are those of the recipe being
compiled; they can be imported only while a recipe runs.
"""

from __future__ import annotations

from typing import Any

from ._version import __version__
from .dsl import FUNCTIONS, include_recipe

globals().update(FUNCTIONS)

__all__ = sorted(FUNCTIONS) + ["include_recipe", "node", "attrs", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("node", "attrs"):
        from . import context

        return getattr(context.current(), name)
    raise AttributeError("module 'converge' has no attribute %r" % name)
