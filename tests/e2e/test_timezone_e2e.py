"""timezone in a lab node, with the machine's own /usr/share/zoneinfo, through the
real CLI: the /etc/localtime link and /etc/timezone, second run up to date
(mtimes kept), a relative link as timedatectl writes it accepted, drift by hand
corrected, plan changing nothing, rollback, and an unknown zone a failed
resource naming it while the other resources still run.

Peers' reported bugs covered: /etc/localtime a copy of a zone file rather than
a link (ansible/ansible#32048, fixed by #36715); a link vs. /etc/timezone
disagreeing on Debian (ansible/ansible#34390: both are written); a relative link
as timedatectl writes it, accepted as up to date."""

from __future__ import annotations

from pathlib import Path

import pytest

from converge.lab import Node
from converge.lab.idempotence import place_recipe
from tests.e2e.node_helpers import apply, converge, sh

pytestmark = pytest.mark.lab

RECIPE = 'from converge import timezone\ntimezone("Europe/Paris")\n'


def test_timezone_link_file_drift_rollback(lab_node: Node, tmp_path: Path) -> None:
    host_link = Path("/etc/localtime").resolve()
    sh(lab_node, "ln -sfn /usr/share/zoneinfo/Etc/UTC /etc/localtime "
                 "&& echo Etc/UTC > /etc/timezone")
    first = apply(lab_node, tmp_path, RECIPE)
    assert first.ok, first.stdout + first.stderr
    assert first.resources()[0]["changes"] == [
        "set time zone to Europe/Paris (/etc/localtime was Etc/UTC)",
        "update /etc/timezone from 'Etc/UTC' to Europe/Paris"]
    assert sh(lab_node, "readlink /etc/localtime; cat /etc/timezone") == (
        "/usr/share/zoneinfo/Europe/Paris\nEurope/Paris\n")
    assert sh(lab_node, "env -u TZ date -d 2026-01-15T12:00Z +%Z") == "CET\n"
    stamps = sh(lab_node, "stat -c %y /etc/localtime /etc/timezone")
    second = apply(lab_node, tmp_path, RECIPE)
    assert second.resources()[0]["status"] == "up_to_date", second.stdout
    assert sh(lab_node, "stat -c %y /etc/localtime /etc/timezone") == stamps

    # a relative link to the same zone, as timedatectl writes it, is up to date
    sh(lab_node, "ln -sfn ../usr/share/zoneinfo/Europe/Paris /etc/localtime")
    assert apply(lab_node, tmp_path, RECIPE).resources()[0]["status"] == "up_to_date"

    # drift: a copy of another zone's file in place of the link
    sh(lab_node, "rm /etc/localtime && cp /usr/share/zoneinfo/Asia/Tokyo /etc/localtime")
    code, out = converge(lab_node, "plan", place_recipe(lab_node, tmp_path / "recipe.py"))
    assert code == 0, out
    assert "- would set time zone to Europe/Paris (/etc/localtime was a copy of a zone file)" \
        in out
    assert lab_node.run(["test", "-L", "/etc/localtime"]).returncode == 1
    third = apply(lab_node, tmp_path, RECIPE)
    assert third.ok and sh(lab_node, "readlink /etc/localtime") == (
        "/usr/share/zoneinfo/Europe/Paris\n")
    code, out = converge(lab_node, "rollback")  # a copy cannot be put back: it says so
    assert code == 0 and "no rollback: /etc/localtime was not a link to a zone" in out, out

    # rollback of a zone change: the old link and /etc/timezone again
    sh(lab_node, "ln -sfn /usr/share/zoneinfo/Etc/UTC /etc/localtime")
    assert apply(lab_node, tmp_path, RECIPE).ok
    code, out = converge(lab_node, "rollback")
    assert code == 0, out
    assert sh(lab_node, "readlink /etc/localtime; cat /etc/timezone") == (
        "/usr/share/zoneinfo/Etc/UTC\nEurope/Paris\n")
    assert Path("/etc/localtime").resolve() == host_link  # the machine's own, untouched


def test_timezone_unknown_zone(lab_node: Node, tmp_path: Path) -> None:
    sh(lab_node, "ln -sfn /usr/share/zoneinfo/Etc/UTC /etc/localtime")
    run = apply(lab_node, tmp_path, """\
from converge import file, timezone
timezone("Mars/Olympus_Mons")
file("/tmp/after", content="ran\\n")
""")
    assert run.returncode == 1
    got = [(r["status"], r.get("error") or "") for r in run.resources()]
    assert got == [("failed", "unknown time zone 'Mars/Olympus_Mons': there is no file "
                    "/usr/share/zoneinfo/Mars/Olympus_Mons on this machine\ncheck the name "
                    "(ls /usr/share/zoneinfo), or install tzdata"), ("updated", "")]
    assert sh(lab_node, "readlink /etc/localtime") == "/usr/share/zoneinfo/Etc/UTC\n"
