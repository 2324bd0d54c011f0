"""docs/tutorial.md, "Undo a run": the commands shown are exactly the ones to type.
Each ``$`` line of the transcript runs, in order, in a scratch directory holding
the snippet, and prints what the page shows (run ids, times and durations
aside); every converge command of it names the tree with ``--root``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VARYING = [(re.compile(r"\d{8}T\d{6}-\d{6}"), "RUN-ID"),
           (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"), "TIME"),
           (re.compile(r" in \d+\.\d+s$", re.M), " in Ns")]


def transcript() -> list[tuple[str, str]]:
    text = (REPO / "docs/tutorial.md").read_text()
    section = text[text.index("## 8. Undo a run"):]
    section = section[:section.index("\n## ", 1)] if "\n## " in section[1:] else section
    lines = [line[4:] for line in section.splitlines()
             if line.startswith("    ") and not line.startswith("     $")]
    steps: list[tuple[str, str]] = []
    for line in lines[lines.index(next(x for x in lines if x.startswith("$ "))):]:
        if line.startswith("$ "):
            steps.append((line[2:], ""))
        else:
            steps[-1] = (steps[-1][0], steps[-1][1] + line + "\n")
    return steps


def normal(text: str) -> str:
    for pattern, replacement in VARYING:
        text = pattern.sub(replacement, text)
    return text


def test_the_undo_transcript_runs_as_shown(tmp_path: Path) -> None:
    steps = transcript()
    assert [c.split()[:2] for c in (s[0] for s in steps) if c.startswith("converge")] == [
        ["converge", "apply"], ["converge", "history"], ["converge", "rollback"],
        ["converge", "rollback"]]
    for command, _ in steps:
        if command.startswith("converge"):
            assert "--root tree" in command, "without --root this acts on the machine: " + command
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "converge"
    wrapper.write_text('#!/bin/sh\nexec "%s" -m converge "$@"\n' % sys.executable)
    wrapper.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    (work / "undo.py").write_text((REPO / "docs/snippets/undo.py").read_text())
    env = dict(os.environ, PATH="%s:%s" % (bin_dir, os.environ["PATH"]),
               PYTHONPATH=str(REPO))
    for command, shown in steps:
        done = subprocess.run(["sh", "-c", command], cwd=work, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, timeout=120)
        assert done.returncode == 0, (command, done.stdout)
        assert normal(done.stdout) == normal(shown), command
    assert not (work / "tree/etc/app.conf").exists()
