"""The fault-injection suite prints its figures at the end of the session: trials
run, faults injected and survived, files lost or left partial (see helpers.TALLY).

Each test's share of the figures travels in its report (user_properties), so the
session's summary adds them up the same way whether the tests ran in this process
or on pytest-xdist workers (tests/conftest.py prints them: this file is not loaded
by xdist's controller, which collects nothing)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from tests.faults.helpers import FIGURES_PROPERTY, TALLY


@pytest.fixture(autouse=True)
def _report_figures(request: pytest.FixtureRequest) -> Iterator[None]:
    before = Counter(TALLY)
    yield
    delta = {key: TALLY[key] - before[key] for key in TALLY if TALLY[key] != before[key]}
    if delta:
        request.node.user_properties.append((FIGURES_PROPERTY, delta))
