"""Compile: run a recipe file with the DSL bound to a RecipeContext, and turn the
resources it declares into a Plan for one host.

Attributes come in layers, lowest first: cookbook defaults (attributes.yaml) <
inventory vars < ``-a key=value`` on the command line. Node facts are gathered
lazily, the first time a recipe reads ``node``.
"""

from __future__ import annotations

import linecache
import os
import re
import sys
import traceback
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    Iterable,
    List,
    Optional,
    Sequence,
    Set,
    Tuple,
    Type,
    Union,
)

from . import context as ctxvar
from .errors import ConvergeError, PropertyError, RecipeError, printable
from .plan import Plan, Step, mark_secret_files
from .resources._base import Notification, Resource
from .resources._composite import is_composite

if TYPE_CHECKING:
    import jinja2

#: (action, target identity, timing when one was given) from notifies= and subscribes=
Pair = Tuple[str, str, Optional[str]]

TEMPLATE_SUFFIXES = (".j2", ".jinja", ".jinja2")
#: folders of a cookbook whose files take sources and templates from the cookbook's
#: files/ and templates/: its recipes, and its resource types (composites)
COOKBOOK_FOLDERS = ("recipes", "resources")


def display(path: Union[str, Path]) -> str:
    """A path as users wrote it: relative to the current directory when inside it,
    absolute otherwise, and absolute when the current directory is / (where
    ``srv/x/hello.py`` would read as a path with its leading slash cut off)."""
    text = str(path)
    try:
        rel = os.path.relpath(text)
        cwd = os.getcwd()
    except (ValueError, OSError):
        return text
    if rel.startswith("..") or cwd == "/":
        return os.path.abspath(text) if cwd == "/" else text
    return rel


def _strict_undefined() -> Type[jinja2.StrictUndefined]:
    """jinja2's StrictUndefined, but an attribute that is not set says so as a
    recipe does (jinja2 would say "'converge.recipe.Attrs object' has no attribute")."""
    import jinja2

    class Undefined(jinja2.StrictUndefined):
        @property
        def _undefined_message(self) -> str:
            if isinstance(self._undefined_obj, Attrs):
                return self._undefined_obj.unset(str(self._undefined_name))
            return str(super()._undefined_message)

        def __getattr__(self, name: str) -> Any:
            # attrs.motd.contact with no motd at all names motd.contact, as -a wants it
            if name[:2] != "__" and isinstance(self._undefined_obj, Attrs):
                return type(self)(obj=self._undefined_obj,
                                  name="%s.%s" % (self._undefined_name, name))
            return super().__getattr__(name)

    return Undefined


