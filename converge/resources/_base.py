"""The resource contract every resource type follows.

A resource type is a class with a docstring (with a recipe example), its properties
declared once as annotated class attributes made with :func:`prop`, and three
target-side methods::

    class Motd(Resource, type_name="motd"):
        '''...'''
        text: str = prop(doc="What /etc/motd says.", identity=True)

        def current(self, system): ...          # read the state
        def changes(self, current): ...         # pure: a list of Change
        def apply(self, system, changes): ...   # act

Subclasses get an ``__init__`` taking the properties by position or name (like a
dataclass's; dataclasses itself is not used, as its import costs every agent run
10 ms) and register themselves by ``type_name``; the DSL, plan decoding,
``converge resources`` and the reference docs iterate the registry. Construction
checks every property against its declaration (:func:`prop`: coerce, choices or
type; ``required_for`` once the action is set), then calls ``normalise()`` for
what declarations cannot say.
This module is shipped to targets: standard library only, Python 3.8.
"""

from __future__ import annotations

import importlib
import os
import types
from typing import Any, Callable, ClassVar, Dict, List, Optional, Sequence, Tuple, Type, Union

from ..errors import PropertyError
from ._validate import describe, kind_of, matches, quoted, shown


class _Registry(Dict[str, Type["Resource"]]):
    """Resource types by name. Looking up a type that is not loaded yet imports its
    module (``resources/<type_name>.py``), so the agent on a target imports only
    the types its plan uses; the controller calls :func:`load_all` to list them."""

    def __missing__(self, name: str) -> Type["Resource"]:
        if name.startswith("_") or not name.replace("_", "").isalnum():
            raise KeyError(name)
        module = "%s.%s" % (__package__, name)
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            raise KeyError(name) from None
        return dict.__getitem__(self, name)

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return self[name]
        except KeyError:
            return default


REGISTRY = _Registry()


def load_all() -> Dict[str, Type["Resource"]]:
    """Import every resource module (each registers its type) and return the registry."""
    folder = os.path.dirname(os.path.abspath(__file__))
    for entry in sorted(os.listdir(folder)):
        if entry.endswith(".py") and not entry.startswith("_"):
            importlib.import_module("%s.%s" % (__package__, entry[:-3]))
    return REGISTRY

class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


#: the default of a property that has none (a required property)
MISSING: Any = _Missing()


class Field:
    """One declared property (the shape of ``dataclasses.Field``, without importing
    dataclasses: its import of ``inspect`` costs every agent run 10 ms)."""

    __slots__ = ("name", "type", "default", "default_factory", "metadata", "declared",
                 "owner")

    def __init__(self, default: Any, default_factory: Any, metadata: Dict[str, Any],
                 declared: Any = MISSING) -> None:
        self.name = ""
        #: the annotation, as written (a string under ``from __future__ import annotations``)
        self.type: Any = None
        self.default = default
        self.default_factory = default_factory
        self.metadata = metadata
        #: the type given to prop(type=...), MISSING when the annotation says it
        self.declared = declared
        #: the class that declares it (where its annotation is evaluated)
        self.owner: Any = None

    @property
    def required(self) -> bool:
        return self.default is MISSING and self.default_factory is MISSING

    def value(self) -> Any:
        """The default value (a fresh one from the factory), or MISSING."""
        if self.default_factory is not MISSING:
            return self.default_factory()
        return self.default

    @property
    def kind(self) -> Any:
        """The type a value must have once coerced: prop(type=...), else the
        annotation evaluated where the class is defined (Any without either)."""
        if self.declared is not MISSING:
            return self.declared
        if self.owner is None or self.type is None:
            return Any
        if not isinstance(self.type, str):
            return self.type
        hints = self.owner.__dict__.get("_hints")
        if hints is None:
            import typing

            try:
                hints = typing.get_type_hints(self.owner)
            except Exception as exc:  # a name the module does not define
                raise TypeError("resource type %s: cannot read the annotation of property "
                                "%r (%s): import what it names, or give prop(type=...)"
                                % (self.owner.__name__, self.name, exc)) from None
            self.owner._hints = hints
        return hints.get(self.name, Any)

    def __repr__(self) -> str:
        return "Field(%r)" % self.name


