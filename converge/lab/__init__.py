"""The lab: throwaway sandbox nodes (namespaces, overlays, a real sshd) on this machine."""

from converge.lab.errors import LabError
from converge.lab.lab import Lab
from converge.lab.node import Node
from converge.lab.repo import LocalRepo

__all__ = ["Lab", "LabError", "LocalRepo", "Node"]
