"""The engine's batching hooks: ``prefetch(system, resources)`` reads each run of
consecutive unguarded steps of its type once, before they converge;
``apply_batch(system, batch)`` acts on the members that changed in one go, after
the journal has recorded every one of them."""

from __future__ import annotations

from typing import Any, ClassVar, List, Optional, Sequence, Tuple

import pytest

from converge.agent.engine import Engine
from converge.agent.system import System
from converge.errors import ResourceError
from converge.plan import Plan, Step
from converge.resources._base import REGISTRY, Change, Resource, prop


class Batched(Resource):
    """A toy type that records what the hooks saw (registered only inside the test)."""

    actions = ("go",)
    seen: ClassVar[List[Any]] = []

    label: str = prop(doc="label", identity=True)

    @classmethod
    def prefetch(cls, system: Any, resources: Sequence["Batched"]) -> List[Any]:
        cls.seen.append(("prefetch", [r.label for r in resources]))
        return ["prefetched"] * len(resources)

    @classmethod
    def apply_batch(cls, system: Any, batch: Sequence[Tuple["Batched", List[Change]]]
                    ) -> List[Optional[ResourceError]]:
        cls.seen.append(("transaction", [r.label for r, _ in batch]))
        return [ResourceError("%s is broken" % r.label) if r.label == "b" else None
                for r, _ in batch]

    def current(self, system: Any) -> Any:
        return "read alone"

    def changes(self, current: Any) -> List[Change]:
        return [] if self.label == "same" else [Change("go %s (%s)" % (self.label, current))]

    def apply(self, system: Any, changes: List[Change]) -> None:
        self.seen.append(("alone", [self.label]))


class Journal:
    """The calls a journal gets, in order."""

    def __init__(self) -> None:
        self.calls: List[Tuple[str, str]] = []

    def begin(self, event: Any, resource: Any, current: Any, changes: Any) -> None:
        self.calls.append(("begin", event["id"]))

    def applied(self, event: Any) -> None:
        self.calls.append(("applied", event["id"]))

    def event(self, event: Any) -> None:
        self.calls.append(("event", event["id"]))


@pytest.fixture
def batched(monkeypatch: pytest.MonkeyPatch) -> type:
    Batched.type_name = "batched"
    monkeypatch.setitem(REGISTRY, "batched", Batched)
    Batched.seen = []
    return Batched


def step(label: str, kind: str = "batched", **extra: Any) -> Step:
    props = {"label": label} if kind == "batched" else {"path": label, "content": "x"}
    return Step(id="%s[%s]" % (kind, label), type=kind,
                action="go" if kind == "batched" else "create", props=props, **extra)


@pytest.mark.parametrize("mode", ["apply", "plan"])
def test_runs_are_batched_and_broken_by_other_types_and_guards(
        batched: type, tmp_path: Any, mode: str) -> None:
    plan = Plan([step("a"), step("b"), step("/f", "file"), step("c"),
                 step("d", not_if=["false"]), step("e")])
    events = Engine(System(str(tmp_path), cwd="/"), mode=mode).run(plan)
    if mode == "apply":
        assert batched.seen == [
            ("prefetch", ["a", "b"]), ("transaction", ["a", "b"]),
            ("prefetch", ["c"]), ("transaction", ["c"]), ("alone", ["d"]),
            ("prefetch", ["e"]), ("transaction", ["e"])]
    else:
        assert batched.seen == [("prefetch", ["a", "b"]), ("prefetch", ["c"]),
                                ("prefetch", ["e"])]
    assert [e["changes"] for e in events if e["type"] == "batched"] == [
        ["go a (prefetched)"], ["go b (prefetched)"], ["go c (prefetched)"],
        ["go d (read alone)"], ["go e (prefetched)"]]
    if mode == "apply":
        assert [e["status"] for e in events if e["type"] == "batched"] == [
            "updated", "failed", "updated", "updated", "updated"]
        assert events[1]["error"] == "b is broken"


def test_every_member_is_journaled_before_the_transaction(batched: type, tmp_path: Any) -> None:
    """An agent killed during the transaction leaves a journal naming the whole batch."""
    journal = Journal()
    plan = Plan([step("a"), step("same"), step("c")])
    Engine(System(str(tmp_path), cwd="/"), mode="apply", journal=journal).run(plan)
    assert batched.seen == [("prefetch", ["a", "same", "c"]), ("transaction", ["a", "c"])]
    assert journal.calls == [
        ("begin", "batched[a]"), ("begin", "batched[c]"),
        ("applied", "batched[a]"), ("applied", "batched[c]"),
        ("event", "batched[a]"), ("event", "batched[same]"), ("event", "batched[c]")]


class Recorded(Batched):
    """Batched, with a ``before`` hook and a transaction that writes through the System."""

    @classmethod
    def apply_batch(cls, system: Any, batch: Sequence[Tuple["Batched", List[Change]]]
                    ) -> List[Optional[ResourceError]]:
        for resource, changes in batch:
            system.write_atomic("/done-%s" % resource.label,
                                "".join(c.text + "\n" for c in changes).encode(), 0o644)
        return [None] * len(batch)

    def before(self, system: Any, current: Any, changes: List[Change]) -> Any:
        return {"current": current, "changes": [c.text for c in changes]}


def test_the_journal_keeps_what_each_member_was_and_the_transaction_acts_on_its_changes(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    from converge.agent import journal as jn

    Recorded.type_name = "batched"
    monkeypatch.setitem(REGISTRY, "batched", Recorded)
    system = System(str(tmp_path), cwd="/")
    journal = jn.Journal(system)
    Engine(system, mode="apply", journal=journal).run(Plan([step("a"), step("c")]))
    assert [r["before"] for r in journal.data["resources"]] == [
        {"current": "prefetched", "changes": ["go a (prefetched)"]},
        {"current": "prefetched", "changes": ["go c (prefetched)"]}]
    assert (tmp_path / "done-a").read_text() == "go a (prefetched)\n"
    assert (tmp_path / "done-c").read_text() == "go c (prefetched)\n"


def test_a_step_with_action_nothing_is_neither_prefetched_nor_batched(
        batched: type, tmp_path: Any) -> None:
    idle = Step(id="batched[n]", type="batched", action="nothing", props={"label": "n"})
    events = Engine(System(str(tmp_path), cwd="/"), mode="apply").run(
        Plan([step("a"), idle, step("c")]))
    assert batched.seen == [("prefetch", ["a"]), ("transaction", ["a"]),
                            ("prefetch", ["c"]), ("transaction", ["c"])]
    assert [e.get("skip_reason") for e in events] == [None, "action nothing", None]
