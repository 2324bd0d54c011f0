"""The plan: what a compiled recipe asks of one host, as plain data.

The plan is the wire format (it is what travels to a remote agent), what
``converge plan`` evaluates, and what tests can assert on. Standard library only.

A Step is one resource with one action::

    {"id": "file[/etc/motd]", "type": "file", "action": "create",
     "props": {"path": "/etc/motd", "content": "...", ...},
     "source": "recipe.py:7", "only_if": null, "not_if": null,
     "notifies": [["restart", "service[chronyd]", "delayed"]],
     "ignore_failure": false, "retries": 0, "retry_delay": 2.0, "sensitive": false,
     "secret_file": false}

A composite (converge/resources/_composite.py) is a header step with
``"composite": true``, followed by its inner steps, each with ``"parent"`` the
composite's id. A group expanded for a notification (``svc.restart`` where
``svc`` is a composite) has ``"on_notify": [action, composite id]`` on its header
and inner steps: they run only when that notification fires.

``secret_file`` marks a step that writes a file a sensitive step writes too
(:func:`mark_secret_files`): its diffs would show the sensitive value, so they
are hidden as a sensitive step's are.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Iterable, List, Optional, Sequence, Type

from .resources._base import REGISTRY, Notification, Resource

PLAN_VERSION = 1


class Step:
    """One resource of the plan, with its action and run options."""

    __slots__ = ("id", "type", "action", "props", "source", "only_if", "not_if",
                 "notifies", "ignore_failure", "retries", "retry_delay", "sensitive",
                 "tags", "run_once", "unselected", "skip", "secret_file", "parent",
                 "composite", "on_notify")

    def __init__(self, **fields: Any) -> None:
        self.id: str = fields["id"]
        self.type: str = fields["type"]
        self.action: str = fields["action"]
        self.props: Dict[str, Any] = fields.get("props", {})
        self.source: Optional[str] = fields.get("source")
        self.only_if: Any = fields.get("only_if")
        self.not_if: Any = fields.get("not_if")
        self.notifies: List[List[str]] = [list(n) for n in fields.get("notifies", [])]
        self.ignore_failure: bool = bool(fields.get("ignore_failure", False))
        self.retries: int = int(fields.get("retries", 0))
        self.retry_delay: float = float(fields.get("retry_delay", 2.0))
        self.sensitive: bool = bool(fields.get("sensitive", False))
        self.tags: List[str] = list(fields.get("tags") or [])
        self.run_once: bool = bool(fields.get("run_once", False))
        # left out by --tags / --skip-tags, kept because a selected step notifies it
        self.unselected: bool = bool(fields.get("unselected", False))
        self.skip: Optional[str] = fields.get("skip")  # skipped, and why (run_once)
        self.secret_file: bool = bool(fields.get("secret_file", False))
        self.parent: Optional[str] = fields.get("parent")  # the composite it is part of
        self.composite: bool = bool(fields.get("composite", False))  # a group's header
        on_notify = fields.get("on_notify")
        self.on_notify: Optional[List[str]] = list(on_notify) if on_notify else None

    @classmethod
    def from_resource(cls, resource: Resource) -> "Step":
        meta = resource.meta
        return cls(
            id=resource.identity, type=resource.type_name, action=meta.action,
            props=resource.to_plan(), source=meta.source,
            only_if=meta.only_if, not_if=meta.not_if,
            notifies=[[n.action, n.target, n.timing] for n in meta.notifies],
            ignore_failure=meta.ignore_failure, retries=meta.retries,
            retry_delay=meta.retry_delay, sensitive=meta.sensitive, tags=list(meta.tags),
            run_once=meta.run_once,
            secret_file=meta.secret_file,
        )

    def resource(self, action: Optional[str] = None) -> Resource:
        """The resource this step converges, rebuilt for the target."""
        cls: Optional[Type[Resource]] = REGISTRY.get(self.type)
        if cls is None:
            raise KeyError("unknown resource type %r" % self.type)
        res = cls.from_plan(self.props, action or self.action)
        res.meta.source = self.source
        res.meta.sensitive = self.sensitive
        res.meta.secret_file = self.secret_file
        res.meta.retries = self.retries
        res.meta.retry_delay = self.retry_delay
        res.meta.notifies = [Notification(*n) for n in self.notifies]
        return res

    def to_dict(self) -> Dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


def secret_files(steps: Sequence[Step]) -> List[str]:
    """The files the sensitive steps write (and the steps marked as writing one of
    those, when a sensitive step was left out by --tags): they hold a secret."""
    return sorted({path for step in steps if (step.sensitive or step.secret_file)
                   and not step.composite for path in step.resource().writes()})


def mark_secret_files(steps: Sequence[Step], secret: Iterable[str] = ()) -> None:
    """Mark (``secret_file``) every step that writes a file a sensitive step
    writes, or one of the paths ``secret``: two resources sharing a file (a
    sensitive cron entry and another in one cron.d file, a sensitive ``file`` and
    a ``line`` in it) would otherwise show the secret in the other one's diff."""
    paths = set(secret).union(secret_files(steps))
    for step in steps:
        if not step.composite:
            step.secret_file = bool(paths.intersection(step.resource().writes()))


class Plan:
    """Ordered steps for one host, and where they came from."""

    def __init__(self, steps: List[Step], recipe: str = "", options: Optional[Dict[str, Any]] = None
                 ) -> None:
        self.steps = steps
        self.recipe = recipe
        self.options: Dict[str, Any] = options or {}

    def to_dict(self) -> Dict[str, Any]:
        return {"version": PLAN_VERSION, "recipe": self.recipe, "options": self.options,
                "steps": [s.to_dict() for s in self.steps]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "Plan":
        if data.get("version") != PLAN_VERSION:
            raise ValueError("plan version %r is not %d" % (data.get("version"), PLAN_VERSION))
        return cls([Step(**s) for s in data["steps"]], data.get("recipe", ""),
                   data.get("options"))

    @classmethod
    def from_json(cls, text: str) -> "Plan":
        return cls.from_dict(json.loads(text))

    def digest(self) -> str:
        """A hash of the plan's content (the journal records it)."""
        return sha256_hex(self.to_json().encode())


def sha256_hex(data: bytes) -> str:
    """hashlib.sha256(data).hexdigest() for a little data, from Python's built-in
    SHA-256 when it has one: importing hashlib loads OpenSSL, about 3 ms of CPU on
    every agent's start, when a run on the target hashes only its plan."""
    import importlib

    for name in ("_sha256", "_sha2", "hashlib"):  # 3.8-3.11, 3.12+, a build without
        try:
            return str(importlib.import_module(name).sha256(data).hexdigest())
        except (ImportError, AttributeError):
            continue
    raise ImportError("no SHA-256 implementation")  # pragma: no cover - hashlib has one
