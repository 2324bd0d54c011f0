"""Hostile input: a deterministic, bounded hypothesis profile, the hostile
alphabet, a System that records every command instead of running it, and a count
of the inputs tried (printed in the terminal summary)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import warnings
from collections import Counter
from collections.abc import Iterator
from typing import List, Mapping, Optional, Sequence

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from converge.agent.system import RunResult, System
from tests.conftest import TRIED_PROPERTY

# Hypothesis keeps caches (and, on a failure, patches) in a .hypothesis folder of
# the current directory: keep them in a temporary one, gone when the tests end.
_HOME = tempfile.mkdtemp(prefix="converge-hypothesis-")
set_hypothesis_home_dir(_HOME)
atexit.register(shutil.rmtree, _HOME, True)

# Deterministic (same examples on every run, no database written) and quick;
# CONVERGE_HOSTILE_EXAMPLES=2000 tries more, for a deeper search by hand.
settings.register_profile(
    "converge", derandomize=True, database=None, deadline=None,
    max_examples=int(os.environ.get("CONVERGE_HOSTILE_EXAMPLES", "40")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
settings.load_profile("converge")

# On a failure, hypothesis's pytest plugin imports its patch writer, whose libcst
# raises a DeprecationWarning (an error in this suite): import it quietly now.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import hypothesis.extra._patching  # noqa: F401
    except ImportError:
        pass

#: Pieces of text that mean something to a shell, cron, a path resolver, a
#: terminal or an argument parser.
PAYLOADS = [
    "$(reboot)", "`id`", "; rm -rf /", "&& true", "|| true", "| cat", "> /tmp/x", "< /etc/passwd",
    "*", "?", "[a-z]", "{a,b}", "~root", "..", "../..", "/../", "-rf", "--help", "-oAPT::x=1",
    "'", '"', "\\", "\n", "\r", "\t", "\0", "%", "#", " ", "!", "${IFS}", "$HOME", "=",
    "é", "日本語", "\u202e", "\x1b[31m", "\udcff", "\ud800", ":", "@", "/", ".", "-", "_",
]

hostile_text = st.lists(
    st.one_of(st.sampled_from(PAYLOADS), st.text(max_size=6)), max_size=6,
).map("".join)

SHELLS = ("sh", "bash", "dash", "zsh", "ksh", "busybox")

#: inputs tried, by outcome; summed over the session
TRIED: Counter = Counter()


class RecordingSystem(System):
    """A System rooted at a temporary directory whose commands never run: each argv
    is checked (a list of strings, never a shell given a command line) and
    recorded, and the command reports 127, as a missing program does. Files are
    read and written for real, under the root."""

    def __init__(self, root: str) -> None:
        super().__init__(root, cwd="/")
        self.argvs: List[List[str]] = []
        self.inputs: List[Optional[str]] = []

    def _record(self, argv: Sequence[str], input: Optional[str] = None) -> RunResult:
        assert type(argv) is list, "argv is a %s, not a list: %r" % (type(argv).__name__, argv)
        assert argv and all(type(a) is str for a in argv), argv
        program = os.path.basename(argv[0])
        assert not (program in SHELLS and any(a.startswith("-") and "c" in a
                                              for a in argv[1:])), \
            "a shell was given a command line: %r" % (argv,)
        self.argvs.append(list(argv))
        self.inputs.append(input)
        return RunResult(127, "", "%s: not run in this test" % argv[0])

    def run(self, argv: Sequence[str], input: Optional[str] = None,
            env: Optional[Mapping[str, str]] = None, cwd: Optional[str] = None,
            timeout: Optional[float] = None, user: Optional[str] = None) -> RunResult:
        return self._record(argv, input)

    def run_long(self, argv: Sequence[str], env: Optional[Mapping[str, str]] = None,
                 cwd: Optional[str] = None, timeout: Optional[float] = None,
                 user: Optional[str] = None, live: bool = False,
                 group: Optional[str] = None) -> RunResult:
        return self._record(argv)


@pytest.fixture(autouse=True)
def _report_tried(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test's share of TRIED travels in its report, so the session's summary
    (tests/conftest.py) adds them up on pytest-xdist workers too."""
    before = Counter(TRIED)
    yield
    delta = {key: TRIED[key] - before[key] for key in TRIED if TRIED[key] != before[key]}
    if delta:
        request.node.user_properties.append((TRIED_PROPERTY, delta))
