"""The engine's batching hook: ``prepare(system, resources, mode)`` gets each run of
consecutive unguarded steps of its type once, before they converge."""

from __future__ import annotations

from typing import Any, ClassVar, List

import pytest

from converge.agent.engine import Engine
from converge.agent.system import System
from converge.plan import Plan, Step
from converge.resources._base import REGISTRY, Change, Resource, prop


class Batched(Resource):
    """A toy type that records what prepare saw (registered only inside the test)."""

    actions = ("go",)
    seen: ClassVar[List[Any]] = []

    label: str = prop(doc="label", identity=True)

    @classmethod
    def prepare(cls, system: Any, resources: List["Batched"], mode: str) -> None:
        cls.seen.append(([r.label for r in resources], mode))
        for res in resources:
            res.__dict__["prepared"] = True

    def current(self, system: Any) -> Any:
        return self.__dict__.get("prepared", False)

    def changes(self, current: Any) -> List[Change]:
        return [Change("go %s (prepared: %s)" % (self.label, current))]

    def apply(self, system: Any, changes: List[Change]) -> None:
        pass


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
def test_runs_are_prepared_once_and_broken_by_other_types_and_guards(
        batched: type, tmp_path: Any, mode: str) -> None:
    plan = Plan([step("a"), step("b"), step("/f", "file"), step("c"),
                 step("d", not_if=["false"]), step("e")])
    events = Engine(System(str(tmp_path), cwd="/"), mode=mode).run(plan)
    assert batched.seen == [(["a", "b"], mode), (["c"], mode), (["e"], mode)]
    assert [e["changes"] for e in events if e["type"] == "batched"] == [
        ["go a (prepared: True)"], ["go b (prepared: True)"], ["go c (prepared: True)"],
        ["go d (prepared: False)"], ["go e (prepared: True)"]]
