"""The engine: guards, notifications, retries, plan round trip, compile features."""

from __future__ import annotations

import json
from typing import List

import pytest

from converge.agent.engine import Engine
from converge.errors import PropertyError
from converge.plan import Plan
from tests.conftest import Converger, statuses


def test_guards_skip_with_reason(converger: Converger) -> None:
    events = converger.run('''
        from converge import file
        file("/etc/a", content="a", only_if=lambda: False)
        file("/etc/b", content="b", not_if=["true"])
        file("/etc/c", content="c", only_if=["true"], not_if=["false"])
        file("/etc/d", content="d", action="nothing")
    ''')
    assert statuses(events) == ["skipped", "skipped", "updated", "skipped"]
    assert [e.get("skip_reason") for e in events] == ["only_if", "not_if", None,
                                                      "action nothing"]
    assert not converger.path("/etc/a").exists() and converger.path("/etc/c").exists()


def test_delayed_notifications_run_once_at_the_end(converger: Converger) -> None:
    events = converger.run('''
        from converge import file
        target = file("/etc/notified", content="n", action="nothing")
        file("/etc/one", content="1", notifies=target.create)
        file("/etc/two", content="2", notifies=[("create", target)])
        file("/etc/three", content="3")
    ''')
    assert [(e["id"], e["status"]) for e in events] == [
        ("file[/etc/notified]", "skipped"), ("file[/etc/one]", "updated"),
        ("file[/etc/two]", "updated"), ("file[/etc/three]", "updated"),
        ("file[/etc/notified]", "updated")]
    assert events[-1]["notified_by"] == "file[/etc/one]"


def test_immediate_notification_runs_right_after(converger: Converger) -> None:
    events = converger.run('''
        from converge import file
        target = file("/etc/notified", content="n", action="nothing")
        file("/etc/one", content="1", notifies=target.create, immediately=True)
        file("/etc/two", content="2")
    ''')
    assert [e["id"] for e in events] == ["file[/etc/notified]", "file[/etc/one]",
                                         "file[/etc/notified]", "file[/etc/two]"]


def test_only_changed_resources_notify_and_failures_skip_notifications(
        converger: Converger) -> None:
    converger.path("/etc/same").write_text("same")
    events = converger.run('''
        from converge import file
        target = file("/etc/notified", content="n", action="nothing")
        file("/etc/same", content="same", notifies=target.create)
        file("/etc/bad", content="x", owner="nobody-here", notifies=target.create)
    ''')
    assert statuses(events) == ["skipped", "up_to_date", "failed"]
    assert not converger.path("/etc/notified").exists()


def test_subscribes_is_notifies_reversed(converger: Converger) -> None:
    events = converger.run('''
        from converge import file
        cfg = file("/etc/cfg", content="c")
        file("/etc/reloaded", content="r", action="nothing", subscribes=[("create", cfg)])
    ''')
    assert events[-1]["id"] == "file[/etc/reloaded]" and events[-1]["status"] == "updated"


def test_subscribes_takes_a_timing(converger: Converger) -> None:
    events = converger.run('''
        from converge import file
        file("/etc/reloaded", content="r", action="nothing",
             subscribes=[("create", "file[/etc/cfg]", "immediately")])
        cfg = file("/etc/cfg", content="c")
        file("/etc/other", content="o")
    ''')
    assert [e["id"] for e in events] == ["file[/etc/reloaded]", "file[/etc/cfg]",
                                         "file[/etc/reloaded]", "file[/etc/other]"]
    assert events[2]["status"] == "updated"


def test_subscribes_refuses_an_unknown_timing(converger: Converger) -> None:
    with pytest.raises(PropertyError, match="notification timing 'soon' is not one of"):
        converger.compile('''
            from converge import file
            cfg = file("/etc/cfg", content="c")
            file("/etc/reloaded", content="r", subscribes=[("create", cfg, "soon")])
        ''')


def test_plan_mode_reports_would_be_notifications(converger: Converger) -> None:
    events = converger.run('''
        from converge import file
        target = file("/etc/notified", content="n", action="nothing")
        file("/etc/one", content="1", notifies=target.create)
    ''', mode="plan")
    assert events[-1]["notified_by"] == "file[/etc/one]"
    assert not converger.path("/etc/notified").exists()