class UnsetAttribute(AttributeError, KeyError):
    """An attribute no layer sets, read as ``attrs.a.b`` or ``attrs["a"]["b"]``
    (both an AttributeError and a KeyError, so ``getattr(attrs, k, default)``
    and ``except KeyError`` work as with any object and dict)."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key

    def __str__(self) -> str:
        return unset_message(self.key)


def unset_message(key: str) -> str:
    return ("attribute '%s' is not set (give it a default in attributes.yaml, an "
            "inventory var, or -a %s=VALUE)" % (key, key))


_CHAIN = re.compile(r"\battrs((?:\s*\.\s*[A-Za-z_]\w*|\s*\[\s*(?P<q>['\"])[^'\"]*(?P=q)\s*\])+)"
                    r"(?P<call>\s*\()?")
_PART = re.compile(r"[A-Za-z_]\w*|(['\"])(.*?)\1")


def _dotted(key: str, line: str) -> str:
    """The whole dotted name a recipe line reads, when an attribute it starts with
    is not set: ``attrs.motd.contact`` with no ``motd`` is ``motd.contact``."""
    wanted = key.split(".")
    best = key
    for chain in _CHAIN.finditer(line):
        parts = [m.group(2) if m.group(1) else m.group(0)
                 for m in _PART.finditer(chain.group(1))]
        if chain.group("call"):
            parts = parts[:-1]  # attrs.motd.get(...): a method, not an attribute
        if parts[:len(wanted)] == wanted and len(parts) > len(best.split(".")):
            best = ".".join(parts)
    return best


class Attrs(Dict[str, Any]):
    """Attributes: a dict whose keys also read as attributes (``attrs.chrony.servers``)."""

    def __init__(self, data: Optional[Dict[str, Any]] = None, prefix: str = "") -> None:
        super().__init__()
        self._prefix = prefix
        for key, value in (data or {}).items():
            self[key] = value

    def __setitem__(self, key: str, value: Any) -> None:
        if isinstance(value, dict) and not isinstance(value, Attrs):
            value = Attrs(value, self._prefix + str(key) + ".")
        super().__setitem__(key, value)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]

    def __missing__(self, name: str) -> Any:
        raise UnsetAttribute(self._prefix + str(name))

    def unset(self, name: str) -> str:
        """The message for reading a key that is not set, in a recipe or a template."""
        return unset_message(self._prefix + name)

    def setdefault_deep(self, defaults: Dict[str, Any]) -> None:
        """Fill in what is not set yet (defaults sit below everything else)."""
        for key, value in defaults.items():
            if key not in self:
                self[key] = value
            elif isinstance(self[key], Attrs) and isinstance(value, dict):
                self[key].setdefault_deep(value)

    def set_path(self, dotted: str, value: Any) -> None:
        """``-a chrony.servers=[a, b]``: set a nested key."""
        *parents, last = dotted.split(".")
        node = self
        for part in parents:
            if not isinstance(node.get(part), Attrs):
                node[part] = {}
            node = node[part]
        node[last] = value

    def merge(self, other: Dict[str, Any]) -> None:
        """Deep-merge a higher layer over this one."""
        for key, value in other.items():
            if isinstance(value, dict) and isinstance(self.get(key), Attrs):
                self[key].merge(value)
            else:
                self[key] = value


class Node:
    """Facts about the target, gathered on first use."""

    def __init__(self, gather: Callable[[], Dict[str, Any]]) -> None:
        self._gather = gather
        self._facts: Optional[Dict[str, Any]] = None

    @property
    def facts(self) -> Dict[str, Any]:
        if self._facts is None:
            self._facts = parse_local(dict(self._gather()))
        return self._facts

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self.facts[name]
        except KeyError:
            raise AttributeError(
                "node has no fact '%s' (facts: %s)" % (name, ", ".join(sorted(self.facts)))
            ) from None

    def __getitem__(self, name: str) -> Any:
        return self.facts[name]

    @property
    def gathered(self) -> bool:
        return self._facts is not None


def parse_local(facts: Dict[str, Any]) -> Dict[str, Any]:
    """Custom facts the target sent as text (YAML files, programs' output) parsed
    here, where the YAML library is: ``node.local.NAME``."""
    local = facts.get("local")
    if not isinstance(local, dict):
        return facts
    import yaml

    parsed: Dict[str, Any] = {}
    for name, value in local.items():
        if isinstance(value, dict) and set(value) == {"_text"}:
            try:
                value = yaml.safe_load(value["_text"])
            except yaml.YAMLError as exc:
                value = {"error": "custom fact %s is neither JSON nor YAML: %s"
                         % (name, getattr(exc, "problem", exc))}
        parsed[name] = value
    facts["local"] = Attrs(parsed, "node.local.")
    return facts


def local_facts() -> Dict[str, Any]:
    from .agent.facts import gather
    from .agent.system import System

    return gather(System())


class Scope:
    """A collection of resources: the recipe's, or the inner resources of one action
    of a composite (as Chef's nested resource collections). Identities are unique in
    a scope; a resource's notifications name resources of its scope or of the
    scopes around it, never inside another composite."""

    def __init__(self, parent: Optional["Scope"] = None, owner: Optional[Resource] = None,
                 action: str = "") -> None:
        self.resources: List[Resource] = []
        self.by_id: Dict[str, Resource] = {}
        self.parent = parent
        self.owner = owner  # the composite whose action this is
        self.action = action

    def find(self, identity: str) -> Optional[Resource]:
        scope: Optional[Scope] = self
        while scope is not None:
            found = scope.by_id.get(identity)
            if found is not None:
                return found
            scope = scope.parent
        return None


class RecipeContext:
    """Everything one compilation of a recipe for one host knows."""

    def __init__(
        self,
        *,
        attrs: Optional[Dict[str, Any]] = None,
        facts: Optional[Callable[[], Dict[str, Any]]] = None,
        cookbook_path: Sequence[Union[str, Path]] = (),
        host: str = "localhost",
        remote: bool = False,
    ) -> None:
        self.attrs = Attrs(attrs or {})
        self.node = Node(facts or local_facts)
        self.cookbook_path = [Path(p) for p in cookbook_path]
        self.host = host
        self.remote = remote
        self.top = Scope()
        self.scope = self.top  # where resources being declared go (a composite's action)
        self.resources: List[Resource] = self.top.resources
        self.by_id: Dict[str, Resource] = self.top.by_id
        #: each resource's scope, and each composite's expanded actions (by id())
        self.scope_of: Dict[int, Scope] = {}
        self.groups: Dict[int, Dict[str, Scope]] = {}
        #: composite actions expanded for a notification: (composite id, action)
        self.standby: Dict[Tuple[str, str], Scope] = {}
        self.subscriptions: List[Tuple[Resource, List[Pair]]] = []
        self.files: List[Path] = []  # the stack of recipe files being run
        self.tags: List[str] = []  # tags that include_recipe adds to what it includes
        self.included: Set[Path] = set()
        self._jinja: Dict[Tuple[Path, ...], Any] = {}  # one environment per source roots
        self.allowed: Dict[Path, List[Path]] = {}  # recipe file -> allow_sources() folders

    # -- resources -------------------------------------------------------------------

    def add(self, resource: Resource) -> Resource:
        scope = self.scope
        existing = scope.by_id.get(resource.identity)
        if existing is not None:
            if existing == resource and existing.meta.action == resource.meta.action:
                return existing
            raise PropertyError(
                "declared again with different properties (first declared at %s)"
                % existing.meta.source,
                source=resource.meta.source, identity=resource.identity,
            )
        scope.resources.append(resource)
        scope.by_id[resource.identity] = resource
        self.scope_of[id(resource)] = scope
        if is_composite(resource):
            self.groups[id(resource)] = {
                action: self.expand(resource, action)
                for action in resource.meta.action.split(",") if action != "nothing"}
        return resource

    # -- composites -------------------------------------------------------------------

    def expand(self, composite: Resource, action: str) -> Scope:
        """Run one action of a composite: the resources its method declares, in a
        scope of their own inside the composite's. They take the composite's tags;
        a sensitive composite's are sensitive, and ignore_failure and run_once carry
        over. An error names the recipe line of the composite and the line of its
        type's file."""
        outer = self.scope_of[id(composite)]
        scope: Optional[Scope] = outer
        while scope is not None:
            if scope.owner is not None and scope.owner.identity == composite.identity:
                raise RecipeError("%s declares itself (its action %s declares %s again)"
                                  % (composite.identity, scope.action, composite.identity),
                                  source=composite.meta.source)
            scope = scope.parent
        inner = Scope(outer, composite, action)
        cls = type(composite)
        origin = getattr(sys.modules.get(cls.__module__), "__file__", None) or "<%s>" % cls.__name__
        saved = (self.scope, self.tags)
        self.scope = inner
        self.tags = saved[1] + [t for t in composite.meta.tags if t not in saved[1]]
        self.files.append(Path(origin))
        try:
            getattr(cls, action)(composite)
        except ConvergeError as exc:
            raise _in_action(exc, composite, action) from None
        except Exception as exc:
            frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == origin]
            where = "%s:%s" % (display(origin), frames[-1].lineno) if frames else display(origin)
            raise _in_action(RecipeError("%s: %s" % (type(exc).__name__, exc), source=where),
                             composite, action) from None
        finally:
            self.scope, self.tags = saved
            self.files.pop()
        for resource in inner.resources:
            meta = resource.meta
            meta.sensitive = meta.sensitive or composite.meta.sensitive
            meta.ignore_failure = meta.ignore_failure or composite.meta.ignore_failure
            meta.run_once = meta.run_once or composite.meta.run_once
        return inner

    def _walk(self, scope: Scope) -> Iterable[Tuple[Resource, Scope]]:
        """Every resource of a scope and of the composite actions inside it."""
        for resource in scope.resources:
            yield resource, scope
            for inner in self.groups.get(id(resource), {}).values():
                yield from self._walk(inner)

    # -- files next to the recipe -------------------------------------------------------

    @property
    def here(self) -> Path:
        return self.files[-1].parent if self.files else Path.cwd()

    def source_roots(self) -> List[Path]:
        """The folders a ``source=`` or a template (and its ``{% include %}``) may come
        from, for the recipe file being run: its own folder (so its files/ and
        templates/), its cookbook's files/ and templates/ when it sits in the
        cookbook's recipes/, and the folders it named in :meth:`allow_sources`. A
        name that resolves (``..``, an absolute path, a symlink) anywhere else is
        refused, whatever built it: a fact from the target, an attribute."""
        here = self.here
        roots = [here]
        if here.name in COOKBOOK_FOLDERS:
            roots += [here.parent / "files", here.parent / "templates"]
        roots += self.allowed.get(self.files[-1] if self.files else here, [])
        unique: List[Path] = []
        for root in roots:
            real = Path(os.path.realpath(root))
            if real not in unique:
                unique.append(real)
        return unique

    def allow_sources(self, folders: Sequence[Union[str, Path]]) -> None:
        """``allow_sources("/srv/shared")``: let this recipe file's sources and
        templates also come from these folders (relative ones: to the recipe)."""
        key = self.files[-1] if self.files else self.here
        for folder in folders:
            if not isinstance(folder, (str, Path)) or not str(folder):
                raise RecipeError("allow_sources takes folder paths, not %r" % (folder,))
            path = self.here / folder
            if not path.is_dir():
                raise RecipeError("allow_sources: %s is not a folder" % printable(display(path)))
            self.allowed.setdefault(key, []).append(path)

    def find(self, name: str, folders: Iterable[str]) -> Path:
        """The file a ``source=`` names: looked up in ``folders`` of the recipe's
        folder (then of its cookbook), and refused when it resolves outside
        :meth:`source_roots`."""
        if not isinstance(name, str) or not name or "\0" in name:
            raise PropertyError("source must be a file name, not %r" % (name,))
        if os.path.isabs(name):
            candidates = [Path(name)]
        else:
            bases = [self.here]
            if self.here.name in COOKBOOK_FOLDERS:
                bases.append(self.here.parent)
            candidates = [base / folder / name for base in bases for folder in folders]
        roots = self.source_roots()
        for candidate in candidates:
            if candidate.is_file():
                real = Path(os.path.realpath(candidate))
                if not _inside(real, roots):
                    raise PropertyError(
                        "source '%s' is %s, outside the folders sources come from (%s)"
                        % (printable(name), printable(str(real)),
                           ", ".join(printable(display(r)) for r in roots)),
                        hint="a source stays in the recipe's folder and its cookbook's "
                             "files/ and templates/; to use another folder, name it in "
                             "the recipe: allow_sources(\"/srv/shared\")")
                return real
        raise PropertyError(
            "source '%s' not found (looked in: %s)"
            % (printable(name), ", ".join(printable(display(c)) for c in candidates))
        )

    def load_source(self, name: str) -> Union[str, bytes]:
        """A file resource's ``source``: the file's bytes, or a rendered template."""
        path = self.find(name, ("files", "templates", "."))
        if path.name.endswith(TEMPLATE_SUFFIXES):
            return self._render(path, {})
        return path.read_bytes()

    def render_template(self, name: str, variables: Dict[str, Any]) -> str:
        return self._render(self.find(name, ("templates", ".")), variables)

    def _environment(self) -> Any:
        """The jinja2 environment of the current recipe file's source roots: its
        loader reads only inside them (an ``{% include %}`` too)."""
        import jinja2

        roots = tuple(self.source_roots())
        env = self._jinja.get(roots)
        if env is None:
            here = Path(os.path.realpath(self.here))
            search = [here / "templates", here] + [r for r in roots if r != here]
            env = self._jinja[roots] = jinja2.Environment(
                loader=_confined_loader()(roots, search),
                undefined=_strict_undefined(),
                keep_trailing_newline=True,
                autoescape=False,  # noqa: S701 - configuration files, not HTML
                auto_reload=False,  # one compile: a template loaded once is reused as is
            )
        return env

    def _render(self, path: Path, variables: Dict[str, Any]) -> str:
        import jinja2

        resolved = str(path)  # find() resolved it
        try:
            template = self._environment().get_template(resolved)
            return str(template.render(attrs=self.attrs, node=self.node, **variables))
        except jinja2.TemplateSyntaxError as exc:
            raise PropertyError("%s:%s: template syntax error: %s"
                                % (display(path), exc.lineno, exc.message)) from None
        except jinja2.TemplateNotFound as exc:
            raise PropertyError("%s: template '%s' not found (looked in: %s)"
                                % (display(path), printable(str(exc.name)), ", ".join(
                                    printable(display(r)) for r in self.source_roots()))
                                ) from None
        except jinja2.UndefinedError as exc:
            line = _template_line(exc.__traceback__, resolved)
            raise PropertyError("%s:%s: undefined in template: %s"
                                % (display(path), line, exc.message)) from None
        except PropertyError as exc:
            exc.message = "%s: %s" % (display(path), exc.message)
            raise

    # -- recipes ---------------------------------------------------------------------

    def run_file(self, path: Path) -> None:
        """Execute one recipe file (a path, or a cookbook folder with recipe.py)."""
        path = resolve_recipe(path)
        load_types(path)
        if path.parent.joinpath("attributes.yaml").is_file():
            self.attrs.setdefault_deep(load_yaml(path.parent / "attributes.yaml"))
        elif path.parent.name == "recipes" and (path.parent.parent / "attributes.yaml").is_file():
            self.attrs.setdefault_deep(load_yaml(path.parent.parent / "attributes.yaml"))
        self.included.add(path.resolve())
        source = display(path)
        try:
            code = compile(path.read_bytes(), source, "exec")
        except SyntaxError as exc:
            raise RecipeError("syntax error: %s" % exc.msg,
                              source="%s:%s" % (source, exc.lineno),
                              hint=_pointed(exc)) from None
        namespace = {"__name__": "__converge_recipe__", "__file__": str(path),
                     "node": self.node, "attrs": self.attrs}
        self.files.append(path)
        try:
            exec(code, namespace)  # noqa: S102 - running the user's recipe is the point
        except ConvergeError:
            raise
        except UnsetAttribute as exc:
            where = _recipe_line(exc.__traceback__, self)
            file, _, line = (where or "").rpartition(":")
            text = linecache.getline(file, int(line)) if line.isdigit() else ""
            raise RecipeError(unset_message(_dotted(exc.key, text)), source=where) from None
        except Exception as exc:
            raise RecipeError("%s: %s" % (type(exc).__name__, exc),
                              source=_recipe_line(exc.__traceback__, self)) from None
        finally:
            self.files.pop()

    def include_recipe(self, name: str) -> None:
        """Run another recipe once: a path relative to this one, or a cookbook name
        (``chrony``, or ``chrony::server`` for cookbooks/chrony/recipes/server.py)."""
        path = self.locate(name)
        if path.resolve() in self.included:
            return
        self.run_file(path)

    def locate(self, name: str) -> Path:
        if name.endswith(".py") or "/" in name:
            candidate = self.here / name
            if candidate.exists():
                return candidate
            raise RecipeError("recipe '%s' not found (looked for %s)" % (name, display(candidate)))
        cookbook, _, sub = name.partition("::")
        searched = []
        for base in self.search_path():
            folder = base / cookbook
            searched.append(display(folder))
            target = folder / "recipes" / (sub + ".py") if sub else folder / "recipe.py"
            if target.is_file():
                return target
        raise RecipeError(
            "cookbook '%s' not found (looked in: %s)" % (name, ", ".join(searched) or "nowhere"),
            hint="give --cookbook-path, or set CONVERGE_COOKBOOK_PATH",
        )

    def search_path(self) -> List[Path]:
        paths = list(self.cookbook_path)
        env = os.environ.get("CONVERGE_COOKBOOK_PATH")
        if env:
            paths.extend(Path(p) for p in env.split(os.pathsep) if p)
        paths.append(Path.cwd() / "cookbooks")
        for recipe in self.files:
            for parent in recipe.resolve().parents:
                paths.append(parent / "cookbooks")
                if parent.name == "cookbooks":
                    paths.append(parent)
        unique: List[Path] = []
        for p in paths:
            if p not in unique and p.is_dir():
                unique.append(p)
        return unique

    # -- the plan ---------------------------------------------------------------------

    def plan(self, recipe: str = "", tags: Sequence[str] = (),
             skip_tags: Sequence[str] = ()) -> Plan:
        self._notifications()
        steps = self._steps(self.top, None, None)
        for (target, action), scope in self.standby.items():
            assert scope.owner is not None
            header = Step.from_resource(scope.owner)
            header.action, header.composite, header.on_notify = action, True, [action, target]
            header.parent = scope.parent.owner.identity if scope.parent and \
                scope.parent.owner else None
            steps.append(header)
            steps.extend(self._steps(scope, target, [action, target]))
        mark_secret_files(steps)  # all of them: an unselected one still wrote its file
        plan = Plan(select(steps, tags, skip_tags), recipe)
        plan.options["tags"] = sorted({t for step in steps for t in step.tags})
        from .agent.extensions import sources

        extensions = sources(step.type for step in plan.steps if not step.composite)
        if extensions:
            plan.options["extensions"] = extensions
        return plan

    def _notifications(self) -> None:
        """Turn subscriptions into notifications and check every notification's
        target; a composite's action that is notified is expanded once more, as a
        group that runs only when notified (which may declare more of both)."""
        checked: Set[int] = set()
        while True:
            while self.subscriptions:
                resource, entries = self.subscriptions.pop(0)
                for action, other, timing in entries:
                    target = self._known(other, resource)
                    target.meta.notifies.append(Notification(action, resource.identity,
                                                             timing or "delayed"))
            scopes = [self.top] + list(self.standby.values())
            todo = [(r, s) for top in scopes for r, s in self._walk(top) if id(r) not in checked]
            if not todo and not self.subscriptions:
                return
            for resource, scope in todo:
                checked.add(id(resource))
                for note in resource.meta.notifies:
                    self._check_note(resource, scope, note)

    def _check_note(self, resource: Resource, scope: Scope, note: Notification) -> None:
        notified = scope.find(note.target)
        if notified is None:
            raise PropertyError("notifies %s, which no recipe declares" % note.target,
                                source=resource.meta.source, identity=resource.identity)
        valid = type(notified).actions + type(notified).notify_only
        if note.action not in valid:
            raise PropertyError(
                "notifies %s to %s, but its actions are: %s"
                % (note.target, note.action, ", ".join(valid)),
                source=resource.meta.source, identity=resource.identity)
        missing = notified.missing_for(note.action)
        if missing:  # declared with action='nothing', say: it only runs when notified
            raise PropertyError(
                "%s is required for action '%s', which %s notifies"
                % (missing, note.action, resource.identity),
                source=notified.meta.source, identity=notified.identity)
        key = (notified.identity, note.action)
        if is_composite(notified) and key not in self.standby:
            saved, self.scope = self.scope, self.scope_of[id(notified)]
            try:
                self.standby[key] = self.expand(notified, note.action)
            finally:
                self.scope = saved

    def _steps(self, scope: Scope, parent: Optional[str], on_notify: Optional[List[str]]
               ) -> List[Step]:
        """The steps of a scope's resources, each composite followed by the steps of
        its action's inner resources."""
        steps = []
        for resource in scope.resources:
            for action in resource.meta.action.split(","):
                step = Step.from_resource(resource)
                step.action, step.parent, step.on_notify = action, parent, on_notify
                steps.append(step)
                if is_composite(resource):
                    step.composite = True
                    inner = self.groups[id(resource)].get(action)
                    if inner is not None:
                        steps.extend(self._steps(inner, resource.identity, on_notify))
        return steps

    def _known(self, other: Any, resource: Resource) -> Resource:
        identity = other.identity if isinstance(other, Resource) else str(other)
        scope = self.scope_of.get(id(resource), self.top)
        target = scope.find(identity)
        if target is None:
            raise PropertyError("subscribes to %s, which no recipe declares" % identity,
                                source=resource.meta.source, identity=resource.identity)
        return target


def select(steps: List[Step], tags: Sequence[str], skip_tags: Sequence[str]) -> List[Step]:
    """The steps ``--tags`` / ``--skip-tags`` choose. A step tagged ``always`` is
    chosen unless skipped by name. A step left out that a chosen step notifies stays
    in the plan, marked ``unselected``: it runs only when notified."""
    if not tags and not skip_tags:
        return steps
    known = {t for step in steps for t in step.tags} | {"always"}
    for option, given in (("--tags", tags), ("--skip-tags", skip_tags)):
        unknown = [t for t in given if t not in known]
        if unknown:
            raise RecipeError("%s %s: no resource has %s (tags in this recipe: %s)" % (
                option, ",".join(unknown), "this tag" if len(unknown) == 1 else "these tags",
                ", ".join(sorted(known - {"always"})) or "none"))

    def chosen(step: Step) -> bool:
        own = set(step.tags)
        if own & set(skip_tags):
            return False
        return not tags or bool(own & set(tags)) or "always" in own

    picked = [s for s in steps if chosen(s) and not s.on_notify]
    notified = {target for s in picked for _, target, _ in s.notifies}
    out = []
    for step in steps:
        if step in picked:
            out.append(step)
        elif step.on_notify:  # a composite's group for a notification: if it can come
            if step.on_notify[1] in notified:
                out.append(step)
        elif step.id in notified and not step.composite:
            step.unselected = True
            out.append(step)
    return out


_ENTRY_POINTS: List[bool] = []


def load_types(recipe: Path) -> None:
    """The resource types a recipe may use besides the built-in ones: its cookbook's
    ``resources/`` folder, and (once) installed packages' entry points."""
    from .agent import extensions

    if not _ENTRY_POINTS:
        _ENTRY_POINTS.append(True)
        extensions.load_entry_points()
    root = recipe.parent.parent if recipe.parent.name == "recipes" else recipe.parent
    extensions.load_folder(str(root / "resources"))


def _in_action(exc: ConvergeError, composite: Resource, action: str) -> ConvergeError:
    """An error from a composite's action, said at the recipe line that declared
    the composite, with where in its type's action it happened."""
    where = ": ".join(p for p in (exc.source, exc.identity) if p)
    exc.message = "action %s: %s%s" % (action, where + ": " if where else "", exc.message)
    exc.args = (exc.message,)
    exc.source, exc.identity = composite.meta.source, composite.identity
    return exc


def _inside(path: Path, roots: Sequence[Path]) -> bool:
    return any(os.path.commonpath([str(path), str(root)]) == str(root) for root in roots)


@lru_cache(maxsize=1)
def _confined_loader() -> Any:
    import jinja2

    class ConfinedLoader(jinja2.BaseLoader):
        """Templates by absolute path (as find() resolved them) or by a name
        relative to the ``search`` folders (an ``{% include "part.j2" %}``: the
        recipe's templates/, its folder, then the other roots); a file that
        resolves outside the ``roots`` (``..``, an absolute path, a symlink) is
        refused."""

        def __init__(self, roots: Sequence[Path], search: Sequence[Path]) -> None:
            self.roots = list(roots)
            self.search = list(search)

        def get_source(self, environment: Any, template: str) -> Tuple[str, str, Any]:
            if "\0" in template:
                raise jinja2.TemplateNotFound(template)
            if os.path.isabs(template):
                candidates = [Path(template)]
            else:
                candidates = [folder / template for folder in self.search]
            for candidate in candidates:
                if not candidate.is_file():
                    continue
                real = Path(os.path.realpath(candidate))
                if not _inside(real, self.roots):
                    raise PropertyError(
                        "template '%s' is %s, outside the folders sources come from (%s)"
                        % (printable(template), printable(str(real)),
                           ", ".join(printable(display(r)) for r in self.roots)),
                        hint="a template stays in the recipe's folder and its cookbook's "
                             "files/ and templates/; to use another folder, name it in "
                             "the recipe: allow_sources(\"/srv/shared\")")
                return real.read_text(), str(real), lambda: True
            raise jinja2.TemplateNotFound(template)

    return ConfinedLoader


def resolve_recipe(path: Union[str, Path]) -> Path:
    path = Path(path)
    if path.is_dir():
        if (path / "recipe.py").is_file():
            return path / "recipe.py"
        shown = display(path)
        raise RecipeError("%s is a folder without a recipe.py" % (
            os.path.abspath(shown) if shown in (".", "..") else shown),
            hint="give a recipe file, or a cookbook folder (one with recipe.py)")
    if not path.is_file():
        raise RecipeError("recipe file %s not found" % display(path),
                          hint="check the path; a cookbook is given as its folder")
    return path


def load_yaml(path: Path) -> Dict[str, Any]:
    """An attributes file: plain YAML, ``!vault`` values in it, or a whole file
    encrypted with Ansible Vault (see converge/vault.py)."""
    import yaml

    from . import vault

    try:
        data = vault.safe_load(vault.read_yaml_text(path, display(path)), display(path)) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise RecipeError("invalid YAML: %s" % getattr(exc, "problem", exc),
                          source="%s:%s" % (display(path), line)) from None
    if not isinstance(data, dict):
        raise RecipeError("expected a mapping of attributes", source="%s:1" % display(path))
    return data


def parse_assignments(pairs: Sequence[str]) -> Dict[str, Any]:
    """``-a key=value`` pairs; values are read with ``yaml.safe_load`` as scalars or
    lists (1, true, [a, b]). A value that is not valid YAML (``[unclosed``, ``a: b:
    c``) is the text itself; a tag safe_load cannot build (``!!python/object...``,
    ``!custom``) is refused, as in inventories and attributes.yaml."""
    result = Attrs()
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise RecipeError("-a %s: expected key=value, such as -a chrony.maxpoll=10"
                              % printable(pair))
        import yaml
        from yaml.constructor import ConstructorError

        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except ConstructorError as exc:
            raise RecipeError(
                "-a %s: invalid YAML: %s" % (printable(pair), printable(str(exc.problem))),
                hint="values are read with yaml.safe_load, which builds no Python objects "
                     "and runs nothing: remove the tag, or quote the value to pass it as "
                     "text (-a '%s=\"%s\"')" % (printable(key.strip()), printable(raw))
            ) from None
        except yaml.YAMLError:
            value = raw
        result.set_path(key.strip(), value)
    return result


def compile_recipe(
    path: Union[str, Path],
    *,
    attrs: Optional[Dict[str, Any]] = None,
    facts: Optional[Callable[[], Dict[str, Any]]] = None,
    cookbook_path: Sequence[Union[str, Path]] = (),
    host: str = "localhost",
    remote: bool = False,
    tags: Sequence[str] = (),
    skip_tags: Sequence[str] = (),
) -> Plan:
    """Compile a recipe (file or cookbook folder) into the plan for one host; with
    ``tags`` / ``skip_tags``, only the steps they select (see :func:`select`)."""
    ctx = RecipeContext(attrs=attrs, facts=facts, cookbook_path=cookbook_path, host=host,
                        remote=remote)
    token = ctxvar.CURRENT.set(ctx)
    try:
        ctx.run_file(Path(path))
        plan = ctx.plan(display(resolve_recipe(path)), tags, skip_tags)
    except ConvergeError as exc:
        if exc.host is None:
            exc.host = host
        raise
    finally:
        ctxvar.CURRENT.reset(token)
    plan.options["facts_used"] = ctx.node.gathered
    return plan


def _pointed(exc: SyntaxError) -> Optional[str]:
    """The line of a syntax error and a caret under the spot, as Python shows them
    (offsets come in bytes of the file, shown in characters; indentation dropped)."""
    if not exc.text or not exc.text.strip() or not exc.offset:
        return None
    from .errors import printable

    text = exc.text.rstrip("\r\n")
    encoded = text.encode("utf-8", "surrogateescape")

    def column(offset: int) -> int:
        return len(encoded[:max(offset - 1, 0)].decode("utf-8", "replace"))

    start = column(exc.offset)
    end = column(exc.end_offset) if exc.end_lineno == exc.lineno and exc.end_offset else 0
    indent = len(text) - len(text.lstrip())
    line = printable(text[indent:])
    start = min(max(start - indent, 0), len(line))
    width = max(1, min(end - indent, len(line)) - start)
    return "%s\n  %s%s" % (line, " " * start, "^" * width)


def _recipe_line(tb: Optional[TracebackType], ctx: RecipeContext) -> Optional[str]:
    """file:line of the innermost frame of a recipe file in a traceback."""
    recipes = {display(p) for p in ctx.files} | {str(p) for p in ctx.files}
    found = None
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename in recipes or filename.endswith(".py") and _is_recipe_frame(tb):
            found = "%s:%s" % (filename, tb.tb_lineno)
        tb = tb.tb_next
    return found


def _is_recipe_frame(tb: TracebackType) -> bool:
    return tb.tb_frame.f_globals.get("__name__") == "__converge_recipe__"


def _template_line(tb: Optional[TracebackType], filename: str) -> Any:
    line: Any = "?"
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def caller_source(depth: int = 2) -> str:
    """file:line of the recipe line that called a DSL function."""
    frame = sys._getframe(depth)
    return "%s:%s" % (frame.f_code.co_filename, frame.f_lineno)
