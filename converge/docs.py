"""Documentation generated from the resource registry: ``converge resources`` and
docs/resources.md come from the same declarations the code validates with."""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from typing import Any, List, Optional, Type

from .agent.extensions import LOADED
from .errors import ConvergeError
from .resources._base import COMMON_PROPERTIES, Field, Resource, choices_text, load_all
from .stubs import recipe_type

REGISTRY = load_all()


def _default(field: Field) -> str:
    return "(required)" if field.required else repr(field.value())


def _meaning(field: Field) -> str:
    """The property's doc, then what its declaration enforces: its choices, the
    actions that need it."""
    text = str(field.metadata["doc"])
    if field.metadata.get("choices") is not None:
        text += " One of: %s." % choices_text(field.metadata["choices"])
    if field.metadata.get("required_for"):
        text += " Required for %s." % ", ".join(field.metadata["required_for"])
    return text


def _actions(cls: Type[Resource]) -> str:
    default = cls.default_action or cls.actions[0]
    if not isinstance(default, str):
        default = " then ".join(default)
    return ", ".join(cls.actions + cls.notify_only) + " (default: %s)" % default


def examples(cls: Any) -> List[str]:
    """The recipe lines of the type's ``Example::`` block (its module docstring)."""
    import sys

    doc = inspect.getdoc(sys.modules.get(cls.__module__)) or ""
    match = re.search(r"Example::\n\n((?:    .*\n?|\n)+)", doc)
    if not match:
        return []
    return textwrap.dedent(match.group(1)).strip("\n").splitlines()


def first_example(cls: Any) -> List[str]:
    """The first whole statement of the type's example (it may span lines)."""
    lines = examples(cls)
    for end in range(1, len(lines) + 1):
        try:
            ast.parse("\n".join(lines[:end]))
        except SyntaxError:
            continue
        return lines[:end]
    return lines[:1]


def describe_types(name: Optional[str] = None) -> str:
    """Plain-text listing of one type or all of them."""
    if name is not None and name not in REGISTRY:
        import difflib

        close = difflib.get_close_matches(name, list(REGISTRY), n=1, cutoff=0.6)
        raise ConvergeError("no resource type '%s'%s" % (
            name, "; did you mean '%s'?" % close[0] if close else ""),
            hint="the types: %s" % ", ".join(sorted(REGISTRY)))
    out: List[str] = []
    for type_name in sorted(REGISTRY) if name is None else [name]:
        cls = REGISTRY[type_name]
        summary = inspect.getdoc(cls) or ""
        origin = LOADED.get(type_name, {}).get("origin")
        out.append("%s: %s%s" % (type_name, summary.splitlines()[0] if summary else "",
                                 " (from %s)" % origin if origin else ""))
        out.append("  actions: %s" % _actions(cls))
        shown = first_example(cls) if name is None else []  # one type: all of it, below
        if shown:
            out.append("  example: %s" % shown[0])
            out.extend("           %s" % line for line in shown[1:])
        for f in cls.fields():
            out.append("  %-14s %s  [%s]" % (f.name, _meaning(f), "required" if f.required
                                              else "default %r" % f.value()))
        out.append("")
    if name is None:
        out.append("Every resource also takes: %s" % ", ".join(COMMON_PROPERTIES))
    else:
        example = _example(REGISTRY[name])
        if example:
            out += ["Example:", example, ""]
        out.append("Common properties:")
        out.extend("  %-14s %s" % (k, v) for k, v in COMMON_PROPERTIES.items())
    return "\n".join(out) + "\n"


def _example(cls: Any) -> str:
    """The ``Example::`` block of a type's module docstring, as written there."""
    return textwrap.indent("\n".join(examples(cls)), "  ")


def reference_markdown() -> str:
    """docs/resources.md: the resource reference, generated."""
    out = [
        "# Resource reference",
        "",
        "Generated from the code by `python -m converge.docs > docs/resources.md`; a test",
        "fails when this page and the code disagree. `converge resources` prints the same.",
        "",
        "## Properties every resource takes",
        "",
        "| property | meaning |",
        "|---|---|",
    ]
    out += ["| `%s` | %s |" % (k, v) for k, v in COMMON_PROPERTIES.items()]
    for type_name in sorted(t for t in REGISTRY if t not in LOADED):  # converge's own
        cls = REGISTRY[type_name]
        module_doc = inspect.getdoc(inspect.getmodule(cls)) or ""
        out += ["", "## %s" % type_name, "", module_doc, "",
                "Actions: %s." % _actions(cls), "",
                "| property | type | default | meaning |", "|---|---|---|---|"]
        for f in cls.fields():
            kind = recipe_type(f).replace("|", "\\|")
            out.append("| `%s` | `%s` | `%s` | %s |" % (f.name, kind, _default(f), _meaning(f)))
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(reference_markdown(), end="")