def test_pending_work_is_done_once_at_the_end(converger: Converger) -> None:
    """Two changed units leave one daemon-reload (plan mode: nothing runs here);
    a file does not need it, so it waits for the end of the run. The lab test
    (tests/e2e/test_systemd_unit_e2e.py) runs it, before a service."""
    converger.path("/run/systemd/system").mkdir(parents=True)  # systemd runs, it says
    recipe = '''
        from converge import file, systemd_unit
        systemd_unit("a.service", "[Service]\\nExecStart=/bin/true\\n")
        systemd_unit("b.service", "[Service]\\nExecStart=/bin/true\\n")
        systemd_unit("c.service", "[Service]\\nExecStart=/bin/true\\n", triggers_reload=False)
        file("/etc/motd", content="hi")
    '''
    events = converger.run(recipe, mode="plan")
    assert [(e["id"], e["status"], e["changes"][:1], e.get("notified_by"))
            for e in events][3:] == [
        ("file[/etc/motd]", "updated", ["create new file /etc/motd"], None),
        ("execute[systemctl daemon-reload]", "updated", ["execute systemctl daemon-reload"],
         "systemd_unit[a.service], systemd_unit[b.service]")]
    converger.path("/run/systemd/system").rmdir()  # offline: systemctl --root, no reload
    assert [e["id"] for e in converger.run(recipe, mode="plan")][-1] == "file[/etc/motd]"


@pytest.mark.parametrize("recipe, order", [
    pytest.param('''
        from converge import file, service, systemd_unit
        systemd_unit("a.service", "[Service]\\nExecStart=/bin/true\\n")
        file("/etc/motd", content="hi")
        service("a", action="restart")
    ''', ["systemd_unit[a.service]", "file[/etc/motd]", "execute[systemctl daemon-reload]",
          "service[a]"], id="declared"),
    pytest.param('''
        from converge import file, service, systemd_unit
        a = service("a", action="nothing")
        systemd_unit("a.service", "[Service]\\nExecStart=/bin/true\\n")
        file("/etc/motd", content="hi", notifies=a.restart)
    ''', ["service[a]", "systemd_unit[a.service]", "file[/etc/motd]",
          "execute[systemctl daemon-reload]", "service[a]"], id="notified"),
])
def test_pending_work_runs_before_a_service_that_needs_it(converger: Converger, recipe: str,
                                                          order: List[str]) -> None:
    """The daemon-reload a changed unit leaves runs before the next service step,
    declared or notified, not at the end (plan mode: the unit is not written, so
    the service itself fails to find it; only the order is asserted)."""
    converger.path("/run/systemd/system").mkdir(parents=True)
    events = converger.run(recipe, mode="plan")
    assert [e["id"] for e in events] == order
    assert events[order.index("execute[systemctl daemon-reload]")]["notified_by"] == \
        "systemd_unit[a.service]"


def test_pending_work_is_done_after_a_fail_fast_stop(converger: Converger) -> None:
    """The unit file is on disk already: systemd must see it even when the run stops."""
    converger.path("/run/systemd/system").mkdir(parents=True)
    plan = converger.compile('''
        from converge import execute, file, systemd_unit
        systemd_unit("a.service", "[Service]\\nExecStart=/bin/true\\n")
        execute(["true"], cwd="/no/such/folder")
        file("/etc/motd", content="hi")
    ''')
    events = Engine(converger.system, mode="plan", fail_fast=True).run(plan)
    assert [(e["id"], e["status"]) for e in events] == [
        ("systemd_unit[a.service]", "updated"), ("execute[true]", "failed"),
        ("execute[systemctl daemon-reload]", "updated")]


def test_a_unit_file_written_by_file_leaves_the_reload_too(converger: Converger) -> None:
    """file and template writing a unit or a drop-in (the Chef idiom, and what a
    rollback of systemd_unit does) leave the same one reload; other files none."""
    converger.path("/run/systemd/system").mkdir(parents=True)
    converger.path("/etc/systemd/system/old.service").parent.mkdir(parents=True)
    converger.path("/etc/systemd/system/old.service").write_text("[Service]\n")
    events = converger.run('''
        from converge import file
        file("/etc/systemd/system/app.service.d/override.conf", content="[Service]\\n")
        file("/etc/systemd/system/old.service", action="delete")
        file("/etc/systemd/system/app.conf", content="not a unit\\n")
    ''', mode="plan")
    assert [(e["id"], e.get("notified_by")) for e in events][-1] == (
        "execute[systemctl daemon-reload]",
        "file[/etc/systemd/system/app.service.d/override.conf], "
        "file[/etc/systemd/system/old.service]")
    assert len(events) == 4


