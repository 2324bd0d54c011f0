"""YAML is read with safe_load only: a scan of converge/ for any other loader,
and an inventory whose tag would run a command if it were loaded unsafely."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import List

import converge

PACKAGE = Path(converge.__file__).parent
# yaml's API that builds no Python objects from tags
SAFE = {"safe_load", "safe_load_all", "safe_dump", "safe_dump_all", "YAMLError",
        "MarkedYAMLError", "ConstructorError", "SafeLoader", "CSafeLoader", "compose",
        "compose_all"}


def yaml_uses(tree: ast.AST) -> List[str]:
    """Every ``yaml.X`` and ``from yaml import X`` in a module, and each call's
    Loader= argument."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id == "yaml":
            found.append(node.attr)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("yaml"):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.keyword) and node.arg == "Loader":
            found.append(ast.unparse(node.value).replace("yaml.", ""))
    return found


def test_converge_reads_yaml_only_with_safe_load() -> None:
    unsafe = {}
    scanned = 0
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text()
        if "yaml" not in text:
            continue
        scanned += 1
        bad = [name for name in yaml_uses(ast.parse(text)) if name not in SAFE]
        if bad:
            unsafe[str(path.relative_to(PACKAGE))] = bad
    assert scanned >= 2  # inventory.py and recipe.py at least
    assert unsafe == {}


def test_the_scan_sees_unsafe_loaders() -> None:
    code = ("import yaml\nyaml.load(t)\nyaml.unsafe_load(t)\nyaml.full_load(t)\n"
            "yaml.compose(t, Loader=yaml.Loader)\nfrom yaml import UnsafeLoader\n")
    unsafe = sorted(n for n in yaml_uses(ast.parse(code)) if n not in SAFE)
    assert unsafe == ["Loader", "Loader", "UnsafeLoader", "full_load", "load", "unsafe_load"]


def test_a_python_tag_in_an_inventory_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    inventory = tmp_path / "inventory.yml"
    inventory.write_text("hosts:\n  web1:\n    vars:\n      x: !!python/object/apply:os.system"
                         " [\"touch %s\"]\n" % marker)
    recipe = tmp_path / "recipe.py"
    recipe.write_text('from converge import file\nfile("/srv/x", content="x")\n')
    proc = subprocess.run([sys.executable, "-m", "converge", "apply", "recipe.py", "-i",
                           "inventory.yml"], cwd=tmp_path, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=300)
    assert proc.returncode == 1
    assert proc.stderr == (
        "error: inventory.yml:4: invalid YAML: could not determine a constructor for the tag "
        "'tag:yaml.org,2002:python/object/apply:os.system'\n  inventories are read with "
        "yaml.safe_load, which builds no Python objects and runs nothing: remove the tag\n")
    assert not marker.exists()


def test_a_python_tag_in_attributes_yaml_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    (tmp_path / "attributes.yaml").write_text(
        "x: !!python/object/apply:os.system [\"touch %s\"]\n" % marker)
    (tmp_path / "recipe.py").write_text("from converge import attrs\n")
    proc = subprocess.run([sys.executable, "-m", "converge", "plan", "--root", str(tmp_path),
                           "recipe.py"], cwd=tmp_path, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=300)
    assert proc.returncode == 1
    assert "attributes.yaml:1: invalid YAML: could not determine a constructor" in proc.stderr
    assert not marker.exists()


def test_a_python_tag_in_an_attribute_on_the_command_line_is_refused(tmp_path: Path) -> None:
    """``-a`` values are YAML too: a tag safe_load cannot build is refused, as in an
    inventory (it used to be taken silently as the text of the tag)."""
    marker = tmp_path / "pwned"
    (tmp_path / "recipe.py").write_text(
        "from converge import attrs, file\nfile('/srv/x', content=str(attrs.x))\n")
    proc = subprocess.run([sys.executable, "-m", "converge", "plan", "--root", str(tmp_path),
                           "recipe.py", "-a", "x=!!python/object/apply:os.system "
                           "['touch %s']" % marker], cwd=tmp_path, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=300)
    assert proc.returncode == 1, proc.stdout
    lines = proc.stderr.splitlines()
    assert lines[0] == (
        "error: -a x=!!python/object/apply:os.system ['touch %s']: invalid YAML: could not "
        "determine a constructor for the tag 'tag:yaml.org,2002:python/object/apply:os.system'"
        % marker)
    assert "yaml.safe_load, which builds no Python objects" in lines[1]
    assert proc.stdout == ""  # refused before anything was planned
    assert not marker.exists()


def test_command_line_values_that_are_not_yaml_are_text() -> None:
    from converge.recipe import parse_assignments

    assert parse_assignments(["a=[unclosed", "b=x: y: z", "c='!!python/x'", "d=[1, 2]"]) \
        == {"a": "[unclosed", "b": "x: y: z", "c": "!!python/x", "d": [1, 2]}
