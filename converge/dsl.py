"""The recipe language: one function per registered resource type, plus
``include_recipe`` and ``allow_sources``. Each call validates at once and registers
the resource in the recipe being compiled; a mistake is a PropertyError naming the
recipe line."""

from __future__ import annotations

import re
import sys
from typing import Any, Callable, Dict, List, Optional, Set, Tuple, Type

from . import context
from .errors import ConvergeError, PropertyError, printable
from .recipe import Pair, RecipeContext, caller_source, display
from .resources._base import COMMON_PROPERTIES, REGISTRY, Notification, Resource, load_all
from .resources._validate import boolean, integer

TIMINGS = ("delayed", "immediately")


def _source_here(depth: int = 3) -> str:
    where = caller_source(depth)
    path, _, line = where.rpartition(":")
    return "%s:%s" % (display(path), line)


def declare(cls: Type[Resource], args: Tuple[Any, ...], kwargs: Dict[str, Any],
            source: str) -> Resource:
    """Build, validate and register one resource."""
    ctx = context.current()
    names = [f.name for f in cls.fields()]
    label = "%s[%s]" % (cls.type_name, args[0] if args else kwargs.get(names[0], "?"))
    common = {k: kwargs.pop(k) for k in list(kwargs) if k in COMMON_PROPERTIES}
    try:
        return _declare(ctx, cls, args, kwargs, common, names, label, source)
    except ConvergeError as exc:
        if exc.identity:
            exc.identity = printable(exc.identity)
        if common.get("sensitive") is True:
            _redact(exc, cls, args, kwargs)
        raise


def _declare(ctx: RecipeContext, cls: Type[Resource], args: Tuple[Any, ...], kwargs: Dict[str, Any],
             common: Dict[str, Any], names: List[str], label: str, source: str) -> Resource:
    for key in kwargs:
        if key not in names:
            import difflib

            guess = difflib.get_close_matches(key, names + list(COMMON_PROPERTIES), n=1)
            hint = " (did you mean '%s'?)" % guess[0] if guess else ""
            raise PropertyError("unknown property '%s'%s" % (key, hint), source=source,
                                identity=label)
    if len(args) > len(names):
        raise PropertyError("takes at most %d positional values" % len(names), source=source,
                            identity=label)
    try:
        resource = cls(*args, **kwargs)
        _apply_common(resource, common)
    except TypeError as exc:
        raise PropertyError(str(exc).replace("__init__() ", ""), source=source,
                            identity=label) from None
    except ConvergeError as exc:
        exc.source = exc.source or source
        exc.identity = exc.identity or label
        raise
    resource.meta.source = source
    _vault_values(resource)
    if ctx.remote:
        _refuse_relative_paths(resource)
    return ctx.add(resource)


def _vault_values(resource: Resource) -> None:
    """A value decrypted from a vault makes the resource that holds it sensitive (by
    value: ``"password=%s" % secret`` holds it too). A command line never carries one:
    every user of the target can read a process's argv."""
    from . import vault

    if not vault.revealed():
        return
    meta = resource.meta
    commands = [("only_if", meta.only_if), ("not_if", meta.not_if)]
    if resource.type_name == "execute":
        commands.insert(0, ("command", getattr(resource, "command", None)))
    for name, command in commands:
        if not callable(command) and vault.holds_secret(command):
            meta.sensitive = True
            error = resource.fail(
                "%s holds a value decrypted from a vault, and a command line is visible "
                "to every user of the target (ps, /proc): pass the value in "
                "environment={...} and refer to it as $NAME" % name)
            error.source = meta.source
            raise error
    values = [getattr(resource, f.name, None) for f in type(resource).fields()]
    if vault.holds_secret(values):
        meta.sensitive = True


def _redact(exc: ConvergeError, cls: Type[Resource], args: Tuple[Any, ...],
            kwargs: Dict[str, Any]) -> None:
    """A sensitive resource's error: every value of its sensitive properties (the
    content, the command...) that the message or identity shows becomes
    '(sensitive)'."""
    given = dict(zip([f.name for f in cls.fields()], args, strict=False), **kwargs)
    secrets: Set[str] = set()
    for f in cls.fields():
        if f.metadata.get("sensitive") and given.get(f.name) is not None:
            _texts(given[f.name], secrets)
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        exc.message = exc.message.replace(secret, "(sensitive)")
        if exc.identity:
            exc.identity = exc.identity.replace(secret, "(sensitive)")
    exc.args = (exc.message,)


