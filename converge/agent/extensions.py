"""Resource types from outside converge: a cookbook's ``resources/NAME.py`` and the
``converge.resources`` entry points of installed packages.

A type is written exactly like a built-in one (``class Site(Resource,
type_name="site")`` in ``resources/site.py``: the file is named after the type)
and may import only the standard library and ``converge.resources`` helpers, since
it runs on targets too. It is loaded on the controller as the module
``converge.resources.NAME``, the name it has on a target, so the same code
registers the same way on both sides.

How a type reaches a target: the plan carries the source of every extension type
it uses (``plan.options["extensions"]``), so the plan's hash covers the code and a
changed type is sent with the next run; the agent installs those modules before
it runs the plan, and the run journal keeps them for rollback. (The agent bundle
itself is built and cached before a recipe is compiled, so it carries only
converge's own code.) Standard library only, Python 3.8: the agent uses
:func:`install`.
"""

from __future__ import annotations

import os
import sys
import types
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from ..errors import RecipeError
from ..resources._base import REGISTRY

PACKAGE = "converge.resources"

#: type name -> (where it came from, its source): the extension types loaded here
LOADED: Dict[str, Dict[str, str]] = {}
#: the type files being loaded (a type file may import a type loaded after it)
LOADING: List[str] = []


def _origin(type_name: str) -> str:
    if type_name in LOADED:
        return LOADED[type_name]["origin"]
    cls = dict.get(REGISTRY, type_name)
    module = sys.modules.get(getattr(cls, "__module__", ""))
    return getattr(module, "__file__", None) or "converge"


def _exec(name: str, source: str, origin: str) -> None:
    """Run one type's module as converge.resources.NAME."""
    module_name = "%s.%s" % (PACKAGE, name)
    module = types.ModuleType(module_name)
    module.__file__ = origin
    module.__package__ = PACKAGE
    sys.modules[module_name] = module
    try:
        exec(compile(source, origin, "exec"), module.__dict__)  # noqa: S102 - the type's code
    except BaseException:
        del sys.modules[module_name]
        raise


def load_file(path: str) -> Optional[str]:
    """Load one type file (controller): its type's name, or None when it was loaded
    already. A name that clashes with a built-in or another extension is an error
    naming both files."""
    from ..resources._base import load_all

    load_all()  # built-in types first, so a clash with one is seen
    name = os.path.basename(path)[:-3]
    if name in LOADED and os.path.realpath(LOADED[name]["origin"]) == os.path.realpath(path):
        return None
    if name.startswith("_") or not name.replace("_", "").isalnum():
        raise RecipeError("%s: a resource type's file is named after the type (letters, "
                          "digits and _)" % path)
    if name in REGISTRY or name in LOADED:
        raise RecipeError("resource type '%s' in %s clashes with the one in %s: rename one of "
                          "them" % (name, path, _origin(name)))
    with open(path, encoding="utf-8") as handle:
        source = handle.read()
    LOADING.append(path)
    try:
        _exec(name, source, path)
    except RecipeError:
        raise
    except Exception as exc:  # noqa: BLE001 - report the user's type with its file
        import traceback

        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == path]
        line = frames[-1].lineno if frames else 1
        if isinstance(exc, SyntaxError) and exc.filename == path and exc.lineno:
            line = exc.lineno
        raise RecipeError("%s: %s" % (type(exc).__name__, exc),
                          source="%s:%s" % (path, line)) from None
    finally:
        LOADING.pop()
    if name not in dict.keys(REGISTRY):
        del sys.modules["%s.%s" % (PACKAGE, name)]
        raise RecipeError("%s defines no resource type named '%s' (class X(Resource, "
                          "type_name=%r))" % (path, name, name))
    try:  # a property type it cannot read is an error now, not when a recipe uses it
        for field in REGISTRY[name].fields():
            field.kind  # noqa: B018
    except TypeError as exc:
        del REGISTRY[name], sys.modules["%s.%s" % (PACKAGE, name)]
        raise RecipeError("%s: %s" % (path, exc)) from None
    LOADED[name] = {"origin": path, "source": source}
    return name


def load_folder(folder: str) -> List[str]:
    """A cookbook's ``resources/`` folder: every NAME.py in it (controller)."""
    found: List[str] = []
    if not os.path.isdir(folder):
        return found
    for entry in sorted(os.listdir(folder)):
        if entry.endswith(".py") and not entry.startswith("_"):
            name = load_file(os.path.join(folder, entry))
            if name:
                found.append(name)
    return found


