"""Documentation generated from the resource registry: ``converge resources`` and
docs/resources.md come from the same declarations the code validates with."""

from __future__ import annotations

import inspect
from typing import Any, List, Optional, Type

from .agent.extensions import LOADED
from .errors import ConvergeError
from .resources._base import COMMON_PROPERTIES, Field, Resource, load_all

REGISTRY = load_all()


def _default(field: Field) -> str:
    return "(required)" if field.required else repr(field.value())


def _actions(cls: Type[Resource]) -> str:
    default = cls.default_action or cls.actions[0]
    if not isinstance(default, str):
        default = " then ".join(default)
    return ", ".join(cls.actions + cls.notify_only) + " (default: %s)" % default


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
        for f in cls.fields():
            out.append("  %-14s %s  [%s]" % (f.name, f.metadata["doc"], "required" if f.required
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
    import re
    import sys
    import textwrap

    doc = inspect.getdoc(sys.modules.get(cls.__module__)) or ""
    match = re.search(r"Example::\n\n((?:    .*\n?|\n)+)", doc)
    if not match:
        return ""
    return textwrap.indent(textwrap.dedent(match.group(1)).strip("\n"), "  ")


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
            kind = str(f.type).replace("|", "\\|")
            out.append("| `%s` | `%s` | `%s` | %s |" % (f.name, kind, _default(f),
                                                      f.metadata["doc"]))
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(reference_markdown(), end="")
