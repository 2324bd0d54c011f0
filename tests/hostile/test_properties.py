"""Every string property of every resource type, given hostile text: it is either
refused when the resource is declared, with a one-line PropertyError that names
the property, or accepted and then converged under a temporary root without any
command reaching a shell, any file escaping the root, or any internal error."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
from hypothesis import given
from hypothesis import strategies as st

from converge.agent.engine import Engine
from converge.errors import PropertyError
from converge.plan import Plan, Step
from converge.resources import REGISTRY
from converge.resources._base import Resource
from tests.hostile.conftest import PAYLOADS, RecordingSystem, hostile_text
from tests.hostile.conftest import TRIED as tried

PASSWD = "root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33::/var/www:/bin/sh\n"


def build(type_name: str, props: Dict[str, Any]) -> Resource:
    """Declare a resource as the DSL does: construct, choose the default action."""
    cls = REGISTRY[type_name]
    resource = cls(**props)
    default = cls.default_action or cls.actions[0]
    resource.meta.action = default if isinstance(default, str) else default[0]
    resource.check_action()
    return resource


def make_root(base: str) -> Path:
    root = Path(base) / "root"
    for folder in ("etc/cron.d", "srv", "proc/sys/vm", "var/lib", "tmp"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "etc/passwd").write_text(PASSWD)
    (root / "etc/group").write_text("root:x:0:\nwww-data:x:33:\n")
    (root / "proc/sys/vm/swappiness").write_text("60\n")
    return root


def converge(resource: Resource, root: Path) -> Tuple[RecordingSystem, List[Dict[str, Any]]]:
    """Converge one resource through the wire format, as an agent would."""
    system = RecordingSystem(str(root))
    plan = Plan.from_json(Plan([Step.from_resource(resource)]).to_json())
    return system, Engine(system, mode="apply").run(plan)


def outside(base: str, root: Path) -> List[str]:
    """Everything under ``base`` that is not under the root: what escaped it."""
    return sorted(str(p) for p in Path(base).rglob("*")
                  if p != root and root not in p.parents)


# (type, property, valid properties around it, what a refusal must mention)
CASES: List[Tuple[str, str, Dict[str, Any], str]] = [
    ("file", "path", {"content": "x"}, "path"),
    ("file", "content", {"path": "/srv/f"}, "content"),
    ("file", "mode", {"path": "/srv/f", "content": "x"}, "mode"),
    ("file", "owner", {"path": "/srv/f", "content": "x"}, "owner"),
    ("file", "group", {"path": "/srv/f", "content": "x"}, "group"),
    ("directory", "path", {}, "path"),
    ("directory", "mode", {"path": "/srv/d"}, "mode"),
    ("directory", "owner", {"path": "/srv/d"}, "owner"),
    ("line", "path", {"line": "x"}, "path"),
    ("line", "line", {"path": "/srv/l"}, "line"),
    ("line", "match", {"path": "/srv/l", "line": "x"}, "match"),
    ("execute", "creates", {"command": ["true"]}, "creates"),
    ("execute", "cwd", {"command": ["true"]}, "cwd"),
    ("execute", "user", {"command": ["true"]}, "user"),
    ("sysctl", "key", {"value": "1"}, "key"),
    ("sysctl", "value", {"key": "vm.swappiness"}, "value"),
    ("sysctl", "conf_file", {"key": "vm.swappiness", "value": "10"}, "conf_file"),
    ("sysctl", "comment", {"key": "vm.swappiness", "value": "10"}, "comment"),
    ("cron", "name", {"command": "true", "cron_file": "job"}, "name"),
    ("cron", "command", {"name": "job", "cron_file": "job"}, "command"),
    ("cron", "minute", {"name": "job", "command": "true", "cron_file": "job"}, "minute"),
    ("cron", "hour", {"name": "job", "command": "true", "cron_file": "job"}, "hour"),
    ("cron", "day", {"name": "job", "command": "true", "cron_file": "job"}, "day"),
    ("cron", "month", {"name": "job", "command": "true", "cron_file": "job"}, "month"),
    ("cron", "weekday", {"name": "job", "command": "true", "cron_file": "job"}, "weekday"),
    ("cron", "special", {"name": "job", "command": "true", "cron_file": "job"}, "special"),
    ("cron", "user", {"name": "job", "command": "true"}, "user"),
    ("cron", "cron_file", {"name": "job", "command": "true"}, "cron_file"),
    ("package", "package_name", {}, "package name"),
    ("package", "version", {"package_name": "curl"}, "version"),
    ("package", "provider", {"package_name": "curl"}, "provider"),
    ("service", "service_name", {}, "service name"),
    ("service", "init", {"service_name": "cron"}, "init"),
    ("oom_protect", "name", {"pattern": "sshd"}, "name"),
    ("oom_protect", "pattern", {"name": "x"}, "pattern"),
    ("oom_protect", "service", {"name": "x"}, "service name"),
]


def check_refusal(exc: PropertyError, expect: str) -> None:
    message = exc.message
    assert expect in message, "refusal does not name %r: %s" % (expect, message)
    assert "\n" not in message and "\r" not in message, "message is not one line: %r" % message
    assert "\0" not in message and "\x1b" not in message, message


def check_events(events: List[Dict[str, Any]]) -> None:
    for event in events:
        error = event.get("error") or ""
        assert "internal error" not in error, error
        assert "Traceback" not in error, error


@pytest.mark.parametrize("type_name, prop, base, expect", CASES,
                         ids=["%s.%s" % (c[0], c[1]) for c in CASES])
@given(text=hostile_text)
def test_hostile_text_is_refused_or_harmless(type_name: str, prop: str, base: Dict[str, Any],
                                             expect: str, text: str) -> None:
    props = dict(base, **{prop: text})
    try:
        resource = build(type_name, props)
    except PropertyError as exc:
        tried["refused"] += 1
        check_refusal(exc, expect)
        return
    tried["accepted"] += 1
    with tempfile.TemporaryDirectory() as base_dir:
        root = make_root(base_dir)
        system, events = converge(resource, root)
        check_events(events)
        assert outside(base_dir, root) == []


@given(args=st.lists(hostile_text, min_size=1, max_size=4))
def test_execute_runs_its_argument_list_exactly(args: List[str]) -> None:
    try:
        resource = build("execute", {"command": args})
    except PropertyError as exc:
        tried["refused"] += 1
        check_refusal(exc, "command")
        assert any("\0" in a or not _encodable(a) for a in args), exc
        return
    tried["accepted"] += 1
    with tempfile.TemporaryDirectory() as base_dir:
        system, events = converge(resource, make_root(base_dir))
    assert system.argvs == [args]  # every argument as given: nothing split, quoted or added
    check_events(events)


@given(value=hostile_text, key=st.sampled_from(["PGPASSWORD", "HOME", "X"]))
def test_execute_environment_values_never_reach_argv(value: str, key: str) -> None:
    try:
        resource = build("execute", {"command": ["env"], "environment": {key: value}})
    except PropertyError as exc:
        tried["refused"] += 1
        check_refusal(exc, "environment")
        return
    tried["accepted"] += 1
    with tempfile.TemporaryDirectory() as base_dir:
        system, _ = converge(resource, make_root(base_dir))
    assert system.argvs == [["env"]]


# -- paths ----------------------------------------------------------------------------

component = st.lists(st.one_of(st.sampled_from(PAYLOADS), st.text(min_size=1, max_size=4)),
                     min_size=1, max_size=4).map("".join)


@given(parts=st.lists(component, min_size=1, max_size=3), content=hostile_text)
def test_a_file_lands_exactly_at_its_path_inside_the_root(parts: List[str], content: str) -> None:
    path = "/srv/f" + "/".join(parts)  # "/srv/" + "/" would name the directory /srv
    try:
        target = build("file", {"path": path, "content": content})
        parent = build("directory", {"path": os.path.dirname(target.path), "recursive": True})
    except PropertyError as exc:
        tried["refused"] += 1
        check_refusal(exc, "path" if "path" in exc.message else "content")
        assert exc.message.startswith(("path", "content")), exc.message
        return
    tried["accepted"] += 1
    assert ".." not in target.path.split("/")
    with tempfile.TemporaryDirectory() as base_dir:
        root = make_root(base_dir)
        system = RecordingSystem(str(root))
        plan = Plan.from_json(Plan([Step.from_resource(parent),
                                    Step.from_resource(target)]).to_json())
        events = Engine(system).run(plan)
        assert [e["status"] for e in events][1:] == ["updated"], events
        landed = root / target.path.lstrip("/")
        assert landed.read_bytes() == content.encode("utf-8", "surrogateescape")
        assert outside(base_dir, root) == []
        assert system.argvs == []
        again = Engine(system).run(plan)
        assert [e["status"] for e in again] == ["up_to_date", "up_to_date"]


@given(before=st.lists(st.sampled_from(["srv", "a b", "$(x)", "."]), max_size=2),
       after=st.lists(st.sampled_from(["etc", "passwd", "..", "x"]), max_size=2))
def test_a_dotdot_component_is_refused(before: List[str], after: List[str]) -> None:
    path = "/" + "/".join(before + [".."] + after)
    for type_name, extra in (("file", {"content": "x"}), ("directory", {}),
                             ("line", {"line": "x"})):
        tried["refused"] += 1
        with pytest.raises(PropertyError, match=r"'\.\.'"):
            build(type_name, dict(extra, path=path))


# -- cron -----------------------------------------------------------------------------

@given(command=hostile_text)
def test_cron_commands_are_written_literally_or_refused(command: str) -> None:
    try:
        resource = build("cron", {"name": "job", "command": command, "cron_file": "job"})
    except PropertyError as exc:
        tried["refused"] += 1
        check_refusal(exc, "command")
        assert re.search(r"[\n\r\0]", command) or not command.strip() or "%" in command \
            or not _encodable(command), (command, exc.message)
        return
    tried["accepted"] += 1
    with tempfile.TemporaryDirectory() as base_dir:
        root = make_root(base_dir)
        system, events = converge(resource, root)
        check_events(events)
        lines = (root / "etc/cron.d/job").read_text().split("\n")[:-1]
    assert lines[-1] == "* * * * * root " + command.strip()
    assert system.argvs == []


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@given(before=hostile_text, after=hostile_text, newline=st.sampled_from(["\n", "\r", "\r\n"]))
def test_a_newline_in_a_cron_command_is_refused(before: str, after: str, newline: str) -> None:
    tried["refused"] += 1
    with pytest.raises(PropertyError, match="newline"):
        build("cron", {"name": "job", "command": "true " + before + newline + after})


# -- packages -------------------------------------------------------------------------

DEBIAN = re.compile(r"[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?")


@given(name=st.one_of(hostile_text, st.from_regex(DEBIAN, fullmatch=True)))
def test_package_names_follow_debian_policy(name: str) -> None:
    """Exactly the names of the grammar are accepted, hostile or generated from it."""
    try:
        build("package", {"package_name": name, "provider": "apt"})
    except PropertyError as exc:
        tried["refused"] += 1
        check_refusal(exc, "package name")
        assert not DEBIAN.fullmatch(name) or len(name) > 200
        return
    tried["accepted"] += 1
    assert DEBIAN.fullmatch(name), name


@given(good=st.sampled_from(["curl", "libc6", "g++", "python3.11"]),
       bad=st.sampled_from([";", "$(", "`", "|", "&", ">", " ", "\n", "*", "'", '"', "\\",
                            "\t", "/", "=", "?", "~"]),
       rest=hostile_text)
def test_package_names_with_metacharacters_are_refused(good: str, bad: str, rest: str) -> None:
    for provider in (None, "apt", "dnf", "apk"):
        tried["refused"] += 1
        with pytest.raises(PropertyError, match="is not a valid package name"):
            build("package", {"package_name": good + bad + rest, "provider": provider})


# -- oom_protect ----------------------------------------------------------------------

@given(pattern=hostile_text)
def test_oom_patterns_reach_cron_only_as_hex(pattern: str) -> None:
    try:
        resource = build("oom_protect", {"name": "guard", "pattern": pattern})
    except PropertyError as exc:
        tried["refused"] += 1
        check_refusal(exc, "pattern")
        return
    tried["accepted"] += 1
    with tempfile.TemporaryDirectory() as base_dir:
        root = make_root(base_dir)
        system, events = converge(resource, root)
        check_events(events)
        text = (root / "etc/cron.d/converge-oom-guard").read_text()
    job = text.splitlines()[-1]
    assert job.endswith(" %s 0" % pattern.encode("utf-8").hex())  # then root's uid
    assert system.argvs == []