def prop(
    default: Any = MISSING,
    *,
    doc: str,
    identity: bool = False,
    type: Any = MISSING,
    choices: Optional[Sequence[Any]] = None,
    required_for: Sequence[str] = (),
    coerce: Optional[Callable[[Any, str], Any]] = None,
    factory: Any = MISSING,
    wire: bool = True,
    sensitive: bool = False,
) -> Any:
    """Declare a property: its default, its documentation and how it is checked.

    When a recipe declares a resource, each value (but None) goes through
    ``coerce(value, name)`` (a validator such as ``_validate.mode``: it returns the
    canonical form or raises PropertyError), then must be one of ``choices`` when
    given, else of ``type`` (the annotation when not given: ``Optional[str]``,
    ``List[str]``...; ``int`` refuses True). ``required_for`` names the actions
    that need a value (it defaults to None). The errors name the recipe line, the
    resource and the property.

    ``identity`` marks the property that names the resource (``file[/etc/motd]``);
    ``wire=False`` keeps a compile-time-only input (a template's variables) out of
    the plan; ``sensitive`` marks a value that a resource declared
    ``sensitive=True`` never shows (content, a command).
    """
    if isinstance(required_for, str):
        required_for = (required_for,)
    if required_for and default is not None:
        raise TypeError("a property required_for %s must default to None"
                        % ", ".join(required_for))
    if choices is not None:
        choices = tuple(choices)
        if default not in (MISSING, None) and not any(_same(default, c) for c in choices):
            raise TypeError("default %r is not one of the choices %r" % (default, choices))
    meta = {"doc": doc, "identity": identity, "choices": choices, "wire": wire,
            "sensitive": sensitive, "required_for": tuple(required_for), "coerce": coerce}
    return Field(default, factory, meta, type)


def _same(value: Any, choice: Any) -> bool:
    """A choice matches: equal, and True is not 1 (nor 1.0 the integer 1)."""
    return bool(value == choice) and type(value) is type(choice)


def choices_text(choices: Sequence[Any]) -> str:
    """'systemd, sysvinit'; 'False, True, 'auto'' when not all are strings."""
    if all(isinstance(c, str) for c in choices):
        return ", ".join(choices)
    return ", ".join(repr(c) for c in choices)


class Change:
    """One difference between the current and the desired state.

    ``text`` is the sentence shown to people (Chef's voice: "set vm.swappiness from
    60 to 10"); ``diff`` an optional unified diff; ``data`` whatever ``apply`` needs.
    """

    __slots__ = ("text", "diff", "data")

    def __init__(self, text: str, diff: Optional[str] = None, data: Any = None) -> None:
        self.text = text
        self.diff = diff
        self.data = data

    def __repr__(self) -> str:
        return "Change(%r)" % self.text


class Pending:
    """Work a resource's changes leave for later in the run, done once however many
    resources leave it (three unit files changed: one ``systemctl daemon-reload``).

    ``resource`` is what does the work, with its action set (an ``execute``); it is
    known by its identity. The engine converges it before the first later step
    whose type is a key of ``before`` (with one of the listed actions; None: any
    action), or at the end of the run, and reports it notified by the resources
    that left it. See Resource.leaves and converge/agent/engine.py.
    """

    __slots__ = ("resource", "before")

    def __init__(self, resource: "Resource",
                 before: Dict[str, Optional[Tuple[str, ...]]]) -> None:
        self.resource = resource
        self.before = before

    def needed_by(self, type_name: str, action: str) -> bool:
        if type_name not in self.before:
            return False
        actions = self.before[type_name]
        return actions is None or action in actions

    def __repr__(self) -> str:
        return "Pending(%r)" % self.resource.identity


class Skipped(Exception):
    """Raised by current() or changes() when the resource decides not to run
    (execute with ``creates``); the message is the reason shown in the output."""


class Notification:
    """``service.restart``: an action of a resource, to run when another changes."""

    __slots__ = ("action", "target", "timing")

    def __init__(self, action: str, target: str, timing: str = "delayed") -> None:
        self.action = action
        self.target = target
        self.timing = timing

    def __repr__(self) -> str:
        return "Notification(%r, %r, %r)" % (self.action, self.target, self.timing)


class BoundAction(Notification):
    """``sysctl.apply``, where an action shares its name with a method: a
    Notification in a recipe (``notifies=s.apply``), the method when called."""

    __slots__ = ("method",)

    def __init__(self, action: str, target: str, method: Callable[..., Any]) -> None:
        super().__init__(action, target)
        self.method = method

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.method(*args, **kwargs)


