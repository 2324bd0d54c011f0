"""Typed recipes: converge ships py.typed and a stub generated from the resource
types, so mypy flags a misspelt property or a wrong type in a recipe before
anything runs (with converge installed as the README installs it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from converge.stubs import recipe_stub

PACKAGE = Path(__file__).resolve().parents[1] / "converge"


def test_the_stub_is_fresh() -> None:
    assert (PACKAGE / "__init__.pyi").read_text() == recipe_stub(), (
        "converge/__init__.pyi is stale: run `python3 -m converge.stubs > "
        "converge/__init__.pyi`")
    assert (PACKAGE / "py.typed").exists()


GOOD = """\
from converge import execute, file, node, package, service
svc = service("nginx", action=["enable", "start"])
file("/etc/motd", content="hello %s\\n" % node.hostname, mode=0o644, notifies=svc.restart,
     tags=["motd"])
package(["curl", "git"])
execute(["true"], only_if=lambda: True)
"""

BAD = """\
from converge import file, package
file("/etc/motd", contnet="hello\\n")
package("curl", version=3)
"""


def mypy(path: Path) -> subprocess.CompletedProcess:
    # from another folder: converge is found as installed, not as the checkout's folder
    return subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental",
                           "--cache-dir", os.devnull, str(path)], cwd=path.parent,
                          capture_output=True, text=True, timeout=600)


def test_mypy_catches_a_misspelt_property(tmp_path: Path) -> None:
    (tmp_path / "good.py").write_text(GOOD)
    (tmp_path / "bad.py").write_text(BAD)
    good = mypy(tmp_path / "good.py")
    assert good.returncode == 0, good.stdout + good.stderr
    bad = mypy(tmp_path / "bad.py")
    assert bad.returncode == 1
    assert 'bad.py:2: error: Unexpected keyword argument "contnet" for "file"' in bad.stdout
    assert 'bad.py:3: error: Argument "version" to "package" has incompatible type "int"' \
        in bad.stdout


GREETER = PACKAGE.parent / "docs" / "snippets" / "cookbooks" / "greeter"


def test_converge_stubs_knows_a_cookbooks_own_types(tmp_path: Path) -> None:
    """`converge stubs -C COOKBOOK` writes a stand-alone stub with the cookbook's
    types: with MYPYPATH on it, mypy flags a misspelt property of greeting (the
    docs' cookbook type) and still knows converge's own."""
    done = subprocess.run([sys.executable, "-m", "converge", "stubs", "-C", str(GREETER),
                           "-o", str(tmp_path / "typings")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "typings" / "converge" / "__init__.pyi").is_file()
    (tmp_path / "good.py").write_text(
        "from converge import attrs, file, greeting\n"
        "g = greeting('/srv/g.txt', text='hi %s' % attrs.team)\n"
        "file('/etc/motd', content='x', notifies=g.create)\n")
    (tmp_path / "bad.py").write_text(
        "from converge import file, greeting\n"
        "greeting('/srv/g.txt', txet='hi')\n"
        "file('/etc/motd', contnet='x')\n")
    env = dict(os.environ, MYPYPATH=str(tmp_path / "typings"))
    good = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental",
                           "--cache-dir", os.devnull, "good.py"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert good.returncode == 0, good.stdout + good.stderr
    bad = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental",
                          "--cache-dir", os.devnull, "bad.py"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert 'bad.py:2: error: Unexpected keyword argument "txet" for "greeting"' in bad.stdout
    assert 'bad.py:3: error: Unexpected keyword argument "contnet" for "file"' in bad.stdout
