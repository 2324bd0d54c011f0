"""Properties are enforced where they are declared: prop()'s type (or the annotation),
choices, required_for and coerce, checked once by the base class, for converge's own
types and for a cookbook's (tests/resources/props_demo is one, loaded like any)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Tuple

import pytest

from converge.errors import PropertyError
from converge.recipe import compile_recipe
from converge.resources import REGISTRY
from converge.resources._base import Resource, load_all, prop
from tests.conftest import FACTS, Converger
from tests.test_contract import example_lines

DEMO = Path(__file__).parent / "props_demo"


@pytest.fixture(scope="module")
def cookbook(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One copy of the cookbook for the module: a type loads once per process."""
    folder = tmp_path_factory.mktemp("props") / "props_demo"
    shutil.copytree(DEMO, folder)
    return folder


def compile_demo(cookbook: Path, call: str) -> Any:
    recipe = cookbook / "recipe.py"
    recipe.write_text("from converge import props_demo\n" + call + "\n")
    return compile_recipe(recipe, facts=lambda: FACTS)


def refused(cookbook: Path, call: str) -> str:
    with pytest.raises(PropertyError) as info:
        compile_demo(cookbook, call)
    return str(info.value)


def test_coerce_runs_before_the_type_check(cookbook: Path) -> None:
    plan = compile_demo(cookbook, 'props_demo("/srv/x/", mode="644", labels="web", text="t")')
    props = plan.steps[0].props
    assert (props["path"], props["mode"], props["labels"]) == ("/srv/x", "0644", ["web"])
    assert compile_demo(cookbook, 'props_demo("/srv/x", mode=0o600, text="t")'
                        ).steps[0].props["mode"] == "0600"


@pytest.mark.parametrize("call, message", [
    pytest.param('props_demo("/srv/x", size="3", text="t")',
                 "size must be an integer, not '3'", id="str-for-int"),
    pytest.param('props_demo("/srv/x", size=True, text="t")',
                 "size must be an integer, not True", id="bool-for-int"),
    pytest.param('props_demo("/srv/x", ratio=False, text="t")',
                 "ratio must be a number, not False", id="bool-for-float"),
    pytest.param('props_demo("/srv/x", labels=["a", 1], text="t")',
                 "labels must be a list of strings, not ['a', 1]", id="list-item"),
    pytest.param('props_demo("/srv/x", text=5)', "text must be a string, not 5",
                 id="optional-str"),
    pytest.param('props_demo("/srv/x", text="t", flag="yes")',
                 "flag must be True or False, not 'yes'", id="bool"),
    pytest.param('props_demo(["/srv/x"], text="t")',
                 "path must be a non-empty string, not ['/srv/x']", id="coerce-refuses"),
])
def test_a_wrong_type_is_refused_naming_line_resource_and_property(
        cookbook: Path, call: str, message: str) -> None:
    error = refused(cookbook, call)
    assert re.fullmatch(r".*recipe\.py:2: props_demo\[.*\]: " + re.escape(message), error), error


def test_a_bad_choice_is_refused_with_the_choices(cookbook: Path) -> None:
    assert refused(cookbook, 'props_demo("/srv/x", kind="fany", text="t")').endswith(
        "recipe.py:2: props_demo[/srv/x]: kind 'fany' is not one of: plain, fancy")
    # True is not 1: a choice matches with its type
    assert refused(cookbook, 'props_demo("/srv/x", level=1, text="t")').endswith(
        "props_demo[/srv/x]: level 1 is not one of: False, True, 'auto'")
    plan = compile_demo(cookbook, 'props_demo("/srv/x", kind="fancy", level="auto", text="t")')
    assert (plan.steps[0].props["kind"], plan.steps[0].props["level"]) == ("fancy", "auto")


def test_a_property_required_for_the_action_is_refused_when_missing(cookbook: Path) -> None:
    assert refused(cookbook, 'props_demo("/srv/x")').endswith(
        "recipe.py:2: props_demo[/srv/x]: text is required for action 'create'")
    assert refused(cookbook, 'props_demo("/srv/x", action=["delete", "create"])').endswith(
        "text is required for action 'create'")
    assert compile_demo(cookbook, 'props_demo("/srv/x", action="delete")').steps[0].action \
        == "delete"