def _texts(value: Any, out: Set[str]) -> None:
    """Every way a message may show a value: str, repr, and those of its parts."""
    if isinstance(value, str):  # a command string is also suggested as a list
        out.update({value, repr(value), printable(value), repr(value.split())})
        return
    if isinstance(value, bytes):
        out.update({repr(value), value.decode("utf-8", "replace")})
        return
    if isinstance(value, dict):
        out.update({repr(value), str(value)})
        for item in value.values():
            _texts(item, out)
        return
    if isinstance(value, (list, tuple)):
        out.update({repr(value), repr(list(value)), " ".join(str(v) for v in value)})
        for item in value:
            _texts(item, out)
        return
    out.update({repr(value), str(value)})


def _refuse_relative_paths(resource: Resource) -> None:
    value = getattr(resource, "path", None)
    if isinstance(value, str) and not value.startswith("/"):
        raise resource.fail(
            "path '%s' is relative; a recipe pushed to other machines needs absolute "
            "paths (a relative path is only allowed on a local run)" % value)


def _apply_common(resource: Resource, common: Dict[str, Any]) -> None:
    meta = resource.meta
    cls = type(resource)
    # first: the identity of a sensitive resource (execute, line) hides its values
    meta.sensitive = boolean(common.get("sensitive", False), "sensitive")
    action = common.get("action", cls.default_action or cls.actions[0])
    actions = [action] if isinstance(action, str) else list(action)
    for a in actions:
        if a not in cls.actions + cls.notify_only + ("nothing",):
            raise resource.fail("action '%s' is not one of: %s"
                                % (a, ", ".join(cls.actions + cls.notify_only + ("nothing",))))
    meta.action = ",".join(actions)
    resource.check_required()
    resource.check_action()
    meta.only_if = _guard(resource, "only_if", common.get("only_if"))
    meta.not_if = _guard(resource, "not_if", common.get("not_if"))
    timing = "immediately" if boolean(common.get("immediately", False), "immediately") \
        else "delayed"
    meta.notifies = _notifications(resource, common.get("notifies"), timing)
    if common.get("subscribes") is not None:
        entries = _pairs(resource, "subscribes", common["subscribes"])
        context.current().subscriptions.append((resource, entries))
    meta.tags = sorted(set(tag_list(common.get("tags"), resource.fail))
                       | set(context.current().tags))
    meta.run_once = boolean(common.get("run_once", False), "run_once")
    meta.ignore_failure = boolean(common.get("ignore_failure", False), "ignore_failure")
    meta.retries = integer(common.get("retries", 0), "retries", 0, 100)
    try:
        meta.retry_delay = float(common.get("retry_delay", 2.0))
    except (TypeError, ValueError):
        raise resource.fail("retry_delay must be a number of seconds") from None


def _guard(resource: Resource, name: str, value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if callable(value):
        return bool(value())
    if isinstance(value, (list, tuple)) and value and all(isinstance(a, str) for a in value):
        return list(value)
    if isinstance(value, str):
        raise resource.fail(
            "%s must be an argument list such as ['test', '-f', '/etc/x'] or a callable; "
            "a string is never run by a shell (write ['sh', '-c', %r] to say so)" % (name, value))
    raise resource.fail("%s must be an argument list or a callable, not %r" % (name, value))


def _pairs(resource: Resource, name: str, value: Any) -> List[Pair]:
    """(action, resource, timing) from the forms notifies/subscribes accept; the
    timing is None unless the entry gives one (('restart', svc, 'immediately'))."""
    if isinstance(value, (Notification, tuple)):
        value = [value]
    if not isinstance(value, list):
        raise resource.fail("%s takes svc.restart or [('restart', svc)], not %r" % (name, value))
    out: List[Pair] = []
    for item in value:
        if isinstance(item, Notification):
            out.append((item.action, item.target, None))
        elif isinstance(item, tuple) and len(item) in (2, 3) and isinstance(item[0], str):
            target = item[1].identity if isinstance(item[1], Resource) else str(item[1])
            if len(item) == 3 and item[2] not in TIMINGS:
                raise resource.fail("notification timing '%s' is not one of: %s"
                                    % (item[2], ", ".join(TIMINGS)))
            out.append((item[0], target, item[2] if len(item) == 3 else None))
        else:
            raise resource.fail("%s entry %r is not svc.restart or ('restart', svc)"
                                % (name, item))
    return out


def _notifications(resource: Resource, value: Any, timing: str) -> List[Notification]:
    if value is None:
        return []
    notes = []
    for action, target, when in _pairs(resource, "notifies", value):
        notes.append(Notification(action, target, when or timing))
    return notes


def make_function(cls: Type[Resource]) -> Callable[..., Resource]:
    """The DSL function for a resource type: ``file(path, **properties)``."""
    import inspect  # here: only once a recipe asks for a type (the CLI has it from typer)

    def function(*args: Any, **kwargs: Any) -> Resource:
        return declare(cls, args, kwargs, _source_here())

    function.__name__ = function.__qualname__ = cls.type_name
    function.__doc__ = cls.__doc__
    params = [inspect.Parameter(f.name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                default=inspect.Parameter.empty if f.required else f.value())
              for f in cls.fields()]
    params += [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=None)
               for k in COMMON_PROPERTIES]
    function.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    return function


