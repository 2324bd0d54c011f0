"""yum_repository in a lab node that has Debian's dnf installed (a lab layer:
nothing is installed on this machine): the .repo file converge writes is read
by the real dnf (id, name, enabled, every baseurl of a list), second run up to
date with the mtime kept, drift corrected, plan changing nothing, rollback,
delete.

Peers' reported bugs covered: a list of URLs or keys written as a Python list
or split on every character (ansible/ansible#25867, #32691, #69239): here a
list is one URL per line, indented, and dnf reads each; a list of baseurls not
indented (chef/chef#9133); a changed gpgkey not written (ansible/ansible#80015):
the whole file is compared, so any change rewrites it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from converge.lab import Lab, Node
from converge.lab.idempotence import place_recipe
from tests.e2e.node_helpers import apply, converge, sh

pytestmark = pytest.mark.lab

RECIPE = """\
from converge import yum_repository
yum_repository("cvg-base", ["https://a.example/el/$releasever/", "https://b.example/el/"],
               description="converge base", gpgkey=["file:///etc/pki/k1", "file:///etc/pki/k2"],
               options={"priority": 10, "skip_if_unavailable": True})
yum_repository("cvg-off", mirrorlist="https://m.example/list?arch=$basearch", enabled=False,
               gpgcheck=False)
"""
BASE = "/etc/yum.repos.d/cvg-base.repo"
WANT = """\
# Managed by converge: yum_repository[cvg-base]
[cvg-base]
name=converge base
baseurl=https://a.example/el/$releasever/
        https://b.example/el/
enabled=1
gpgcheck=1
gpgkey=file:///etc/pki/k1
        file:///etc/pki/k2
priority=10
skip_if_unavailable=1
"""


@pytest.fixture
def dnf_node(lab: Lab) -> Node:
    lab.build_layer("dnf", ["dnf"])
    node = lab.up(1, layers=["dnf"])[0]
    try:
        yield node
    finally:
        lab.down([node.name])


def repoinfo(node: Node) -> dict:
    """What dnf read, by repository id, without a network: ``repolist`` lists
    every repository (id, name, status) without loading metadata, and
    ``repoinfo`` of them all disabled (cache only) shows their URLs."""
    repos: dict = {}
    listed = sh(node, "dnf -q --releasever=12 repolist --all 2>/dev/null").splitlines()
    for line in listed[1:]:  # after the header line
        words = line.split()
        repos[words[0]] = {"name": " ".join(words[1:-1]), "status": words[-1]}
    info = sh(node, "dnf -C -q --releasever=12 --disablerepo='*' repoinfo --all 2>/dev/null")
    current: dict = {}
    for line in info.splitlines():
        key, sep, value = line.partition(" : ")
        if sep and key.strip() == "Repo-id":
            current = repos[value.strip()]
        elif sep:
            current[key.strip()] = value.strip()
    return repos


def test_dnf_reads_what_is_written(dnf_node: Node, tmp_path: Path) -> None:
    first = apply(dnf_node, tmp_path, RECIPE)
    assert first.ok, first.stdout + first.stderr
    assert [r["changes"] for r in first.resources()] == [
        ["create " + BASE], ["create /etc/yum.repos.d/cvg-off.repo"]]
    assert dnf_node.read_file(BASE).decode() == WANT
    assert sh(dnf_node, f"stat -c %a {BASE}") == "644\n"
    repos = repoinfo(dnf_node)
    assert repos["cvg-base"]["name"] == "converge base", repos
    assert repos["cvg-base"]["status"] == "enabled", repos
    assert repos["cvg-base"]["Repo-baseurl"] == "https://a.example/el/12/, https://b.example/el/"
    assert repos["cvg-off"]["status"] == "disabled", repos
    assert repos["cvg-off"]["Repo-mirrors"] == "https://m.example/list?arch=x86_64", repos

    stamp = sh(dnf_node, f"stat -c %y {BASE}")
    second = apply(dnf_node, tmp_path, RECIPE)
    assert [r["status"] for r in second.resources()] == ["up_to_date"] * 2, second.stdout
    assert sh(dnf_node, f"stat -c %y {BASE}") == stamp

    # drift: edited by hand; plan shows the diff and changes nothing; apply puts it back
    sh(dnf_node, f"sed -i 's/^enabled=1/enabled=0/' {BASE}")
    code, out = converge(dnf_node, "plan", place_recipe(dnf_node, tmp_path / "recipe.py"))
    assert code == 0, out
    assert f"- would update content in {BASE}" in out and "+enabled=1" in out, out
    assert "enabled=0" in dnf_node.read_file(BASE).decode()
    third = apply(dnf_node, tmp_path, RECIPE)
    assert [r["status"] for r in third.resources()] == ["updated", "up_to_date"]
    assert dnf_node.read_file(BASE).decode() == WANT

    code, out = converge(dnf_node, "rollback")
    assert code == 0, out
    assert repoinfo(dnf_node)["cvg-base"]["status"] == "disabled"

    gone = apply(dnf_node, tmp_path, 'from converge import yum_repository\n'
                 'yum_repository("cvg-base", action="delete")\n', "gone.py")
    assert [r["changes"] for r in gone.resources()] == [["delete " + BASE]]
    assert "cvg-base" not in repoinfo(dnf_node)
