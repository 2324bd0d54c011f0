"""cron in a lab node: real /etc/cron.d files and root's crontab through crontab(1)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from converge.lab import Node
from converge.lab.idempotence import IdempotenceResult, apply_in_node, place_recipe
from tests.resources import cron_grammar as grammar

pytestmark = pytest.mark.lab

RECIPE = """\
from converge import cron
cron("sa1", minute="*/10", command="/usr/lib/sysstat/sa1 1 1", cron_file="sysstat")
cron("sa2", minute=53, hour=23, command="/usr/lib/sysstat/sa2 -A", cron_file="sysstat")
cron("protect-sshd", command="/usr/local/sbin/protect-sshd",
     environment={"MAILTO": ""})
cron("stamp", hour=4, minute=0, command="date +\\\\%F > /tmp/stamp")
"""

DELETE = """\
from converge import cron
cron("sa1", action="delete", cron_file="sysstat")
cron("sa2", action="delete", cron_file="sysstat")
cron("protect-sshd", action="delete")
"""

BY_HAND = "# mine\n0 4 * * * date +\\%F > /tmp/stamp\n30 2 * * 0 /usr/local/bin/weekly\n"


def test_cron_files_and_crontab(lab_node: Node, tmp_path: Path,
                                assert_idempotent: Callable[..., IdempotenceResult]) -> None:
    done = lab_node.run(["crontab", "-u", "root", "-"], input=BY_HAND)
    assert done.returncode == 0, done.stderr
    recipe = tmp_path / "recipe.py"
    recipe.write_text(RECIPE)
    result = assert_idempotent(lab_node, recipe)
    assert [r["changes"] for r in result.first.resources()] == [
        ["add cron entry sa1 to /etc/cron.d/sysstat"],
        ["add cron entry sa2 to /etc/cron.d/sysstat"],
        ["add cron entry protect-sshd to the crontab of root"],
        ["adopt the existing cron entry stamp in the crontab of root (add its marker)"],
    ]
    assert lab_node.read_file("/etc/cron.d/sysstat") == (
        b"# converge: sa1\n*/10 * * * * root /usr/lib/sysstat/sa1 1 1\n"
        b"# converge: sa2\n53 23 * * * root /usr/lib/sysstat/sa2 -A\n")
    mode = lab_node.run(["stat", "-c", "%a %U", "/etc/cron.d/sysstat"]).stdout.strip()
    assert mode == "644 root"
    crontab = lab_node.run(["crontab", "-u", "root", "-l"]).stdout
    assert crontab == ("# mine\n# converge: stamp\n0 4 * * * date +\\%F > /tmp/stamp\n"
                       "30 2 * * 0 /usr/local/bin/weekly\n# converge: protect-sshd\nMAILTO=\"\"\n"
                       "* * * * * /usr/local/sbin/protect-sshd\n")

    delete = tmp_path / "delete.py"
    delete.write_text(DELETE)
    run = apply_in_node(lab_node, place_recipe(lab_node, delete), "/tmp/converge-test/d.json")
    assert run.ok, run.stdout + run.stderr
    assert [r["changes"] for r in run.resources()] == [
        ["delete cron entry sa1 from /etc/cron.d/sysstat"],
        ["delete /etc/cron.d/sysstat (its last entry, sa2, is gone)"],
        ["delete cron entry protect-sshd from the crontab of root"],
    ]
    assert lab_node.run(["test", "-e", "/etc/cron.d/sysstat"]).returncode == 1
    assert lab_node.run(["crontab", "-u", "root", "-l"]).stdout == (
        "# mine\n# converge: stamp\n0 4 * * * date +\\%F > /tmp/stamp\n"
        "30 2 * * 0 /usr/local/bin/weekly\n")


def test_crontab_of_a_missing_user_fails_clearly(lab_node: Node, tmp_path: Path) -> None:
    recipe = tmp_path / "r.py"
    recipe.write_text('from converge import cron\ncron("x", command="true", user="nobody2")\n')
    lab_node.run(["mkdir", "-p", "/tmp/converge-test"])
    run = apply_in_node(lab_node, place_recipe(lab_node, recipe), "/tmp/converge-test/r.json")
    assert run.returncode == 1
    assert run.resources()[0]["error"] == "user 'nobody2' does not exist on this machine"


AS_NOBODY = ["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups"]


def test_crontab_agrees_with_the_grammar_table(lab_node: Node) -> None:
    """The real crontab(1), run by an unprivileged user in a node, gives each line of
    the table the verdict written there (converge's own verdicts: tests/resources)."""
    wrong = []
    for field, text, verdict in grammar.TABLE:
        done = lab_node.run(AS_NOBODY + ["crontab", "-"], input=grammar.line(field, text))
        installed = done.returncode == 0
        if installed != (verdict in (grammar.OK, grammar.LAX)):
            wrong.append((field, text, verdict, done.returncode, done.stderr.strip()))
    assert wrong == []
    listed = lab_node.run(AS_NOBODY + ["crontab", "-l"])
    assert listed.stdout.endswith(grammar.line("minute", "*-5")), listed.stderr


def test_names_in_ranges_and_lists_reach_crontab(lab_node: Node, tmp_path: Path) -> None:
    recipe = tmp_path / "names.py"
    recipe.write_text('from converge import cron\n'
                      'cron("weekdays", minute=0, hour=7, month="Jan,Jul", weekday="mon-fri", '
                      'command="/bin/true")\n')
    lab_node.run(["mkdir", "-p", "/tmp/converge-test"])
    run = apply_in_node(lab_node, place_recipe(lab_node, recipe), "/tmp/converge-test/n.json")
    assert run.ok, run.stdout + run.stderr
    assert lab_node.run(["crontab", "-u", "root", "-l"]).stdout == (
        "# converge: weekdays\n0 7 * jan,jul mon-fri /bin/true\n")
