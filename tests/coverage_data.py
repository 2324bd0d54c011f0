"""Under ``--cov``, every data file a measured process wrote is combined, or the run fails.

When the tests end, pytest-cov combines the data files of the measured subprocesses
(and those the lab brought home from its nodes: converge/lab/_coverage.py) and
deletes each file it combined. A file coverage cannot read is only warned about
("database disk image is malformed") and left where it is, and its process's
lines are lost from the figure the floor checks. So the files the combine left
behind are the lost ones: the run fails naming them, with the command line that
wrote each when that much of the file can be read.

The cause found once: a test child that limits its file size (RLIMIT_FSIZE) also
limited the data file coverage wrote as it exited (tests/agent/test_system_write.py).
A measured process killed while it saves its data (SIGKILL in those milliseconds)
leaves such a file too.
"""

from __future__ import annotations

import glob
import os
import sqlite3
import time
from collections.abc import Generator
from typing import Any

import pytest


def writer(path: str) -> str:
    """The command line recorded in a data file's meta table, or '' when unreadable."""
    try:
        with sqlite3.connect("file:%s?mode=ro&immutable=1" % path, uri=True) as db:
            row = db.execute("select value from meta where key = 'sys_argv'").fetchone()
    except sqlite3.Error:
        return ""
    return str(row[0]) if row else ""


def left_behind(data_file: str, since: float) -> list[str]:
    """Data files beside data_file, written since then, that the combine did not take
    (an older one is another run's: pytest-cov leaves those too)."""
    found = []
    for path in sorted(glob.glob(glob.escape(os.path.abspath(data_file)) + ".*")):
        try:
            if os.stat(path).st_mtime >= since:
                found.append(path)
        except FileNotFoundError:
            pass
    return found


@pytest.hookimpl(wrapper=True, tryfirst=True)  # around pytest-cov's, which combines
def pytest_runtestloop(session: pytest.Session) -> Generator[None, Any, Any]:
    started = time.time() - 1  # mtimes may be coarser than time()
    result = yield
    plugin = session.config.pluginmanager.getplugin("_cov")
    controller = getattr(plugin, "cov_controller", None)
    if controller is None or hasattr(session.config, "workerinput"):
        return result  # not measured, or an xdist worker (the controller combines)
    left = left_behind(controller.cov.config.data_file, started)
    if left:
        session.testsfailed += 1
        reporter = session.config.pluginmanager.getplugin("terminalreporter")
        reporter.write_line("ERROR: coverage could not combine %d data file(s); their "
                            "processes' lines are missing from the total:" % len(left),
                            red=True, bold=True)
        for path in left:
            reporter.write_line("  %s %s" % (os.path.basename(path), writer(path)))
    return result
