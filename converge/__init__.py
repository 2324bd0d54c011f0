"""converge: configuration management for Linux servers, in plain Python.

A recipe imports its resource functions from here::

    from converge import file, node, attrs

    file("/etc/motd", content="Hello from %s\\n" % node.hostname)

``node`` (facts) and ``attrs`` (attributes) are those of the recipe being
compiled; they can be imported only while a recipe runs. The resource functions
are loaded on first use, so importing converge (and starting the CLI) stays cheap.
"""

from __future__ import annotations

import os

from ._version import __version__ as __version__

_HERE = os.path.dirname(__file__)


# (no typing here: importing it costs every command 15 ms; __init__.pyi types this)
def __getattr__(name: str) -> object:
    if name == "__all__":  # from converge import *
        from . import dsl

        return sorted(dsl.all_functions()) + sorted(dsl.HELPERS) + ["node", "attrs"]
    if name.startswith("_") or os.path.exists(os.path.join(_HERE, name + ".py")) \
            or os.path.isdir(os.path.join(_HERE, name)):
        raise AttributeError(name)  # a submodule: let the import system load it
    if name in ("node", "attrs"):
        from . import context

        return getattr(context.current(), name)
    from . import dsl

    if name in dsl.HELPERS:
        return dsl.HELPERS[name]
    function = dsl.function_for(name)  # a built-in type, or one a cookbook or a package brought
    if function is not None:
        return function
    from .agent.extensions import LOADING

    if LOADING and name.isidentifier():  # a type file (a composite) naming a type of its
        return dsl.deferred(name)  # cookbook loaded after it, or its own
    raise AttributeError("module 'converge' has no attribute %r" % name)


def __dir__() -> list[str]:
    from . import dsl

    return sorted(list(dsl.all_functions()) + list(dsl.HELPERS) + ["node", "attrs", "__version__"])
