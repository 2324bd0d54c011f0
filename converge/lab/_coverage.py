"""Coverage of converge where it really runs, when the suite runs under coverage.

The host's `pytest --cov` measures its subprocesses through coverage's
``patch = ["subprocess"]``: each inherits COVERAGE_PROCESS_CONFIG (the serialized
config, its data file an absolute path) and coverage's .pth file starts measuring.
A lab node's processes get neither: node.run gives them an environment of their
own, the node cannot write the host's data directory, and the agent converge
starts over SSH runs ``python3 -I -S`` (no .pth, no environment) from its bundle
cache. So, only while this process is measured:

- node.run passes the config on with the data file moved to NODE_DATA, a
  directory in the node's /tmp overlay that every user of the node can write;
- the lab copies the data files out of a node before it stops it.

The agent started over SSH is measured by its loader text alone, the command line
unchanged (converge/transport/bundle.py's _measured_loader: under coverage the
loader starts the controller's coverage, its data written in NODE_DATA); a
``python3`` placed first on the node's PATH instead changed every other
python3's argv, which the tests that find agents by their command lines see.
pyproject.toml's [tool.coverage.paths] maps an agent cache
(``.../agent-<sha256>/converge/``) onto converge/.
Standard library only (the lab runs on the controller's Python, any version
coverage supports).
"""

from __future__ import annotations

import base64
import json
import os
import stat
from typing import Any

from converge.transport.bundle import COVERAGE_NODE_DATA

ENV = "COVERAGE_PROCESS_CONFIG"
NODE_DATA = COVERAGE_NODE_DATA  # where the agent started over SSH writes its data too



def _config() -> dict[str, Any] | None:
    """The serialized coverage config this process hands its subprocesses, or None."""
    text = os.environ.get(ENV)
    if not text:
        return None
    try:
        config = json.loads(base64.b64decode(text.encode()).decode())
    except ValueError:
        return None
    if not isinstance(config, dict) or not isinstance(config.get("data_file"), str):
        return None
    return config


def node_env() -> dict[str, str]:
    """What node.run adds to a node command's environment: the config, its data
    file in NODE_DATA ({} when this process is not measured)."""
    config = _config()
    if config is None:
        return {}
    name = os.path.basename(config["data_file"])
    moved = dict(config, data_file=f"{NODE_DATA}/{name}")
    return {ENV: base64.b64encode(json.dumps(moved).encode()).decode()}


def seeds() -> list[dict[str, Any]]:
    """Seeds for a node's layers: NODE_DATA (mode 1777), where measured processes
    of every user of the node write their data."""
    if _config() is None:
        return []
    return [{"path": NODE_DATA, "dir": True, "mode": 0o1777}]


def collect(pid: int) -> None:
    """Copy the data files a node's processes wrote into this process's data
    directory (before the node stops; files only, never through a link)."""
    config = _config()
    if config is None:
        return
    folder = f"/proc/{pid}/root{NODE_DATA}"
    target = os.path.dirname(config["data_file"])
    prefix = os.path.basename(config["data_file"]) + "."
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if not name.startswith(prefix) or "/" in name:
            continue
        try:
            fd = os.open(os.path.join(folder, name), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                continue
            with os.fdopen(os.dup(fd), "rb") as handle:
                data = handle.read()
        finally:
            os.close(fd)
        part = os.path.join(target, "." + name + ".part")  # not a data file's name
        with open(part, "wb") as handle:
            handle.write(data)
        os.replace(part, os.path.join(target, name))
