"""The lab: throwaway sandbox nodes (namespaces, overlays, a real sshd) on this machine.

The names below load on first use, so that the CLI, which mounts the lab's
commands, does not import the lab for every `converge apply`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from converge.lab.errors import LabError
    from converge.lab.lab import Lab
    from converge.lab.node import Node
    from converge.lab.repo import LocalRepo

__all__ = ["Lab", "LabError", "LocalRepo", "Node"]
_HOMES = {"Lab": "converge.lab.lab", "LabError": "converge.lab.errors",
          "LocalRepo": "converge.lab.repo", "Node": "converge.lab.node"}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError("module 'converge.lab' has no attribute %r" % name)
    import importlib

    return getattr(importlib.import_module(_HOMES[name]), name)