def test_a_sensitive_value_is_not_shown_in_a_type_error(cookbook: Path) -> None:
    error = refused(cookbook, 'props_demo("/srv/x", text="t", secret=["hunter2"])')
    assert error.endswith("props_demo[/srv/x]: secret must be a string, not a list")
    assert "hunter2" not in error


def test_a_shared_validator_s_error_names_the_resource(cookbook: Path) -> None:
    """coerce=v.path raises a PropertyError that knows nothing of the resource; the
    base class names it (no resource type wraps its validators to say so)."""
    assert refused(cookbook, 'props_demo("/srv/../x", text="t")').endswith(
        "recipe.py:2: props_demo[/srv/../x]: path '/srv/../x' has a '..' component; give "
        "the path it means without '..'")


def test_declarations_that_cannot_hold_are_refused_when_the_type_is_defined() -> None:
    with pytest.raises(TypeError, match="required_for create must default to None"):
        prop("x", doc="d", required_for=("create",))
    with pytest.raises(TypeError, match="default 'c' is not one of the choices"):
        prop("c", doc="d", choices=("a", "b"))
    with pytest.raises(TypeError, match="'text' is required_for remove, which is not an action"):
        type("Wrong", (Resource,), {
            "__module__": __name__, "__annotations__": {"text": "Optional[str]"},
            "text": prop(None, doc="d", required_for=("remove",)), "actions": ("create",),
        }, type_name="props_wrong_action")
    assert "props_wrong_action" not in dict.keys(REGISTRY)
    with pytest.raises(TypeError, match="property 'tags' has the name of a property every "
                                        "resource takes"):
        type("Clash", (Resource,), {
            "__module__": __name__, "__annotations__": {"tags": "Optional[str]"},
            "tags": prop(None, doc="d"), "actions": ("create",),
        }, type_name="props_clash")
    assert "props_clash" not in dict.keys(REGISTRY)


def test_an_annotation_that_cannot_be_read_is_a_clear_error() -> None:
    cls = type("Unreadable", (Resource,), {
        "__module__": __name__, "__annotations__": {"when": "Datetime"},
        "when": prop(doc="d"), "actions": ("create",)})
    with pytest.raises(TypeError, match=r"cannot read the annotation of property 'when' "
                       r".*give prop\(type=\.\.\.\)"):
        cls("now")
    explicit = type("Explicit", (Resource,), {
        "__module__": __name__, "__annotations__": {"when": "Datetime"},
        "when": prop(doc="d", type=str), "actions": ("create",)})
    assert explicit("now").when == "now"
    with pytest.raises(PropertyError, match="when must be a string, not 5"):
        explicit(5)


# -- every built-in type: what its declarations say is what it refuses ------------------

def _cases() -> Iterator[Tuple[str, str, Any, Optional[str], str]]:
    """(type, property, bad value, action, a pattern of the message) for every declared bool,
    int, choices and required_for of converge's own types."""
    for name, cls in sorted(load_all().items()):
        if cls.__module__ != "converge.resources." + name:
            continue  # a cookbook's, loaded by another test
        for f in cls.fields():
            coerced = f.metadata.get("coerce") is not None
            if f.metadata.get("choices") is not None:
                # (cron's special coerces 'no-such' to '@no-such' first)
                yield name, f.name, "no-such", None, "%s '@?no-such' is not one of: " % f.name
            elif f.kind is bool and not coerced:
                yield name, f.name, "yes", None, "%s must be True or False, not 'yes'" % f.name
            elif f.kind is int and not coerced:
                yield name, f.name, True, None, "%s must be an integer, not True" % f.name
            for action in f.metadata.get("required_for", ()):
                yield name, f.name, None, action, "%s is required for action '%s'$" % (
                    f.name, action)


CASES = list(_cases())


