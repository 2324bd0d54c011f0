"""Resource types from outside converge, pushed over SSH to lab nodes: a cookbook's
own type written by `converge new resource`, and one from an installed package's
`converge.resources` entry point (installed into a virtual environment the test
makes). Each converges, the second run is up to date, rollback restores the file;
a clash with a built-in names both files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

from converge.lab import Lab, Node
from tests.banner_package import banner_package

pytestmark = pytest.mark.lab



def run(argv: List[str], cwd: Path, python: str = sys.executable) -> subprocess.CompletedProcess:
    return subprocess.run([python, "-m", "converge", *argv], cwd=cwd, capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL, env=dict(os.environ))


def _inventory(lab: Lab, node: Node, path: Path) -> None:
    path.write_text(json.dumps({"hosts": {node.name: {
        "address": node.address, "user": "root", "key": str(lab.key_path),
        "known_hosts": str(lab.known_hosts_path)}}}))


def test_a_cookbook_type_over_ssh(lab: Lab, lab_node: Node, tmp_path: Path) -> None:
    assert run(["new", "cookbook", "demo"], tmp_path).returncode == 0
    made = run(["new", "resource", "greeting", "--cookbook", "demo"], tmp_path)
    assert made.returncode == 0, made.stderr
    _inventory(lab, lab_node, tmp_path / "inventory.yml")
    push = ["apply", "demo", "-i", "inventory.yml"]
    first = run(push, tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "* greeting[/srv/demo/greeting.txt] action create" in first.stdout
    assert lab_node.read_file("/srv/demo/greeting.txt") == b"written by the greeting resource\n"
    second = run(push, tmp_path)
    assert "greeting[/srv/demo/greeting.txt] action create (up to date)" in second.stdout
    assert "0 updated" in second.stdout.splitlines()[-1]

    # a changed type is what runs next: the plan carries its code
    source = tmp_path / "demo/resources/greeting.py"
    source.write_text(source.read_text().replace('"\\n").encode("utf-8")',
                                                 '"!\\n").encode("utf-8")'))
    third = run(push, tmp_path)
    assert third.returncode == 0, third.stdout + third.stderr
    assert lab_node.read_file("/srv/demo/greeting.txt") == b"written by the greeting resource!\n"

    back = run(["rollback", "--yes", "-i", "inventory.yml"], tmp_path)
    assert back.returncode == 0, back.stdout + back.stderr
    assert lab_node.read_file("/srv/demo/greeting.txt") == b"written by the greeting resource\n"

    listed = run(["resources", "-C", "demo"], tmp_path)
    assert "greeting: Keep a file holding one text, followed by a newline. (from " \
        "demo/resources/greeting.py)" in listed.stdout


def test_a_type_from_an_installed_package_over_ssh(lab: Lab, lab_node: Node,
                                                   tmp_path: Path) -> None:
    package = banner_package(tmp_path)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                   check=True, timeout=300)
    python = str(venv / "bin/python")
    installed = subprocess.run([python, "-m", "pip", "install", "-q", "--no-index",
                                "--no-build-isolation", "--no-deps", str(package)],
                               capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    (tmp_path / "recipe.py").write_text(
        'from converge import banner\nbanner("/etc/banner", text="prod")\n')
    _inventory(lab, lab_node, tmp_path / "inventory.yml")
    push = ["apply", "recipe.py", "-i", "inventory.yml"]
    first = run(push, tmp_path, python)
    assert first.returncode == 0, first.stdout + first.stderr
    assert lab_node.read_file("/etc/banner") == b"** prod **\n"
    assert "(up to date)" in run(push, tmp_path, python).stdout
    back = run(["rollback", "--yes", "-i", "inventory.yml"], tmp_path, python)
    assert back.returncode == 0, back.stdout + back.stderr
    assert lab_node.run(["test", "-e", "/etc/banner"]).returncode == 1
    listed = run(["resources", "banner"], tmp_path, python)
    assert "banner: One line of text in a file. (from " in listed.stdout


def test_a_type_without_actions_is_one_error_naming_its_file(tmp_path: Path) -> None:
    book = tmp_path / "book"
    (book / "resources").mkdir(parents=True)
    (book / "resources/motd2.py").write_text(
        "from converge.resources._base import Resource\n\n\n"
        "class Motd2(Resource, type_name='motd2'):\n    pass\n")
    (book / "recipe.py").write_text("")
    done = run(["plan", "book"], tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("error: book/resources/motd2.py:4: TypeError: resource "
                                  "type 'motd2' declares no actions")


def test_a_type_that_clashes_names_both_files(tmp_path: Path) -> None:
    book = tmp_path / "book"
    (book / "resources").mkdir(parents=True)
    (book / "resources/file.py").write_text("# my own file type\n")
    (book / "recipe.py").write_text('from converge import file\nfile("/tmp/x", content="")\n')
    done = run(["plan", "book"], tmp_path)
    assert done.returncode == 1
    assert "resource type 'file' in book/resources/file.py clashes with the one in " in \
        done.stderr and "converge/resources/file.py" in done.stderr


def test_a_composite_type_over_ssh(lab: Lab, lab_node: Node, tmp_path: Path) -> None:
    """The docs' website cookbook, whose site type is a composite, pushed to a node:
    inner resources indented under each site, the second run up to date, a site
    notified to restart runs that action's resources, rollback restores."""
    import shutil

    docs = Path(__file__).resolve().parents[2] / "docs/snippets/cookbooks/website"
    shutil.copytree(docs, tmp_path / "website")
    _inventory(lab, lab_node, tmp_path / "inventory.yml")
    push = ["apply", "website", "-i", "inventory.yml", "--json", "report.json"]
    first = run(push, tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    lines = first.stdout.splitlines()
    head = lines.index("  * site[blog] action create")
    assert lines[head + 1:head + 4] == [
        "    * directory[/srv/sites/blog] action create",
        "      - create new directory /srv/sites/blog",
        "      - change mode from none to '0755'"]
    assert "    * systemd_unit[site-blog.service] action create" in lines
    assert lab_node.read_file("/etc/sites/blog.conf") == (
        b"# blog, managed by converge\nlisten 8081\nroot /srv/sites/blog\n")
    assert lab_node.run(["readlink", "/etc/sites/enabled/shop.conf"]).stdout == \
        "/etc/sites/shop.conf\n"
    report = json.loads((tmp_path / "report.json").read_text())
    entries = report["hosts"][lab_node.name]["resources"]
    assert {(e["id"], e["status"]) for e in entries if e.get("composite")} == {
        ("site[blog]", "updated"), ("site[shop]", "updated")}
    assert {e.get("parent") for e in entries if not e.get("composite")} == {
        "site[blog]", "site[shop]"}

    second = run(push, tmp_path)
    assert "  * site[blog] action create (up to date)" in second.stdout
    assert "0 updated" in second.stdout.splitlines()[-1], second.stdout

    # notified: a file that changes restarts the blog (no systemd in a node: it fails
    # with systemd's words, under the site's line)
    recipe = tmp_path / "website/recipe.py"
    recipe.write_text(recipe.read_text().replace(
        "from converge import attrs, site\n", "from converge import attrs, file, site\n")
        + 'file("/etc/sites/common.conf", content="gzip on\\n", notifies=("restart", '
          '"site[blog]"))\n')
    third = run(push, tmp_path)
    out = third.stdout.splitlines()
    notified = out.index("  * site[blog] action restart (failed)")
    assert out[notified - 3:notified - 1] == [
        "  * file[/etc/sites/common.conf] action create",
        "    - create new file /etc/sites/common.conf"]
    assert out[notified + 1:notified + 4] == [
        "    ! website/recipe.py:6: systemd_unit[site-blog.service] failed",
        "    * systemd_unit[site-blog.service] action restart (failed)",
        "      ! website/resources/site.py:50: cannot restart site-blog.service: systemd is "
        "not running on this machine (PID 1 is not systemd); units can only be enabled or "
        "disabled here"]
    assert "site[shop] action restart" not in third.stdout

    back = run(["rollback", "--yes", "-i", "inventory.yml"], tmp_path)
    assert back.returncode == 0, back.stdout + back.stderr
    assert lab_node.run(["test", "-e", "/etc/sites/common.conf"]).returncode == 1


def test_a_syntax_error_in_a_type_names_its_line(tmp_path: Path) -> None:
    book = tmp_path / "book"
    (book / "resources").mkdir(parents=True)
    (book / "resources/motd3.py").write_text("import os\n\nclass Motd3(:\n    pass\n")
    (book / "recipe.py").write_text("")
    done = run(["plan", "book"], tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("error: book/resources/motd3.py:3: SyntaxError: ")
