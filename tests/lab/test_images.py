"""Nodes from lab images (Debian 11, 12, 13 built with mmdebstrap): each runs a recipe
over SSH on its own release's python3, `converge test --image` shows the matrix, and
nothing of this machine shows in them.

The images are built once per machine (the image directory outlives the session: see
converge/lab/images.py) and the three builds run side by side."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from converge.lab import Lab, LabError, Node
from converge.lab.idempotence import push_to_node
from converge.lab.images import RELEASES, Images
from converge.lab.node import IMAGE_PYTHONPATH

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parent.parent.parent
PYTHONS = {"debian-11": "3.9", "debian-12": "3.11", "debian-13": "3.13"}
VERSIONS = {"debian-11": "11", "debian-12": "12", "debian-13": "13"}
RECIPE = """\
from converge import file, line, sysctl
file("/etc/motd", content="built by converge\\n", mode="0644")
line("/etc/ssh/sshd_config", "MaxAuthTries 4")
sysctl("vm.swappiness", value=13)
"""


@pytest.fixture(scope="session")
def images(lab: Lab) -> Images:
    """The three images, built side by side if this machine has not built them yet."""
    with ThreadPoolExecutor(len(RELEASES)) as pool:
        list(pool.map(lambda name: lab.images.ensure(name, echo=lambda _: None), RELEASES))
    return lab.images


@pytest.fixture
def image_node(request: pytest.FixtureRequest, lab: Lab, images: Images):
    node = lab.up(1, image=request.param)[0]
    try:
        yield node
    finally:
        lab.down([node.name])


def ok(node: Node, *argv: str) -> str:
    done = node.run(list(argv))
    assert done.returncode == 0, f"{argv}: {done.stderr}"
    return done.stdout


@pytest.mark.parametrize("image_node", list(RELEASES), indirect=True)
def test_a_node_from_each_image_runs_a_recipe_over_ssh(image_node: Node, lab: Lab,
                                                       tmp_path: Path) -> None:
    image = image_node.image
    assert f'VERSION_ID="{VERSIONS[image]}"' in ok(image_node, "cat", "/etc/os-release")
    assert ok(image_node, "python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"
              ).strip() == PYTHONS[image]
    # converge's package, read-only, for the image's own python3
    assert ok(image_node, "python3", "-c", "import converge.agent as a; print(a.__file__)"
              ).startswith(IMAGE_PYTHONPATH + "/converge/")
    assert image_node.run(["touch", f"{IMAGE_PYTHONPATH}/converge/probe"]).returncode != 0
    recipe = tmp_path / "recipe.py"
    recipe.write_text(RECIPE)
    first = push_to_node(lab, image_node, recipe, tmp_path / "first.json")
    assert first.ok, first.stdout + first.stderr
    assert len(first.with_status("updated")) == 3, first.stdout
    second = push_to_node(lab, image_node, recipe, tmp_path / "second.json")
    assert second.ok and len(second.with_status("up_to_date")) == 3, second.stdout
    assert image_node.read_file("/etc/motd") == b"built by converge\n"
    assert image_node.read_file("/proc/sys/vm/swappiness") == b"13\n"
    # the runs' store and state stayed beside the reports, not in this machine's
    assert (tmp_path / "runs.db").exists()


def test_converge_test_on_three_images_shows_a_table(lab: Lab, images: Images) -> None:
    env = {**os.environ, "CONVERGE_LAB_DIR": str(lab.directory),
           "CONVERGE_LAB_IMAGES": str(images.directory)}
    done = subprocess.run(
        [sys.executable, "-m", "converge", "test", "cookbooks/sysstat",
         "--image", "debian-11,debian-12,debian-13"],
        cwd=REPO, capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    table = done.stdout[done.stdout.index("IMAGE "):].splitlines()
    assert table[0].split() == ["IMAGE", "NODE", "RESULT"]
    rows = [row.split(None, 2) for row in table[1:]]
    assert [row[0] for row in rows] == list(RELEASES)
    assert all(row[2] == "ok: idempotent: the second run changed nothing" for row in rows)
    readme = (REPO / "README.md").read_text()
    assert "\n".join("    " + row for row in table) in readme  # the README shows this run
    # each release installed its own sysstat, mirrored into the image's repository
    versions = {image: [p.name.split("_")[1] for p in images.repo(image).debs()
                        if p.name.startswith("sysstat_")] for image in RELEASES}
    assert all(len(found) == 1 for found in versions.values()), versions
    assert len({found[0] for found in versions.values()}) == 3, versions


@pytest.mark.parametrize("image_node", ["debian-12"], indirect=True)
def test_nothing_of_this_machine_shows_in_an_image_node(image_node: Node, images: Images,
                                                        tmp_path: Path) -> None:
    marker = tmp_path / "host-only"
    marker.write_text("this machine\n")
    assert image_node.run(["test", "-e", str(marker)]).returncode == 1
    # this machine's /usr is not the node's: mmdebstrap is installed here, not there
    assert Path("/usr/bin/mmdebstrap").exists()
    assert image_node.run(["test", "-e", "/usr/bin/mmdebstrap"]).returncode == 1
    assert image_node.run(["dpkg", "-s", "mmdebstrap"]).returncode == 1
    # nor its converge state, nor a home of it
    assert image_node.run(["test", "-e", "/var/lib/converge"]).returncode == 1
    assert ok(image_node, "ls", "-A", "/root/.ssh").split() == ["authorized_keys"]
    # the root is one overlay whose only lower layer is the image, never a live directory
    image = images.find("debian-12")
    assert image is not None
    mounts = ok(image_node, "cat", "/proc/self/mountinfo").splitlines()
    root = [line for line in mounts if line.split()[4] == "/"]
    assert len(root) == 1 and " - overlay overlay " in root[0]
    assert f"lowerdir={image.rootfs}," in root[0]
    # what a node writes stays in its own upper layer: the image is unchanged
    ok(image_node, "sh", "-c", "echo node > /usr/bin/converge-probe && rm /etc/debian_version")
    assert not (image.rootfs / "usr/bin/converge-probe").exists()
    assert (image.rootfs / "etc/debian_version").exists()
    # no host keys in the image; the node's own key, not another node's
    assert not list((image.rootfs / "etc/ssh").glob("ssh_host_*"))


@pytest.mark.parametrize("image_node", ["debian-11"], indirect=True)
def test_an_image_node_keeps_the_lab_rules(image_node: Node) -> None:
    """No capability that reaches past the namespace; apt sees only the image's
    repository; /tmp is 1777 (apt's _apt user writes there)."""
    status = ok(image_node, "cat", "/proc/1/status")
    bounding = int(next(line for line in status.splitlines()
                        if line.startswith("CapBnd:")).split()[1], 16)
    assert not bounding & (1 << 25)  # sys_time
    assert not bounding & (1 << 16)  # sys_module
    assert ok(image_node, "stat", "-c", "%a", "/tmp").strip() == "1777"
    assert ok(image_node, "cat", "/etc/apt/sources.list").startswith("deb [trusted=yes] file:")
    assert ok(image_node, "ls", "/etc/apt/sources.list.d") == ""


def test_lab_up_with_an_image_on_the_command_line(lab: Lab, images: Images) -> None:
    env = {**os.environ, "CONVERGE_LAB_DIR": str(lab.directory),
           "CONVERGE_LAB_IMAGES": str(images.directory)}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "converge", "lab", *args, "--name",
                               "images-cli"], env=env, capture_output=True, text=True,
                              timeout=300)

    try:
        up = cli("up", "2", "--image", "debian-13")
        assert up.returncode == 0, up.stderr
        assert [line.split("\t")[0] for line in up.stdout.splitlines()] == ["node1", "node2"]
        listed = [line.split("\t") for line in cli("ls").stdout.splitlines()]
        assert [(row[0], row[3], row[4]) for row in listed] == [("node1", "up", "debian-13"),
                                                              ("node2", "up", "debian-13")]
        node = Lab(lab.directory, name="images-cli").node("node2")
        assert 'VERSION_ID="13"' in ok(node, "cat", "/etc/os-release")
        unknown = cli("up", "--image", "debian-10")
        assert unknown.returncode == 1
        assert unknown.stderr == ("error: no image named 'debian-10': choose one of "
                                  "debian-11, debian-12, debian-13\n")
    finally:
        assert cli("down").returncode == 0


@pytest.mark.parametrize("image_node", ["debian-11"], indirect=True)
def test_an_image_in_use_is_not_removed(image_node: Node, images: Images) -> None:
    """overlayfs is undefined when a lower layer changes under a mount."""
    image = images.find("debian-11")
    assert image is not None
    with pytest.raises(LabError, match=r"image debian-11 \(.*\) is in use by a running lab "
                                       r"node \(process \d+\): take its nodes down first"):
        images.remove("debian-11")
    with pytest.raises(LabError, match="is in use by a running lab node"):
        images.build("debian-11", rebuild=True, echo=lambda _: None)
    assert (image.rootfs / "etc/os-release").exists()
    assert ok(image_node, "cat", "/etc/debian_version").startswith("11.")