def test_ignore_failure_and_retries(converger: Converger) -> None:
    slept: list[float] = []
    plan = converger.compile('''
        from converge import file
        file("/etc/bad", content="x", owner="nobody-here", ignore_failure=True,
             retries=2, retry_delay=7)
        file("/etc/good", content="x", retries=3, retry_delay=5)
    ''')
    events = Engine(converger.system, sleep=slept.append).run(plan)
    assert events[0]["status"] == "failed" and events[0]["ignored"] is True
    assert events[1]["status"] == "updated"
    assert slept == [7, 7]  # three tries of the failing one, each retry after its delay


def test_plan_json_round_trip(converger: Converger) -> None:
    plan = converger.compile('''
        from converge import file, directory
        d = directory("/srv/x", mode="0700")
        file("/srv/x/bin", content=b"\\x00\\xff", notifies=d.create, only_if=["true"])
    ''')
    again = Plan.from_json(plan.to_json())
    assert again.to_dict() == plan.to_dict()
    assert json.loads(plan.to_json())["steps"][1]["notifies"] == [
        ["create", "directory[/srv/x]", "delayed"]]
    resource = again.steps[1].resource()
    assert resource.content == b"\x00\xff"


def test_include_recipe_runs_once_and_cookbook_defaults_layer(converger: Converger) -> None:
    converger.write("cookbooks/motd/recipe.py",
                    'from converge import attrs, file\n'
                    'file("/etc/motd", content=attrs.motd.text + attrs.motd.suffix)\n')
    converger.write("cookbooks/motd/attributes.yaml", "motd:\n  text: hi\n  suffix: '!'\n")
    converger.write("other.py", 'from converge import file\nfile("/etc/other", content="o")\n')
    plan = converger.compile('''
        from converge import include_recipe
        include_recipe("motd")
        include_recipe("motd")
        include_recipe("other.py")
    ''', attrs={"motd": {"text": "hello"}})
    assert [s.id for s in plan.steps] == ["file[/etc/motd]", "file[/etc/other]"]
    assert plan.steps[0].props["content"] == "hello!"


def test_node_facts_are_gathered_only_when_read(converger: Converger) -> None:
    calls = []

    def facts():
        calls.append(1)
        return {"hostname": "web1", "platform_family": "debian"}

    plan = converger.compile('from converge import file\nfile("/etc/a", content="a")\n',
                             facts=facts)
    assert calls == [] and plan.options["facts_used"] is False
    plan = converger.compile('from converge import file, node\n'
                             'file("/etc/a", content=node.hostname)\n'
                             'file("/etc/b", content=node.platform_family)\n', facts=facts)
    assert calls == [1] and plan.steps[0].props["content"] == "web1"


def test_local_facts_have_every_documented_key() -> None:
    from converge.agent.facts import gather
    from converge.agent.system import System

    facts = gather(System())
    for key in ("hostname", "fqdn", "os", "platform", "platform_family", "platform_version",
                "init", "cpu_count", "memory_mb", "python_version"):
        assert key in facts
    assert facts["cpu_count"] >= 1 and facts["memory_mb"] > 0


def test_the_recap_counts_each_status_and_ignored_failures_apart() -> None:
    from converge.agent.engine import summarize

    events = [{"status": s, **extra} for s, extra in (
        ("updated", {}), ("updated", {}), ("up_to_date", {}), ("skipped", {}),
        ("failed", {}), ("failed", {"ignored": True}), ("failed", {"ignored": False}))]
    assert summarize(events) == {"total": 7, "updated": 2, "up_to_date": 1, "skipped": 1,
                                 "failed": 2, "ignored": 1}
    assert summarize([]) == {"total": 0, "updated": 0, "up_to_date": 0, "skipped": 0,
                             "failed": 0, "ignored": 0}
