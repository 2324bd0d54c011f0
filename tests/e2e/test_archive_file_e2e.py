"""archive_file in a lab node, through the real CLI, with tar and zip archives the
test builds: first run, second run up to date (mtimes kept), plan changing
nothing, a new archive re-extracted with overwrite='auto', drift corrected, an
escaping archive refused before the destination exists, a link planted in the
destination by an unprivileged user never followed, and rollback."""

from __future__ import annotations

from pathlib import Path

import pytest

from converge.lab import Node
from converge.lab.idempotence import place_recipe
from tests.e2e.node_helpers import apply, converge, sh
from tests.resources.test_archive_file import APP, tar_bytes, zip_bytes

pytestmark = pytest.mark.lab

RECIPE = """\
from converge import archive_file
archive_file("/srv/releases/app.tar.gz", "/opt/app", overwrite="auto", owner="www-data",
             group="www-data", strip_components=1)
archive_file("/srv/releases/site.zip", "/var/www/site", mode="0750")
"""


def listing(node: Node, path: str) -> str:
    return sh(node, f"find {path} -printf '%p %y %m %u %TT\\n' | sort")


def test_archive_file_in_a_node(lab_node: Node, tmp_path: Path) -> None:
    sh(lab_node, "mkdir -p /srv/releases /var/www")
    lab_node.write_file("/srv/releases/app.tar.gz", tar_bytes(APP))
    lab_node.write_file("/srv/releases/site.zip", zip_bytes([("index.html", "file", "<p>1</p>\n")]))
    first = apply(lab_node, tmp_path, RECIPE)
    assert first.ok, first.stdout + first.stderr
    assert [r["changes"][0] for r in first.resources()] == [
        "create directory /opt/app", "create directory /var/www/site"]
    assert sh(lab_node, "stat -c '%U %a' /opt/app/bin/run /var/www/site") == (
        "www-data 755\nroot 750\n")
    assert sh(lab_node, "readlink /opt/app/current; cat /var/www/site/index.html") == (
        "bin/run\n<p>1</p>\n")
    before = listing(lab_node, "/opt/app") + listing(lab_node, "/var/www/site")
    second = apply(lab_node, tmp_path, RECIPE)
    assert [r["status"] for r in second.resources()] == ["up_to_date", "up_to_date"]
    assert listing(lab_node, "/opt/app") + listing(lab_node, "/var/www/site") == before

    # a new release, and drift by hand: plan shows both and changes nothing
    lab_node.write_file("/srv/releases/app.tar.gz",
                        tar_bytes(APP[:-1] + [("app-1.0/VERSION", "file", "1.1\n")]))
    sh(lab_node, "chmod 0777 /var/www/site")
    drifted = listing(lab_node, "/opt/app") + listing(lab_node, "/var/www/site")
    code, out = converge(lab_node, "plan", place_recipe(lab_node, tmp_path / "recipe.py"))
    assert code == 0, out
    assert "(its checksum changed from " in out and "change mode from '0777' to '0750'" in out
    assert listing(lab_node, "/opt/app") + listing(lab_node, "/var/www/site") == drifted
    third = apply(lab_node, tmp_path, RECIPE)
    assert third.ok and [r["status"] for r in third.resources()] == ["updated", "updated"]
    assert sh(lab_node, "cat /opt/app/VERSION; stat -c %a /var/www/site") == "1.1\n750\n"

    # rollback: the files the second extraction replaced or added, and the mode
    code, out = converge(lab_node, "rollback")
    assert code == 0, out
    assert lab_node.run(["test", "-e", "/opt/app/VERSION"]).returncode == 1
    assert sh(lab_node, "stat -c %a /var/www/site") == "777\n"
    code, out = converge(lab_node, "rollback")  # again: nothing left to do
    assert code == 0 and "  - " not in out, out


def test_hostile_archives_and_destinations(lab_node: Node, tmp_path: Path) -> None:
    sh(lab_node, "useradd mallory && mkdir -p /srv/www /srv/in && chown mallory /srv/www "
                 "&& su mallory -s /bin/sh -c 'ln -s /etc/cron.d /srv/www/conf'")
    cron_d = sh(lab_node, "ls -A /etc/cron.d")
    lab_node.write_file("/srv/in/site.tgz", tar_bytes([("conf/", "dir", ""),
                                                       ("conf/job", "file", "* * * * * root x\n")]))
    lab_node.write_file("/srv/in/evil.tgz", tar_bytes([("ok", "file", "x"),
                                                       ("../../etc/evil", "file", "x")]))
    lab_node.write_file("/srv/in/link.zip", zip_bytes([("l", "symlink", "../../../etc")]))
    recipe = """\
from converge import archive_file, file
archive_file("/srv/in/site.tgz", "/srv/www", overwrite=True)
archive_file("/srv/in/evil.tgz", "/opt/evil")
archive_file("/srv/in/link.zip", "/opt/link")
file("/tmp/after", content="ran\\n")
"""
    run = apply(lab_node, tmp_path, recipe)
    got = {r["id"]: (r["status"], r.get("error") or "") for r in run.resources()}
    # refused by the path walker (agent/paths.py) as soon as a path goes through the link
    assert got["archive_file[/srv/in/site.tgz]"][0] == "failed"
    assert got["archive_file[/srv/in/site.tgz]"][1].startswith(
        "refusing to follow the symbolic link /srv/www/conf -> /etc/cron.d: it is owned by "
        "mallory")
    assert got["archive_file[/srv/in/evil.tgz]"][1].startswith(
        "archive member '../../etc/evil' has a '..' component, which climbs out of the "
        "destination: nothing was extracted")
    assert got["archive_file[/srv/in/link.zip]"][1].startswith(
        "archive member 'l' is a link to '../../../etc', which resolves outside the destination")
    assert got["file[/tmp/after]"][0] == "updated"
    assert sh(lab_node, "ls -A /etc/cron.d") == cron_d
    assert lab_node.run(["test", "-e", "/etc/evil"]).returncode == 1
    assert lab_node.run(["test", "-e", "/opt/evil"]).returncode == 1
    assert lab_node.run(["test", "-e", "/opt/link"]).returncode == 1