def test_the_table_covers_the_declarations_it_replaced() -> None:
    covered = {(t, p) for t, p, _, _, _ in CASES}
    for case in [("service", "init"), ("package", "provider"), ("link", "link_type"),
                 ("archive_file", "overwrite"), ("cron", "special"), ("cron", "command"),
                 ("sysctl", "value"), ("systemd_unit", "content"), ("line", "line"),
                 ("link", "to"), ("directory", "recursive"), ("sysctl", "persist"),
                 ("line", "create"), ("execute", "shell"), ("execute", "live"),
                 ("cron", "disabled"), ("user", "system"), ("user", "manage_home"),
                 ("user", "append"), ("group", "append"), ("group", "system"),
                 ("git", "enable_submodules"), ("git", "force"), ("link", "force"),
                 ("remote_file", "use_conditional_get"), ("oom_protect", "persist"),
                 ("systemd_unit", "triggers_reload"), ("authorized_key", "exclusive"),
                 ("apt_repository", "uri"), ("apt_repository", "deb_src"),
                 ("yum_repository", "gpgcheck"), ("yum_repository", "enabled")]:
        assert case in covered, case


def _base_props(converger: Converger, name: str) -> Dict[str, Any]:
    """The properties of the type's first example that compiles alone, as plain data."""
    cls = REGISTRY[name]
    for call in example_lines(cls):
        try:
            plan = converger.compile("from converge import *\n" + call)
        except PropertyError:
            continue
        return {f.name: plan.steps[0].props[f.name] for f in cls.fields()
                if f.name in plan.steps[0].props and plan.steps[0].props[f.name] is not None
                and f.metadata.get("wire", True)}
    raise AssertionError("no example of %s compiles alone" % name)


@pytest.mark.parametrize("name, field, value, action, message", CASES,
                         ids=["%s.%s%s" % (c[0], c[1], "-" + c[3] if c[3] else "")
                              for c in CASES])
def test_every_declared_check_holds(converger: Converger, name: str, field: str, value: Any,
                                   action: Optional[str], message: str) -> None:
    props = _base_props(converger, name)
    props[field] = value
    if action is not None:
        props.pop(field)
        props["action"] = action
        if name == "line":  # else: "give the line, or a match", before the action is known
            props["match"] = "^x"
    if name == "template":
        props["source"] = "motd.j2"
        props.pop("content", None)
        converger.write("templates/motd.j2", "hello\n")
    recipe = "from converge import %s\n%s(**json.loads(%r))\n" % (name, name, json.dumps(props))
    with pytest.raises(PropertyError) as info:
        converger.compile("import json\n" + recipe)
    assert re.match(r"recipe\.py:3: %s\[.*\]: %s" % (name, message), str(info.value)), \
        str(info.value)


def test_a_list_declared_property_also_takes_a_tuple(converger: Converger) -> None:
    plan = converger.compile('from converge import user\nuser("deploy", groups=("adm",))\n')
    assert plan.steps[0].props["groups"] == ["adm"]



def test_a_cookbook_type_with_an_unreadable_annotation_fails_when_it_loads(
        tmp_path: Path) -> None:
    from converge.errors import RecipeError

    (tmp_path / "resources").mkdir()
    (tmp_path / "resources" / "props_unreadable.py").write_text(
        "from converge.resources._base import Resource, prop\n\n\n"
        "class PropsUnreadable(Resource, type_name='props_unreadable'):\n"
        "    '''A type whose annotation names what its module does not import.'''\n\n"
        "    actions = ('create',)\n"
        "    when: 'Datetime' = prop(doc='d')\n")
    (tmp_path / "recipe.py").write_text("pass\n")
    with pytest.raises(RecipeError, match=r"props_unreadable\.py: resource type PropsUnreadable: "
                       r"cannot read the annotation of property 'when'"):
        compile_recipe(tmp_path / "recipe.py", facts=lambda: FACTS)
    assert "props_unreadable" not in dict.keys(REGISTRY)


def test_a_value_s_own_repr_cannot_break_the_message_s_line(cookbook: Path) -> None:
    error = refused(cookbook, "class Odd:\n"
                    "    def __repr__(self):\n"
                    "        return 'odd\\n\\x1b[2Jcleared'\n"
                    'props_demo("/srv/x", text="t", size=Odd())')
    assert error.endswith("props_demo[/srv/x]: size must be an integer, not "
                          "odd\\n\\x1b[2Jcleared")
    assert "\n" not in error and "\x1b" not in error