def deferred(type_name: str) -> Callable[..., Resource]:
    """The DSL function of a type that is not loaded yet, for a type file that
    imports one of its cookbook's types (a composite's inner type, or itself)
    before that file is loaded: the type is looked up when the function is called."""

    def function(*args: Any, **kwargs: Any) -> Resource:
        from .resources._base import REGISTRY

        cls = dict.get(REGISTRY, type_name)
        if cls is None:
            raise PropertyError("no resource type '%s' (neither converge's nor the "
                                "cookbook's resources/)" % type_name, source=_source_here())
        return declare(cls, args, kwargs, _source_here())

    function.__name__ = function.__qualname__ = type_name
    return function


TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:\-]{0,63}")


def tag_list(value: Any, fail: Callable[[str], ConvergeError]) -> List[str]:
    """``tags=``: one tag or a list of them, each a word such as 'ntp' or 'web-tier'."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise fail("tags must be a tag or a list of tags, not %r" % (value,))
    for item in items:
        if not isinstance(item, str) or not TAG.fullmatch(item):
            raise fail("tag %r: use letters, digits and _ . : - (at most 64)" % (item,))
    return list(items)


def include_recipe(name: str, tags: Any = None) -> None:
    """Run another recipe once: a path relative to this recipe, or a cookbook name.
    ``tags`` are added to every resource it declares."""
    source = _source_here()
    ctx = context.current()
    try:
        added = tag_list(tags, lambda message: PropertyError(message, source=source))
        saved = ctx.tags
        ctx.tags = saved + [t for t in added if t not in saved]
        try:
            ctx.include_recipe(name)
        finally:
            ctx.tags = saved
    except ConvergeError as exc:
        exc.source = exc.source or source
        raise


def allow_sources(*folders: str) -> None:
    """Let this recipe file's ``source=`` and templates (and their includes) also
    come from these folders (relative ones: to the recipe), besides its own folder
    and its cookbook's files/ and templates/; any other place is refused."""
    source = _source_here()
    try:
        context.current().allow_sources(folders)
    except ConvergeError as exc:
        exc.source = exc.source or source
        raise


#: what a recipe imports besides the resource functions
HELPERS = {"include_recipe": include_recipe, "allow_sources": allow_sources}

#: the resource functions made so far, by type name (see :func:`function_for`)
FUNCTIONS: Dict[str, Callable[..., Resource]] = {}


def function_for(name: str) -> Optional[Callable[..., Resource]]:
    """The DSL function of a registered type (a built-in one's module is imported now:
    a recipe imports the types it uses, not all of them), the same object each time;
    None when there is no such type."""
    if name not in FUNCTIONS:
        cls = dict.get(REGISTRY, name)
        if cls is None and "converge.resources." + name not in sys.modules:  # (not a type
            cls = REGISTRY.get(name)  # file being loaded, which has not registered yet)
        if cls is None:
            return None
        FUNCTIONS[name] = make_function(cls)
    return FUNCTIONS[name]


def all_functions() -> Dict[str, Callable[..., Resource]]:
    """Every registered type's function (``from converge import *``, ``dir()``)."""
    for name in load_all():
        function_for(name)
    return FUNCTIONS