def load_entry_points() -> List[str]:
    """Installed packages' types (entry point group ``converge.resources``, each
    ``NAME = package.module``): loaded from their module's file, as a cookbook's."""
    found: List[str] = []
    for point_name, value in entry_points(PACKAGE):
        module = value.partition(":")[0]
        spec = None
        try:
            import importlib.util

            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            spec = None
        origin = getattr(spec, "origin", None)
        if not origin or not origin.endswith(".py"):
            raise RecipeError("entry point %s = %s (converge.resources): module not found"
                              % (point_name, value))
        if point_name != os.path.basename(origin)[:-3]:
            raise RecipeError("entry point %s = %s: the module file must be named after the "
                              "type (%s.py)" % (point_name, value, point_name))
        name = load_file(origin)
        if name:
            found.append(name)
    return found


def entry_points(group: str) -> List[Tuple[str, str]]:
    """(name, value) of the installed distributions' entry points in ``group``, in
    the order importlib.metadata gives them: the distributions found in sys.path's
    folders (``*.dist-info``, ``*.egg-info``), the first of each name only, without
    importing importlib.metadata (its import costs every CLI run about 16 ms).
    Anything this scan does not read as importlib.metadata does (a zip file on
    sys.path, another finder of distributions) is left to importlib.metadata."""
    import importlib.machinery

    finders = [f for f in sys.meta_path if getattr(f, "find_distributions", None)]
    if finders != [importlib.machinery.PathFinder] or any(
            entry and os.path.isfile(entry) for entry in sys.path):
        from importlib import metadata

        return [(p.name, p.value) for p in metadata.entry_points(group=group)]
    seen = set()
    points: List[Tuple[str, str]] = []
    for entry in sys.path:
        for name, folder in _distributions(entry or "."):
            if name in seen:
                continue
            seen.add(name)
            points += _group(os.path.join(folder, "entry_points.txt"), group)
    return points


def _normalized(name: str) -> str:
    """A distribution's name as importlib.metadata compares them (PEP 503, and _)."""
    import re

    return re.sub(r"[-_.]+", "-", name).lower().replace("-", "_")


def _distributions(root: str) -> List[Tuple[Optional[str], str]]:
    """(normalized name, metadata folder) of the distributions in one sys.path folder,
    ordered as importlib.metadata orders them: by name in order of first appearance,
    the metadata of an egg (a folder NAME.egg on sys.path) last."""
    try:
        children = os.listdir(root)
    except OSError:
        return []
    infos: Dict[str, List[str]] = {}
    eggs: List[str] = []
    base = os.path.basename(root).lower()
    for child in children:
        low = child.lower()
        if low.endswith((".dist-info", ".egg-info")):
            infos.setdefault(_normalized(low.rpartition(".")[0].partition("-")[0]),
                             []).append(child)
        elif base.endswith(".egg") and low == "egg-info":
            eggs.append(child)
    out: List[Tuple[Optional[str], str]] = []
    for child in [c for group in infos.values() for c in group] + eggs:
        folder = os.path.join(root, child)
        stem, ext = os.path.splitext(child)
        if ext in (".dist-info", ".egg-info"):
            out.append((_normalized(stem.partition("-")[0]), folder))
        else:  # as importlib.metadata: the name its metadata gives
            given = _metadata_name(folder)
            out.append((_normalized(given) if given is not None else None, folder))
    return out


def _metadata_name(folder: str) -> Optional[str]:
    """The ``Name:`` a distribution's METADATA (or PKG-INFO) gives."""
    for filename in ("METADATA", "PKG-INFO"):
        try:
            with open(os.path.join(folder, filename), encoding="utf-8") as handle:
                for line in handle:
                    if not line.strip():
                        break
                    key, _, value = line.partition(":")
                    if key.lower() == "name":
                        return value.strip()
            return None
        except OSError:
            continue
    return None


def _group(path: str, group: str) -> List[Tuple[str, str]]:
    """(name, value) of an entry_points.txt's lines in section ``[group]``."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError:  # no entry points (as importlib.metadata: none, not an error)
        return []
    points: List[Tuple[str, str]] = []
    section = None
    for line in map(str.strip, text.splitlines()):
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line.strip("[]")
        elif section == group:
            name, equals, value = line.partition("=")
            if not equals:
                raise RecipeError("%s: %r in [%s] is not NAME = VALUE" % (path, line, group))
            points.append((name.strip(), value.strip()))
    return points


def sources(type_names: Iterable[str]) -> Dict[str, str]:
    """The source of each extension type among ``type_names`` (for the plan)."""
    return {name: LOADED[name]["source"] for name in sorted(set(type_names))
            if name in LOADED}


def install(extensions: Optional[Mapping[str, Any]]) -> None:
    """Register the extension types a plan or journal carries (agent side); a type
    already registered (the same process compiled it) is left as it is."""
    for name, source in sorted((extensions or {}).items()):
        if name in dict.keys(REGISTRY) or not isinstance(source, str):
            continue
        _exec(name, source, "<extension %s>" % name)
