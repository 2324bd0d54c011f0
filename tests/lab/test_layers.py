"""Extra lower layers: packages installed once in a throwaway node, shared by many."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from converge.lab import Lab, LabError

pytestmark = pytest.mark.lab

POSTINST = "#!/bin/sh\nset -e\necho installed-by-postinst > /etc/layer-demo.conf\n"


@pytest.fixture(scope="module")
def demo_layer(lab: Lab) -> Path:
    lab.repo.build_deb("layer-demo", "1.0-1",
                       files={"/usr/share/layer-demo/README": b"from the layer\n"},
                       scripts={"postinst": POSTINST})
    return lab.build_layer("demo", ["layer-demo"])


def test_layer_holds_the_package_and_nothing_of_its_builder(lab: Lab, demo_layer: Path) -> None:
    assert (demo_layer / "usr/share/layer-demo/README").read_bytes() == b"from the layer\n"
    assert (demo_layer / "etc/layer-demo.conf").read_text() == "installed-by-postinst\n"
    assert "Package: layer-demo" in (demo_layer / "var/lib/dpkg/status").read_text()
    for seeded in ("etc/hostname", "etc/ssh/sshd_config", "etc/apt/sources.list",
                   "usr/sbin/policy-rc.d", "var/lib/apt/lists"):
        assert not os.path.lexists(demo_layer / seeded), seeded
    assert sorted(p.name for p in demo_layer.iterdir()) == ["etc", "layer.json", "usr", "var"]
    assert "demo" in lab.layers()
    assert not Path("/usr/share/layer-demo").exists()  # this machine is untouched


def test_nodes_with_the_layer_see_it_and_cannot_change_it(lab: Lab, demo_layer: Path) -> None:
    with_layer, = lab.up(1, layers=["demo"])
    without, = lab.up(1)
    try:
        assert with_layer.read_file("/usr/share/layer-demo/README") == b"from the layer\n"
        assert with_layer.run(["dpkg", "-s", "layer-demo"]).returncode == 0
        assert with_layer.read_file("/etc/hostname") == f"{with_layer.name}\n".encode()
        with_layer.write_file("/usr/share/layer-demo/README", b"changed in the node\n")
        assert with_layer.run(["apt-get", "remove", "-y", "-qq", "layer-demo"]).returncode == 0
        assert without.run(["test", "-e", "/usr/share/layer-demo"]).returncode == 1
        assert without.run(["dpkg", "-s", "layer-demo"]).returncode == 1
    finally:
        lab.down([with_layer.name, without.name])
    assert (demo_layer / "usr/share/layer-demo/README").read_bytes() == b"from the layer\n"
    assert "Package: layer-demo" in (demo_layer / "var/lib/dpkg/status").read_text()


def test_a_built_layer_is_reused_until_what_it_holds_changes(lab: Lab, demo_layer: Path) -> None:
    stamp = (demo_layer / "layer.json").stat().st_mtime_ns
    assert lab.build_layer("demo", ["layer-demo"]) == demo_layer
    assert (demo_layer / "layer.json").stat().st_mtime_ns == stamp


def test_unknown_and_badly_named_layers_are_refused(lab: Lab) -> None:
    with pytest.raises(LabError, match="no lab layer named 'nope'.*build it first"):
        lab.up(1, layers=["nope"])
    with pytest.raises(LabError, match="layer name '../x'"):
        lab.build_layer("../x", ["layer-demo"])
    with pytest.raises(LabError, match="at least one package"):
        lab.build_layer("empty", [])