class _ActionMethod:
    """Wraps a method named like one of its type's actions (see BoundAction)."""

    def __init__(self, function: Callable[..., Any], action: str) -> None:
        self.function = function
        self.action = action
        self.__doc__ = function.__doc__

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if obj is None:
            return self.function
        return BoundAction(self.action, obj.identity, self.function.__get__(obj, owner))


def _notifiable_actions(cls: Any) -> None:
    """Make ``resource.ACTION`` a Notification for every action of cls, also where a
    method has the action's name; refuse an action named like any other attribute."""
    fields = {f.name for f in cls._fields}
    for action in tuple(cls.actions) + tuple(cls.notify_only):
        owner = next((k for k in cls.__mro__ if action in k.__dict__), None)
        value = None if owner is None else owner.__dict__[action]
        if isinstance(value, _ActionMethod) or (owner is None and action not in fields):
            continue
        if isinstance(value, types.FunctionType) and action not in fields:
            setattr(cls, action, _ActionMethod(value, action))
            continue
        raise TypeError("resource type %r: action %r has the name of a property or "
                        "attribute, so %s.%s could not name the action; rename one of them"
                        % (cls.type_name, action, cls.type_name, action))


class Meta:
    """The properties every resource has, whatever its type."""

    __slots__ = (
        "action", "source", "only_if", "not_if", "notifies", "subscribes",
        "ignore_failure", "retries", "retry_delay", "sensitive", "tags", "run_once",
        "secret_file",
    )

    def __init__(self) -> None:
        self.action = ""
        self.source: Optional[str] = None
        self.only_if: Any = None
        self.not_if: Any = None
        self.notifies: List[Notification] = []
        self.subscribes: List[Notification] = []
        self.ignore_failure = False
        self.retries = 0
        self.retry_delay = 2.0
        self.sensitive = False
        self.tags: List[str] = []
        self.run_once = False
        #: writes a file that a sensitive resource writes too (plan.mark_secret_files)
        self.secret_file = False


# What each common property means; the DSL accepts these on every resource.
COMMON_PROPERTIES: Dict[str, str] = {
    "action": "What to do; the type's first action by default. 'nothing' declares a "
    "resource that only runs when notified.",
    "only_if": "Run only if this command (an argument list, run on the target) exits "
    "0, or this callable (evaluated while compiling) returns true.",
    "not_if": "Skip if this command exits 0, or this callable returns true.",
    "notifies": "Actions of other resources to run when this one changes: "
    "svc.restart (any action of any type, sysctl's s.apply too), or [('restart', svc)]. "
    "Delayed to the end of the run by default.",
    "subscribes": "The reverse of notifies: [('restart', cfg)] runs this resource's "
    "restart when cfg changes; ('restart', cfg, 'immediately') runs it right after cfg.",
    "immediately": "Run this resource's notifications right after it, not at the end.",
    "ignore_failure": "A failure is reported but does not fail the run.",
    "retries": "How many times to retry a failed resource.",
    "retry_delay": "Seconds between retries.",
    "sensitive": "Never show content, diffs or values of this resource in any output.",
    "tags": "A tag or a list of tags: --tags runs only tagged resources, --skip-tags "
    "leaves them out (tags given to include_recipe are added).",
    "run_once": "In a fleet run, converge this resource on the first host of each batch "
    "only (a migration, a cluster bootstrap); the others list it as skipped.",
}


