"""The lab's small JSON and text files (state, stamps, image metadata, known_hosts):
read leniently, replaced whole."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def read_json(path: Path) -> dict[str, Any] | None:
    """The file's JSON object, or None when it is missing or not JSON."""
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data


def atomic_write(path: Path, text: str) -> None:
    """Replace the file whole: written beside it, then renamed over it."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
