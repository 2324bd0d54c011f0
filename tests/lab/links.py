"""A node's host end of its link, told apart from a later node's of the same name.

Links are named after their address, and another lab (another xdist worker's) may
take a range a lab has just left, so a link of the same name can exist again a
moment after a node is gone. Its interface index cannot: the kernel gives each
new link a new one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional


def ifindex(link: str) -> Optional[int]:
    """The link's interface index, None when no link has that name."""
    try:
        return int(Path(f"/sys/class/net/{link}/ifindex").read_text())
    except FileNotFoundError:
        return None


def link_gone(link: str, index: Optional[int]) -> bool:
    """The link that had INDEX is gone (a link of the same name may be another's)."""
    assert index is not None, f"{link} was never there"
    return ifindex(link) != index
