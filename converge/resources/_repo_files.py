"""The files apt_repository and yum_repository own whole (a .sources file, a
keyring, a .repo file): read with their mode, and written through the
managed-file layer (agent/managed.py). Standard library only, Python 3.8.
"""

from __future__ import annotations

import stat as stat_mod
from typing import Any, Dict, Optional

from ..agent import managed
from ..errors import ResourceError

MODE = 0o644  # apt reads sources and keys as user _apt; dnf's users read .repo files


def state(system: Any, path: str) -> Dict[str, Any]:
    """``data`` (None: absent, or not a regular file), ``mode`` ('0644'), and
    ``other``: something else is at the path (a link, a fifo), to be replaced."""
    st = system.stat(path)
    if st is not None and stat_mod.S_ISDIR(st.st_mode):
        raise ResourceError("%s is a directory, not a file" % path)
    regular = st is not None and stat_mod.S_ISREG(st.st_mode)
    return {"data": system.read_bytes(path) if regular else None,
            "mode": "%04o" % stat_mod.S_IMODE(st.st_mode) if regular else None,
            "other": st is not None and not regular}


def target(path: str, data: Optional[bytes]) -> managed.Write:
    """A repository file as it should be (None: removed), for managed.write: whole
    (temp file, fsync, rename), mode 0644, its directory made 0755 when missing.
    Never through a link: a link at the path is replaced by the file, and one on
    the way that a user other than root could have placed is refused
    (agent/paths.py)."""
    return managed.Write(path, data, MODE, parents=0o755)
