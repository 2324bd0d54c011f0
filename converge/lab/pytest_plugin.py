"""pytest fixtures for tests that need real system state: lab nodes.

Register with `pytest_plugins = ["converge.lab.pytest_plugin"]`, mark tests with
`@pytest.mark.lab`, and use:

    lab                        the session's Lab, in a temporary directory
    lab_node                   a fresh node for this test, removed after it
    local_repo                 the lab's offline apt repository (LocalRepo)
    assert_idempotent          assert_idempotent(node, recipe, args=()) -> IdempotenceResult
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator

import pytest

from converge.lab.idempotence import IdempotenceResult
from converge.lab.idempotence import assert_idempotent as _assert_idempotent
from converge.lab.lab import Lab
from converge.lab.node import Node
from converge.lab.repo import LocalRepo


def lab_unavailable() -> str | None:
    """Why lab nodes cannot run here (not Linux, not root), or None."""
    if not sys.platform.startswith("linux"):
        return f"lab nodes need Linux namespaces; this is {sys.platform}"
    if os.geteuid() != 0:
        return "lab nodes need root (namespaces, mounts, veth links)"
    return None


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """A Lab in a temporary directory for the whole session; every node goes at the end."""
    reason = lab_unavailable()
    if reason:
        pytest.skip(reason)
    session_lab = Lab(tmp_path_factory.mktemp("lab"))
    session_lab.check_host()
    try:
        yield session_lab
    finally:
        session_lab.down()


@pytest.fixture
def lab_node(lab: Lab) -> Iterator[Node]:
    """A fresh node (about 50 ms to start), taken down after the test."""
    node = lab.up(1)[0]
    try:
        yield node
    finally:
        lab.down([node.name])


@pytest.fixture
def local_repo(lab: Lab) -> LocalRepo:
    """The lab's offline apt repository; nodes see it as their only apt source."""
    lab.repo.ensure()
    return lab.repo


@pytest.fixture
def assert_idempotent() -> Callable[..., IdempotenceResult]:
    """assert_idempotent(node, recipe, args=()): apply twice, fail on any second-run change."""
    return _assert_idempotent
