"""Where ``source=`` and templates may come from (issue 12 item 15): the recipe's
folder and its cookbook's files/ and templates/, plus the folders the recipe names
with ``allow_sources()``. ``..``, an absolute path, a symlink or a jinja2
``{% include %}`` that resolves anywhere else is refused at compile time, whatever
built the name: a fact from the target, an attribute."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Optional

import pytest

from converge.errors import PropertyError, RecipeError
from converge.recipe import compile_recipe

SECRET = "controller secret\n"


@pytest.fixture
def cookbook(tmp_path: Path) -> Path:
    """tmp/cookbooks/motd (files/, templates/, recipes/) and tmp/secret beside it."""
    (tmp_path / "secret").write_text(SECRET)
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "banner").write_text("shared banner\n")
    book = tmp_path / "cookbooks" / "motd"
    for folder in ("files/motd", "templates/parts", "recipes"):
        (book / folder).mkdir(parents=True)
    (book / "files" / "motd" / "debian").write_text("Debian motd\n")
    (book / "templates" / "motd.j2").write_text("{% include 'parts/head.j2' %}body\n")
    (book / "templates" / "parts" / "head.j2").write_text("head {{ node.platform }}\n")
    return book


def unplain(value: Any) -> Any:
    """A file's content as the plan carries it: text, or bytes as hex."""
    if isinstance(value, dict) and "__bytes__" in value:
        return bytes.fromhex(value["__bytes__"]).decode()
    return value


def compile_text(book: Path, text: str, facts: Optional[Dict[str, Any]] = None,
                 name: str = "recipe.py") -> Dict[str, Any]:
    recipe = book / name
    recipe.write_text("from converge import allow_sources, file, include_recipe, node, "
                      "template\n" + text)
    plan = compile_recipe(recipe, facts=lambda: dict(facts or {"platform": "debian"}))
    return {s.id: unplain(s.props.get("content")) for s in plan.steps}


def refused(book: Path, text: str, facts: Optional[Dict[str, Any]] = None,
            name: str = "recipe.py") -> str:
    with pytest.raises((PropertyError, RecipeError)) as caught:
        compile_text(book, text, facts, name)
    message = str(caught.value)
    assert SECRET not in message
    return message


def test_sources_inside_the_cookbook_are_found(cookbook: Path) -> None:
    contents = compile_text(cookbook, 'file("/etc/motd", source="motd/%s" % node.platform)\n'
                            'template("/etc/issue", source="motd.j2")\n')
    assert contents == {"file[/etc/motd]": "Debian motd\n",
                        "template[/etc/issue]": "head debian\nbody\n"}


def test_a_recipe_in_recipes_finds_the_cookbook_s_files(cookbook: Path) -> None:
    contents = compile_text(cookbook, 'file("/etc/motd", source="motd/debian")\n'
                            'template("/etc/issue", source="motd.j2")\n',
                            name="recipes/server.py")
    assert contents == {"file[/etc/motd]": "Debian motd\n",
                        "template[/etc/issue]": "head debian\nbody\n"}


@pytest.mark.parametrize("platform", [
    pytest.param("../../../../secret", id="dotdot"),
    pytest.param("../" * 40 + "%s", id="dotdot-to-absolute"),
])
def test_a_fact_cannot_steer_a_source_out_of_the_cookbook(cookbook: Path, platform: str) -> None:
    """/etc/os-release on the target says ID=../../..: node.platform builds the
    source's name, and a file of the controller would have gone to the target."""
    platform = platform.replace("%s", str(cookbook.parent.parent / "secret").lstrip("/"))
    message = refused(cookbook, 'file("/etc/motd", source="motd/%s" % node.platform)\n',
                      {"platform": platform})
    assert "source 'motd/%s' is %s, outside the folders sources come from" % (
        platform, os.path.realpath(cookbook.parent.parent / "secret")) in message
    assert 'allow_sources("/srv/shared")' in message


@pytest.mark.parametrize("line, what", [
    pytest.param('file("/etc/motd", source="%(secret)s")', "source", id="absolute"),
    pytest.param('file("/etc/motd", source="../../secret")', "source", id="dotdot"),
    pytest.param('template("/etc/motd", source="%(secret)s.j2")', "source", id="template"),
    pytest.param('file("/etc/motd", source="link")', "source", id="symlink-in-files"),
    pytest.param('template("/etc/motd", source="evil.j2")', "template", id="include-dotdot"),
    pytest.param('template("/etc/motd", source="evil-abs.j2")', "template",
                 id="include-absolute"),
])
def test_leaving_the_cookbook_is_refused(cookbook: Path, line: str, what: str) -> None:
    secret = cookbook.parent.parent / "secret"
    (cookbook.parent.parent / "secret.j2").write_text(SECRET)
    (cookbook / "files" / "link").symlink_to(secret)
    (cookbook / "templates" / "evil.j2").write_text("{% include '../../../secret' %}")
    (cookbook / "templates" / "evil-abs.j2").write_text("{%% include '%s' %%}" % secret)
    message = refused(cookbook, line % {"secret": secret} + "\n")
    assert "%s '" % what in message
    assert "outside the folders sources come from" in message


def test_allow_sources_opens_one_more_folder(cookbook: Path) -> None:
    shared = cookbook.parent.parent / "shared"
    contents = compile_text(cookbook, 'allow_sources("../../shared")\n'
                            'file("/etc/a", source="%s/banner")\n'
                            'file("/etc/b", source="../../shared/banner")\n' % shared)
    assert contents == {"file[/etc/a]": "shared banner\n", "file[/etc/b]": "shared banner\n"}
    # ... and no other
    message = refused(cookbook, 'allow_sources("%s")\nfile("/etc/a", source="../../secret")\n'
                      % shared)
    assert "outside the folders sources come from" in message


def test_allow_sources_is_for_the_recipe_that_writes_it(cookbook: Path) -> None:
    """An included recipe does not inherit the allowance."""
    (cookbook / "recipes" / "other.py").write_text(
        "from converge import file\nfile('/etc/b', source='../../../shared/banner')\n")
    message = refused(cookbook, 'allow_sources("../../shared")\n'
                      'include_recipe("recipes/other.py")\n')
    assert "source '../../../shared/banner' is" in message


def test_allow_sources_needs_a_folder(cookbook: Path) -> None:
    message = refused(cookbook, 'allow_sources("../nowhere")\n')
    assert message == "%s:2: allow_sources: %s/../nowhere is not a folder" % (
        cookbook / "recipe.py", cookbook)
