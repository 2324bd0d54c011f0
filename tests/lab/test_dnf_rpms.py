"""The package resource's dnf backend on real RPMs: a lab node with dnf, rpm and
createrepo_c (a layer of Debian's own packages: nothing installed on this machine),
RPMs the test builds there with rpmbuild, a local repository made with createrepo_c,
and `package(..., provider="dnf")` installing, upgrading and removing them, the
packages of one action in one dnf transaction."""

from __future__ import annotations

from pathlib import Path

import pytest

from converge.lab import Lab, Node
from converge.lab.idempotence import check_idempotence

pytestmark = pytest.mark.lab

REPO_DIR = "/srv/rpms"
SPEC = """\
Name: {name}
Version: {version}
Release: 1
Summary: converge lab test package
License: MIT
BuildArch: noarch
AutoReqProv: no
%description
A package for converge's dnf tests.
%install
mkdir -p %{{buildroot}}/usr/share/{name}
echo {version} > %{{buildroot}}/usr/share/{name}/VERSION
%files
/usr/share/{name}/VERSION
"""
# metadata_expire=0: dnf rereads the repository each time (the test adds versions to it;
# converge, like dnf itself, never refreshes metadata on its own)
REPO_FILE = (f"[lab]\nname=lab\nbaseurl=file://{REPO_DIR}\ngpgcheck=0\nenabled=1\n"
             "metadata_expire=0\n")
NAMES = ("convdemo-a", "convdemo-b")


def sh(node: Node, script: str, *args: str) -> str:
    done = node.run(["sh", "-ec", script, "sh", *args])
    assert done.returncode == 0, f"{script}: {done.stdout}{done.stderr}"
    return done.stdout


def publish(node: Node, version: str) -> None:
    """Build both packages at this version with rpmbuild, add them to the repository
    and index it with createrepo_c."""
    for name in NAMES:
        spec = f"/root/rpmbuild/SPECS/{name}-{version}.spec"
        node.write_file(spec, SPEC.format(name=name, version=version).encode())
        sh(node, 'rpmbuild -bb --quiet --define "_topdir /root/rpmbuild" "$1"', spec)
    sh(node, 'mkdir -p "$1" && cp /root/rpmbuild/RPMS/noarch/*-"$2"-1.noarch.rpm "$1"/ '
             '&& createrepo_c -q "$1"', REPO_DIR, version)


def installed(node: Node) -> dict[str, str]:
    done = node.run(["rpm", "-q", "--qf", "%{NAME} %{VERSION}\\n", *NAMES])
    return dict(line.split() for line in done.stdout.splitlines() if "not installed" not in line)


def transactions(node: Node) -> list[tuple[str, int]]:
    """dnf's history, newest first: (action, packages altered) per transaction."""
    done = node.run(["dnf", "-q", "history", "list"])
    found = []
    for line in done.stdout.splitlines():
        fields = [field.strip() for field in line.split("|")]
        if len(fields) == 5 and fields[0].isdigit():
            found.append((fields[3], int(fields[4].split()[0])))
    return found


@pytest.fixture(scope="module")
def rpm_layer(lab: Lab) -> str:
    lab.build_layer("rpm", ["dnf", "rpm", "createrepo-c"])
    return "rpm"


@pytest.fixture
def dnf_node(lab: Lab, rpm_layer: str):
    node = lab.up(1, layers=[rpm_layer])[0]
    try:
        node.write_file("/etc/yum.repos.d/lab.repo", REPO_FILE.encode())
        yield node
    finally:
        lab.down([node.name])


def recipe(tmp_path: Path, action: str) -> Path:
    path = tmp_path / f"{action}.py"
    path.write_text("from converge import package\n"
                    f'package("{NAMES[0]}", provider="dnf", action="{action}")\n'
                    f'package("{NAMES[1]}", provider="dnf", action="{action}")\n')
    return path


def test_dnf_installs_upgrades_and_removes_real_rpms(dnf_node: Node, tmp_path: Path) -> None:
    publish(dnf_node, "1.0")
    result = check_idempotence(dnf_node, recipe(tmp_path, "install"))
    assert result.ok, result.describe()
    assert [r["id"] for r in result.first.with_status("updated")] == \
        [f"package[{name}]" for name in NAMES]
    assert installed(dnf_node) == {name: "1.0" for name in NAMES}
    assert dnf_node.read_file(f"/usr/share/{NAMES[0]}/VERSION") == b"1.0\n"
    assert transactions(dnf_node) == [("Install", 2)]  # both in one dnf transaction

    publish(dnf_node, "2.0")
    result = check_idempotence(dnf_node, recipe(tmp_path, "upgrade"))
    assert result.ok, result.describe()
    changes = [c for r in result.first.with_status("updated") for c in r["changes"]]
    assert changes == [f"upgrade package {name} from 1.0-1 to 2.0-1" for name in NAMES], \
        result.describe()
    assert installed(dnf_node) == {name: "2.0" for name in NAMES}
    assert transactions(dnf_node)[0] == ("Upgrade", 2)

    result = check_idempotence(dnf_node, recipe(tmp_path, "remove"))
    assert result.ok, result.describe()
    changes = [c for r in result.first.with_status("updated") for c in r["changes"]]
    assert changes == [f"remove package {name} (2.0-1)" for name in NAMES]
    assert installed(dnf_node) == {}
    assert transactions(dnf_node)[0] == ("Removed", 2)
    assert len(transactions(dnf_node)) == 3


def test_a_missing_rpm_fails_alone(dnf_node: Node, tmp_path: Path) -> None:
    """A batch with a package no repository has: dnf's transaction fails, each package
    is tried alone, and only the missing one fails, with the backend's message."""
    publish(dnf_node, "1.0")
    path = tmp_path / "missing.py"
    path.write_text("from converge import package\n"
                    f'package("{NAMES[0]}", provider="dnf")\n'
                    'package("convdemo-nowhere", provider="dnf")\n')
    result = check_idempotence(dnf_node, path)
    assert not result.first.ok
    statuses = {r["id"]: r["status"] for r in result.first.resources()}
    assert statuses == {f"package[{NAMES[0]}]": "updated",
                        "package[convdemo-nowhere]": "failed"}, result.describe()
    assert "convdemo-nowhere is not available" in result.first.stdout, result.describe()
    assert installed(dnf_node) == {NAMES[0]: "1.0"}