class Resource:
    """Base class of every resource type; see the module docstring."""

    type_name: ClassVar[str] = ""
    actions: ClassVar[Tuple[str, ...]] = ()
    #: the action, or sequence of actions, used when the recipe names none
    #: (service: ("enable", "start"), one plan step each)
    default_action: ClassVar[Union[str, Tuple[str, ...], None]] = None
    #: actions that only exist to be notified (restart, reload)
    notify_only: ClassVar[Tuple[str, ...]] = ()

    #: the declared properties, in order (a subclass's own come after its base's)
    _fields: ClassVar[Tuple[Field, ...]] = ()

    def __init_subclass__(cls, type_name: str = "", **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fields = {f.name: f for f in cls._fields}
        annotations = cls.__dict__.get("__annotations__", {})
        for name, value in list(cls.__dict__.items()):
            if isinstance(value, Field):
                value.name, value.type, value.owner = name, annotations.get(name), cls
                fields[name] = value
                # Instances carry the values; the class keeps plain defaults only. A
                # property called ``name`` (cron, oom_protect) must also shadow the
                # computed ``name`` below, so it always gets a class attribute.
                if value.default is not MISSING or name == "name":
                    setattr(cls, name, None if value.default is MISSING else value.default)
                else:
                    delattr(cls, name)
        cls._fields = tuple(fields.values())
        if not type_name:
            return
        if type_name in REGISTRY:
            raise TypeError("resource type %r is registered twice" % type_name)
        if cls.__module__.startswith(__package__ + ".") and \
                cls.__module__.rpartition(".")[2] != type_name:
            raise TypeError("resource type %r must live in resources/%s.py, where the agent "
                            "looks for it" % (type_name, type_name))
        if not cls.actions:
            raise TypeError("resource type %r declares no actions (such as actions = "
                            "('create', 'delete'); the first is the default)" % type_name)
        for f in cls._fields:
            if f.name in COMMON_PROPERTIES:
                raise TypeError("resource type %r: property %r has the name of a property "
                                "every resource takes (%s); give it another name"
                                % (type_name, f.name, ", ".join(COMMON_PROPERTIES)))
            unknown = set(f.metadata.get("required_for", ())) - set(cls.actions + cls.notify_only)
            if unknown:
                raise TypeError("resource type %r: property %r is required_for %s, which is "
                                "not an action of the type" % (type_name, f.name,
                                                               ", ".join(sorted(unknown))))
        cls.type_name = type_name
        _notifiable_actions(cls)
        REGISTRY[type_name] = cls

    # -- construction (controller) ----------------------------------------------

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Properties by position (in declaration order) or by name, then
        :meth:`__post_init__`; the errors are Python's own for a bad call."""
        fields = self._fields
        if len(args) > len(fields):
            raise TypeError("takes %d positional arguments but %d were given"
                            % (len(fields), len(args)))
        values = {fields[i].name: value for i, value in enumerate(args)}
        names = {f.name for f in fields}
        for key, value in kwargs.items():
            if key not in names:
                raise TypeError("got an unexpected keyword argument '%s'" % key)
            if key in values:
                raise TypeError("got multiple values for argument '%s'" % key)
            values[key] = value
        missing = [f.name for f in fields if f.name not in values and f.required]
        if missing:
            raise TypeError("missing %d required argument%s: %s" % (
                len(missing), "s" if len(missing) > 1 else "",
                ", ".join("'%s'" % m for m in missing)))
        for f in fields:
            object.__setattr__(self, f.name, values[f.name] if f.name in values else f.value())
        self.__post_init__()

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, f.name) == getattr(other, f.name) for f in self._fields)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return "%s(%s)" % (type(self).__name__, ", ".join(
            "%s=%r" % (f.name, getattr(self, f.name)) for f in self._fields))

    def __post_init__(self) -> None:
        self.meta = Meta()
        self.warnings: List[str] = []
        try:
            self.check_declared()
            self.normalise()
        except PropertyError as exc:  # a shared validator's: it does not know the resource
            exc.identity = exc.identity or self._label()
            raise

    def check_declared(self) -> None:
        """What the declarations say, property by property, in order: coerce, then
        choices, or else the type."""
        for f in self._fields:
            value = getattr(self, f.name)
            coerce = f.metadata.get("coerce")
            if coerce is not None and value is not None:
                value = coerce(value, f.name)
                object.__setattr__(self, f.name, value)
            choices = f.metadata.get("choices")
            if choices is not None and value is not None:
                if not any(_same(value, c) for c in choices):
                    given = quoted(value) if isinstance(value, str) else shown(value)
                    raise self.fail("%s %s is not one of: %s"
                                    % (f.name, given, choices_text(choices)))
            elif not matches(value, f.kind):
                raise self.fail("%s must be %s, not %s" % (
                    f.name, describe(f.kind), kind_of(value) if f.metadata.get("sensitive")
                    else shown(value)))

    def check_required(self) -> None:
        """The properties ``required_for`` the chosen actions have a value; called
        once the recipe has set the action (after construction)."""
        for action in self.action.split(","):
            missing = self.missing_for(action)
            if missing:
                raise self.fail("%s is required for action '%s'" % (missing, action))

    def missing_for(self, action: str) -> Optional[str]:
        """The first property ``required_for`` this action that has no value."""
        for f in self._fields:
            if action in f.metadata.get("required_for", ()) and getattr(self, f.name) is None:
                return f.name
        return None

    def normalise(self) -> None:
        """Hook: bring properties to one canonical form and check what the
        declarations cannot say (one property against another).

        Raise :meth:`fail` errors, or :class:`PropertyError` from a shared
        validator: its message says what was expected.
        """

    def check_action(self) -> None:
        """Hook: validate what depends on the action and another property; called
        after :meth:`check_required`. Raise :meth:`fail` errors."""

    @classmethod
    def fields(cls) -> Tuple[Field, ...]:
        return cls._fields

    @classmethod
    def identity_field(cls) -> str:
        for f in cls.fields():
            if f.metadata.get("identity"):
                return f.name
        return cls.fields()[0].name

    @property
    def name(self) -> str:
        """The identifying value, as shown between the brackets."""
        return str(getattr(self, self.identity_field()))

    @property
    def identity(self) -> str:
        return "%s[%s]" % (self.type_name, self.name)

    @property
    def action(self) -> str:
        return self.meta.action

    @property
    def hides_content(self) -> bool:
        """Whether the content this resource would show (a diff, a line it quotes,
        a content hash) may hold a sensitive value: it is sensitive itself, or it
        writes a file that a sensitive resource writes too."""
        return bool(self.meta.sensitive or self.meta.secret_file)

    def writes(self) -> List[str]:
        """The files this resource writes, as target paths (``crontab(USER)`` for a
        user's crontab). A file a sensitive resource writes is secret: every
        resource that writes it hides its diffs (see plan.mark_secret_files)."""
        return []

    def __getattr__(self, attr: str) -> Any:
        # svc.restart is a Notification; only for the type's actions.
        actions = type(self).actions
        if attr in actions or attr in type(self).notify_only:
            return Notification(attr, self.identity)
        raise AttributeError("%s has no property or action %r" % (self.type_name, attr))

    def fail(self, message: str) -> PropertyError:
        """A PropertyError about this resource (raise it)."""
        return PropertyError(message, identity=self._label())

    def _label(self) -> str:
        """The identity, also while the properties are not checked yet."""
        try:
            return self.identity
        except (AttributeError, TypeError, ValueError, IndexError):
            return "%s[%s]" % (self.type_name, getattr(self, self.identity_field(), "?"))

    # -- the plan ---------------------------------------------------------------------

    def to_plan(self) -> Dict[str, Any]:
        """The properties that travel to the target, as plain JSON data."""
        return {
            f.name: _plain(getattr(self, f.name))
            for f in self.fields()
            if f.metadata.get("wire", True)
        }

    @classmethod
    def from_plan(cls, props: Dict[str, Any], action: str) -> "Resource":
        """Rebuild a resource on the target from plan data, without revalidating."""
        obj = cls.__new__(cls)
        for f in cls.fields():
            value = props[f.name] if f.name in props else f.value()
            object.__setattr__(obj, f.name, None if value is MISSING else value)
        obj.meta = Meta()
        obj.meta.action = action
        obj.warnings = []
        obj.decoded()
        return obj

    def decoded(self) -> None:
        """Hook: restore types JSON cannot carry (bytes, tuples) after from_plan."""

    def with_action(self, action: str) -> "Resource":
        """A copy of this resource that performs another action (notifications)."""
        clone = type(self).from_plan(self.to_plan(), action)
        clone.meta.sensitive = self.meta.sensitive
        clone.meta.secret_file = self.meta.secret_file
        clone.meta.source = self.meta.source
        return clone

    # -- the target ---------------------------------------------------------------------

    def current(self, system: Any) -> Any:
        """Read the current state from the system."""
        raise NotImplementedError

    def changes(self, current: Any) -> List[Change]:
        """Compare current and desired state: what would have to change."""
        raise NotImplementedError

    def apply(self, system: Any, changes: List[Change]) -> None:
        """Make the changes."""
        raise NotImplementedError

    def leaves(self, system: Any, current: Any, changes: List[Change]) -> List[Pending]:
        """The work these changes leave for later in the run (see :class:`Pending`);
        asked after a successful apply, and in plan mode after the changes."""
        return []


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"__bytes__": value.hex()}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def unplain(value: Any) -> Any:
    """Undo :func:`_plain` for bytes (the only type JSON loses that we need)."""
    if isinstance(value, dict) and set(value) == {"__bytes__"}:
        return bytes.fromhex(value["__bytes__"])
    return value


def short_hash(data: bytes) -> str:
    """The 8-character content fingerprint shown in change lines."""
    import hashlib

    return hashlib.sha256(data).hexdigest()[:8]
