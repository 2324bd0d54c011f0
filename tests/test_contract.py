"""The resource contract, checked over every registered type."""

from __future__ import annotations

import inspect
import re
import textwrap

import pytest

from converge.errors import PropertyError
from converge.plan import Plan
from converge.resources import REGISTRY
from tests.conftest import Converger

TYPES = sorted(REGISTRY)


def example_lines(cls) -> list:
    doc = inspect.getdoc(inspect.getmodule(cls)) or ""
    match = re.search(r"Example::\n\n((?:    .*\n?|\n)+)", doc)
    assert match, "%s: module docstring needs an 'Example::' block" % cls.type_name
    block = textwrap.dedent(match.group(1))
    calls, current = [], ""
    for line in block.splitlines():
        current += re.sub(r"\s+#.*$", "", line) + "\n"
        if current.count("(") == current.count(")") and current.strip():
            calls.append(current)
            current = ""
    return [c for c in calls if c.lstrip().startswith(cls.type_name + "(")]


@pytest.mark.parametrize("name", TYPES)
def test_type_is_documented(name: str) -> None:
    cls = REGISTRY[name]
    assert inspect.getdoc(cls), name
    assert example_lines(cls), name
    for field in cls.fields():
        assert field.metadata.get("doc"), "%s.%s has no doc" % (name, field.name)
    assert cls.actions, name


@pytest.mark.parametrize("name", TYPES)
def test_examples_compile_and_round_trip(name: str, converger: Converger) -> None:
    cls = REGISTRY[name]
    compiled = 0
    for call in example_lines(cls):
        for source in re.findall(r"source=[\"']([^\"']+)", call):
            converger.write("templates/" + source, "rendered\n")
        try:
            plan = converger.compile("from converge import *\n" + call)
        except PropertyError:
            continue  # examples may name files that only exist next to a real recipe
        compiled += 1
        again = Plan.from_json(plan.to_json())
        assert again.to_dict() == plan.to_dict()
        for step in again.steps:
            assert step.resource().identity == step.id
    assert compiled, "no example of %s compiles on its own" % name


@pytest.mark.parametrize("name", TYPES)
def test_unknown_property_refused(name: str, converger: Converger) -> None:
    call = example_lines(REGISTRY[name])[0].rstrip().rstrip(")") + ", no_such_property=1)"
    with pytest.raises(PropertyError, match="unknown property 'no_such_property'"):
        converger.compile("from converge import *\n" + call)


def test_registry_finds_a_type_by_its_module_and_nothing_else() -> None:
    """The agent imports a type's module on first lookup: resources/<type_name>.py."""
    for name in TYPES:
        assert REGISTRY[name].__module__ == "converge.resources." + name
    for missing in ("no_such_type", "_base", "../recipe", "file.File"):
        assert REGISTRY.get(missing) is None
        with pytest.raises(KeyError):
            REGISTRY[missing]


def test_a_type_outside_its_module_is_refused_at_definition() -> None:
    from converge.resources._base import Resource, prop

    with pytest.raises(TypeError, match="must live in resources/elsewhere.py"):
        type("Misplaced", (Resource,), {
            "__module__": "converge.resources.file", "__annotations__": {"path": "str"},
            "path": prop(doc="x"),
        }, type_name="elsewhere")
    assert "elsewhere" not in REGISTRY


@pytest.mark.parametrize("name", TYPES)
def test_every_action_is_notifiable(name: str, converger: Converger) -> None:
    """``notifies=x.ACTION`` compiles for every action of every type, also where the
    action shares its name with a method of the resource (sysctl's ``apply``)."""
    cls = REGISTRY[name]
    actions = tuple(dict.fromkeys(cls.actions + cls.notify_only))
    for call in example_lines(cls):
        recipe = ("from converge import *\nx = " + call.strip() + "\n"
                  "file('/srv/converge-notifier', content='n\\n', notifies=[%s])\n"
                  % ", ".join("x." + a for a in actions))
        for source in re.findall(r"source=[\"']([^\"']+)", call):
            converger.write("templates/" + source, "rendered\n")
        try:
            plan = converger.compile(recipe)
        except PropertyError as exc:
            if "notifies" in str(exc):
                raise
            continue  # examples may name files that only exist next to a real recipe
        target = plan.steps[-2].id
        assert plan.steps[-1].notifies == [[a, target, "delayed"] for a in actions]
        return
    pytest.fail("no example of %s compiles on its own" % name)


def test_an_action_named_like_a_property_is_refused_at_definition() -> None:
    from converge.resources._base import Resource, prop

    with pytest.raises(TypeError, match="action 'path' has the name of a property"):
        type("Clash", (Resource,), {
            "__module__": "tests.test_contract", "__annotations__": {"path": "str"},
            "path": prop(doc="x"), "actions": ("path",),
        }, type_name="clash_of_names")
    assert "clash_of_names" not in REGISTRY


def test_an_action_named_like_a_method_still_calls_the_method(converger: Converger) -> None:
    """sysctl's ``apply`` action and its ``apply`` method: the engine still applies."""
    converger.path("/proc/sys/vm").mkdir(parents=True)
    converger.path("/proc/sys/vm/swappiness").write_text("60\n")
    events = converger.run("from converge import sysctl, execute\n"
                           "s = sysctl('vm.swappiness', 10)\n"
                           "execute(['true'], notifies=s.apply)\n")
    assert [e["status"] for e in events][:2] == ["updated", "updated"]
    assert (converger.path("/proc/sys/vm/swappiness").read_text().strip() == "10")
