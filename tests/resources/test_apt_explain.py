"""What apt's failures say to do: the output below is apt-get's own, captured in a
lab node (tests/faults/test_package_faults.py runs the real thing)."""

from __future__ import annotations

import pytest

from converge.agent.system import RunResult
from converge.resources._pkg_backends import Apt

POSTINST = """\
Setting up cvgf-bad (1.0) ...
cvgf-bad: /etc/cvgf-bad.conf is missing
dpkg: error processing package cvgf-bad (--configure):
 installed cvgf-bad package post-installation script subprocess returned error exit status 1
Errors were encountered while processing:
 cvgf-bad
E: Sub-process /usr/bin/dpkg returned an error code (1)
"""
LOCK = """\
E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 20 (python3)
E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another \
process using it?
"""


@pytest.mark.parametrize("output, message, hint", [
    pytest.param(POSTINST, "cvgf-bad: /etc/cvgf-bad.conf is missing",
                 "the maintainer script of cvgf-bad failed and dpkg left it half-configured "
                 "(`dpkg --audit` lists it", id="postinst"),
    pytest.param(LOCK, "It is held by process 20 (python3)",
                 "another package manager is running", id="lock"),
    pytest.param("E: Sub-process /usr/bin/dpkg returned an error code (2)\n",
                 "error code (2)", None, id="other"),
])
def test_apt_failures_say_what_to_do(output: str, message: str, hint: str | None) -> None:
    error = Apt().explain("install", ["cvgf-one", "cvgf-bad"], RunResult(100, "", output))
    assert error.message.startswith("apt-get install failed (exit 100):\n")
    assert message in error.message
    assert error.hint is not None
    assert error.hint.endswith("the command was: apt-get install -y -q -o "
                               "Dpkg::Options::=--force-confdef -o "
                               "Dpkg::Options::=--force-confold -- cvgf-one cvgf-bad")
    if hint is None:
        assert error.hint.startswith("the command was:")
    else:
        assert error.hint.startswith(hint), error.hint
