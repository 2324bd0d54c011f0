"""The fault-injection suite prints its figures at the end of the session: trials
run, faults injected and survived, files lost or left partial (see helpers.TALLY)."""

from __future__ import annotations

from typing import Any

from tests.faults.helpers import TALLY

# (key in TALLY, what it counts), in the order printed
FIGURES = [
    ("trials", "kill -9 trials (local agent)"),
    ("ssh_trials", "kill -9 trials (agent over SSH)"),
    ("disk_full_faults", "writes refused by a full disk"),
    ("ssh_cuts", "SSH links cut mid-run"),
    ("ssh_cut_detected_ms", "ms from the cut to the host reported failed"),
    ("package_faults", "package manager failures or agent kills mid-batch"),
    ("interrupts", "SIGINT/SIGTERM sent to a run during a command"),
    ("injected", "faults injected (all kinds)"),
    ("survived", "faults survived (every check held afterwards)"),
    ("files_checked", "managed files checked after a fault"),
    ("files_bad", "files lost or left partial"),
    ("temps_after_fault", "temp files left by killed writers"),
    ("temps_after_next_run", "temp files left after the next run"),
    ("journals_read", "journal files read back (JSON, or JSON lines)"),
    ("journals_torn_last_line", "write-ahead logs with a torn last line"),
    ("journals_bad", "journal files unreadable"),
    ("kills_after_the_journal_was_finished", "kills that came after the run's end"),
    ("next_runs", "next runs that converged"),
    ("rollbacks", "rollbacks after a fault that restored the files"),
]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not TALLY:
        return
    terminalreporter.section("fault injection")
    for key, text in FIGURES:
        if key in TALLY:
            terminalreporter.write_line("%-50s %d" % (text + ":", TALLY[key]))
    for key in sorted(set(TALLY) - {k for k, _ in FIGURES}):
        terminalreporter.write_line("%-50s %d" % (key + ":", TALLY[key]))
