"""CI runs what the README tells a new user to run: its two commands, in its order."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    """The README's set-up commands: the indented lines of its "Set up" section."""
    section = (REPO / "README.md").read_text().split("## Set up", 1)[1].split("\n## ", 1)[0]
    return [line.strip() for line in section.splitlines() if re.match(r"^    \S", line)]


def test_ci_runs_the_readme_commands_in_order() -> None:
    commands = readme_commands()
    assert commands == ["./scripts/install.sh && converge apply examples/hello.py",
                        "./scripts/install.sh --dev && python3 -m pytest -n 2 --dist loadfile "
                        "-p randomly --cov"]
    script = (REPO / ".ci/run").read_text().splitlines()
    run = [line for line in script if line.startswith("./") or line.startswith("converge")
           or line.startswith("python3")]
    assert run == commands
