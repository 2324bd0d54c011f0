"""The agent bundle and its loader, run as a target runs them: ``python3 -I -S -c``."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from converge.plan import Plan
from converge.recipe import compile_recipe
from converge.transport import bundle

ROOT = Path(__file__).resolve().parent.parent.parent


def run_loader(base: Path, stdin: bytes, digest: str = "", later: bool = False) -> tuple:
    """The loader as a target runs it; ``later``: with its clock 10 s ahead, so the
    cache's files look old enough to be stamped as verified (no sleeping)."""
    digest = digest or bundle.build()[1]
    text = bundle.loader_source(digest, str(base))
    if later:
        text = LATER + text
    done = subprocess.run([sys.executable, "-I", "-S", "-c", text],
                          input=stdin, capture_output=True, timeout=60, cwd="/")
    lines = done.stdout.decode().splitlines()
    return done.returncode, lines, done.stderr.decode()


LATER = "import time\n_time = time.time\ntime.time = lambda: _time() + 10\n"
# what the loader opens under the cache, not counting bytecode (an audit hook)
OPENED = """import sys
def _opened(event, args):
    if event == "open" and isinstance(args[0], str) and "/agent-" in args[0] \\
            and "__pycache__" not in args[0]:
        sys.stderr.write("opened %s\\n" % args[0])
sys.addaudithook(_opened)
"""


def request(op: str = "facts", **fields: object) -> bytes:
    return json.dumps(dict(op=op, **fields)).encode() + b"\n"


def shipped(data: bytes) -> bytes:
    return b"%d\n" % len(data) + data


def test_bundle_is_deterministic_and_holds_only_the_target_half() -> None:
    data, digest = bundle.build()
    bundle.build.cache_clear()
    again, digest_again = bundle.build()
    assert (data, digest) == (again, digest_again)
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert "converge/agent/remote.py" in names and "converge/resources/file.py" in names
    for controller in ("recipe.py", "dsl.py", "cli.py", "inventory.py", "runner.py",
                       "report.py", "transport/", "lab/"):
        assert not any(n.startswith("converge/" + controller) for n in names), controller
    init = zipfile.ZipFile(io.BytesIO(data)).read("converge/__init__.py").decode()
    assert "dsl" not in init and "__getattr__" not in init


def test_first_run_receives_the_bundle_then_the_cache_is_used(tmp_path: Path) -> None:
    data, digest = bundle.build()
    code, lines, err = run_loader(tmp_path, request() + shipped(data))
    assert code == 0, err
    assert lines[0].startswith("CONVERGE/1 %s need py=3." % digest)
    assert bundle.parse_handshake(lines[0])[1] is True
    facts = json.loads(lines[1])["facts"]
    assert facts["python_version"].startswith("3.")
    assert (tmp_path / ("agent-" + digest) / "converge" / "agent" / "remote.py").is_file()
    # second run: ready at once, nothing but the request on stdin
    code, lines, err = run_loader(tmp_path, request())
    assert code == 0, err
    assert bundle.parse_handshake(lines[0])[1] is False
    assert "facts" in json.loads(lines[1])


def test_a_plan_runs_under_isolated_python_with_the_standard_library_only(
        tmp_path: Path) -> None:
    """-I -S: no site-packages, no PYTHONPATH; any import beyond the stdlib would fail."""
    target = tmp_path / "motd"
    recipe = tmp_path / "recipe.py"
    recipe.write_text("from converge import file\nfile(%r, content='hello\\n')\n" % str(target))
    plan = compile_recipe(recipe, facts=lambda: {})
    data, _ = bundle.build()
    code, lines, err = run_loader(tmp_path / "cache",
                                  request("run", mode="apply", plan=plan.to_dict())
                                  + shipped(data))
    assert code == 0, err
    messages = [json.loads(line) for line in lines[1:]]
    assert messages[0]["event"]["status"] == "updated"
    assert messages[-1]["done"] is True and messages[-1]["maxrss_kb"] > 0
    assert target.read_text() == "hello\n"
    code, lines, err = run_loader(tmp_path / "cache", request("run", mode="apply",
                                                              plan=plan.to_dict()))
    assert json.loads(lines[1])["event"]["status"] == "up_to_date"


IMPORTS_PROBE = """
import io, json, sys
sys.path.insert(0, sys.argv[1])
from converge.agent.remote import main
out = io.BytesIO()
main(sys.stdin.buffer.readline(), out, *sys.argv[2:])  # [root]
events = [json.loads(line) for line in out.getvalue().splitlines()]
print(json.dumps({"events": events, "modules": sorted(sys.modules)}))
"""


def test_the_agent_imports_only_the_resource_types_its_plan_uses(tmp_path: Path) -> None:
    """What the agent imports is what every host pays on every run: a plan of files
    must not load the package, cron or sysctl modules, nor start a process."""
    (tmp_path / "motd").write_text("hello\n")
    recipe = tmp_path / "recipe.py"
    recipe.write_text("from converge import file\nfile(%r, content='hello\\n')\n"
                      % str(tmp_path / "motd"))
    plan = compile_recipe(recipe, facts=lambda: {})
    zipfile.ZipFile(io.BytesIO(bundle.build()[0])).extractall(tmp_path / "agent")
    done = subprocess.run([sys.executable, "-I", "-S", "-c", IMPORTS_PROBE,
                           str(tmp_path / "agent")],
                          input=request("run", mode="apply", plan=plan.to_dict()),
                          capture_output=True, timeout=60, cwd="/", check=True)
    probe = json.loads(done.stdout)
    assert probe["events"][0]["event"]["status"] == "up_to_date"
    loaded = {m for m in probe["modules"] if m.startswith("converge.resources.")}
    assert loaded == {"converge.resources._base", "converge.resources._validate",
                      "converge.resources.file"}
    for heavy in ("subprocess", "platform", "socket", "tempfile", "difflib", "traceback",
                  "hashlib"):
        assert heavy not in probe["modules"], heavy


def test_a_no_op_package_check_starts_no_process(tmp_path: Path) -> None:
    """An installed package is known from dpkg's status file, read in place: the
    agent neither runs dpkg-query nor imports subprocess (plan mode, under a root)."""
    root = tmp_path / "root"
    (root / "var/lib/dpkg/updates").mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text(
        "Package: tool\nStatus: install ok installed\nVersion: 1.0\nArchitecture: all\n")
    (root / "etc").mkdir()
    (root / "etc/os-release").write_text("ID=debian\n")
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/apt-get").write_text("#!/bin/sh\nexit 1\n")
    (root / "usr/bin/apt-get").chmod(0o755)
    recipe = tmp_path / "recipe.py"
    recipe.write_text("from converge import package\npackage('tool', provider='apt')\n")
    plan = compile_recipe(recipe, facts=lambda: {})
    zipfile.ZipFile(io.BytesIO(bundle.build()[0])).extractall(tmp_path / "agent")
    done = subprocess.run([sys.executable, "-I", "-S", "-c", IMPORTS_PROBE,
                           str(tmp_path / "agent"), str(root)],
                          input=request("run", mode="plan", plan=plan.to_dict()),
                          capture_output=True, timeout=60, cwd="/", check=True)
    probe = json.loads(done.stdout)
    assert probe["events"][0]["event"]["status"] == "up_to_date", probe["events"]
    assert "converge.resources.package" in probe["modules"]
    assert "subprocess" not in probe["modules"]


def test_damaged_bundle_is_refused(tmp_path: Path) -> None:
    data, digest = bundle.build()
    code, lines, _ = run_loader(tmp_path, request() + shipped(data[:-1] + b"x"))
    assert code == 3
    assert "hash mismatch" in json.loads(lines[1])["error"]
    assert not (tmp_path / ("agent-" + digest)).exists()


@pytest.mark.parametrize("line, message", [
    pytest.param(b"not json\n", "malformed request", id="malformed"),
    pytest.param(request("dance"), "unknown request 'dance'", id="unknown-op"),
    pytest.param(request("run", plan={"version": 99, "steps": []}), "plan version",
                 id="bad-plan"),
])
def test_agent_errors_are_reported_as_lines(tmp_path: Path, line: bytes, message: str) -> None:
    data, _ = bundle.build()
    _, lines, _ = run_loader(tmp_path, line + shipped(data))
    assert message in json.loads(lines[1])["error"]


def test_handshake_parsing() -> None:
    assert bundle.parse_handshake("CONVERGE/1 abc ready py=3.8.10") == ("abc", False, "3.8.10")
    with pytest.raises(ValueError, match="unexpected handshake"):
        bundle.parse_handshake("CONVERGE/2 abc ready py=3.8.10")


def test_loader_source_is_short(monkeypatch: pytest.MonkeyPatch) -> None:
    # as users run it: not under the test run's coverage (bundle._measured_loader)
    monkeypatch.delenv("COVERAGE_PROCESS_CONFIG", raising=False)
    # it checks the cache it runs from; one argument of argv may be 128 KiB
    assert len(bundle.loader_source("0" * 64)) < 5500


def test_target_half_is_python_3_8_compatible() -> None:
    vermin = shutil.which("vermin")
    if vermin is None:
        pytest.skip("vermin is not installed (pip install -e '.[dev]')")
    done = subprocess.run(
        [vermin, "--target=3.8-", "--no-tips", "--violations", "converge/agent",
         "converge/resources", "converge/plan.py", "converge/errors.py", "converge/context.py"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_empty_plan_round_trip() -> None:
    assert Plan.from_json(Plan([]).to_json()).steps == []


def _cached(base: Path, stamped: bool = False) -> Path:
    """The agent unpacked in ``base``; ``stamped``: verified since, by hashing, and
    recorded as such (see test_a_verified_cache_is_only_statted_next_time)."""
    data, digest = bundle.build()
    code, _, err = run_loader(base, request() + shipped(data))
    assert code == 0, err
    if stamped:
        code, _, err = run_loader(base, request(), later=True)
        assert code == 0, err
        assert (base / (".verified-" + digest)).is_file()
    return base / ("agent-" + digest) / "converge"


def test_a_verified_cache_is_only_statted_next_time(tmp_path: Path) -> None:
    """Hashing the cached agent on every run cost its hashlib import and a read of
    every file: once verified (and its files old enough for their ctime to tell a
    later write), the cache's stat of every file is recorded (root-only, beside
    it) and a run whose stat matches reads no file of it."""
    data, digest = bundle.build()
    stamp = tmp_path / (".verified-" + digest)
    run_loader(tmp_path, request() + shipped(data))
    code, lines, err = run_loader(tmp_path, request())  # files just written: not stamped
    assert code == 0 and bundle.parse_handshake(lines[0])[1] is False, err
    assert not stamp.exists()
    code, lines, err = run_loader(tmp_path, request(), later=True)
    assert code == 0 and bundle.parse_handshake(lines[0])[1] is False, err
    assert stamp.stat().st_mode & 0o777 == 0o600
    assert stamp.read_text().startswith(bundle.tree_digest() + "\n")
    text = OPENED + bundle.loader_source(digest, str(tmp_path))
    done = subprocess.run([sys.executable, "-I", "-S", "-c", text], input=request(),
                          capture_output=True, timeout=60, cwd="/")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().splitlines()
    assert bundle.parse_handshake(lines[0])[1] is False and "facts" in json.loads(lines[1])
    opened = [line for line in done.stderr.decode().splitlines() if line.startswith("opened")]
    assert opened == [], opened


def test_a_file_rewritten_with_its_size_and_mtime_kept_is_still_caught(tmp_path: Path) -> None:
    """The stamp records each file's ctime, which no one can set back (a write, a
    chmod or utime all move it): same size and mtime are not enough to pass."""
    agent = _cached(tmp_path, stamped=True)
    engine = agent / "agent" / "engine.py"
    before = engine.stat()
    text = engine.read_bytes()
    engine.write_bytes(text.replace(b"import", b"IMPORT", 1))
    os.utime(engine, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (engine.stat().st_size, engine.stat().st_mtime_ns) == \
        (before.st_size, before.st_mtime_ns)
    data, _ = bundle.build()
    code, lines, err = run_loader(tmp_path, request() + shipped(data), later=True)
    assert code == 0, err
    assert bundle.parse_handshake(lines[0])[1] is True  # hashed, found damaged: "need"
    assert engine.read_bytes() == text


def _listing(target: Path) -> str:
    """The stamp the loader would write for ``target`` as it is now."""
    lines = []
    for path in target.rglob("*"):
        if "__pycache__" not in path.parts:
            st = path.lstat()
            lines.append("%s\0%d %d %d %d %d %o\n" % (
                path.relative_to(target), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns,
                st.st_ctime_ns, st.st_mode))
    return bundle.tree_digest() + "\n" + "".join(sorted(lines))


@pytest.mark.parametrize("mode, trusted", [(0o666, False), (0o600, True)])
def test_a_stamp_only_its_owner_could_write_is_trusted(tmp_path: Path, mode: int,
                                                       trusted: bool) -> None:
    """A stamp vouches for a cache as its owner does (who can change the cache
    anyway); one that another user could have written is ignored and the cache
    hashed."""
    agent = _cached(tmp_path, stamped=True)
    stamp = tmp_path / (".verified-" + bundle.build()[1])
    (agent / "agent" / "engine.py").write_text("")
    stamp.write_text(_listing(agent.parent))  # forged for the damaged tree
    stamp.chmod(mode)
    data, _ = bundle.build()
    _, lines, err = run_loader(tmp_path, request() + shipped(data))
    assert bundle.parse_handshake(lines[0])[1] is not trusted, err  # trusted: "ready"


@pytest.mark.parametrize("damage", [
    pytest.param(lambda agent: (agent / "agent" / "engine.py").write_text(""), id="emptied"),
    pytest.param(lambda agent: (agent / "resources" / "file.py").unlink(), id="deleted"),
    pytest.param(lambda agent: (agent / "agent" / "sitecustomize.py").write_text("x = 1\n"),
                 id="added"),
    pytest.param(lambda agent: (agent / "plan.py").chmod(0o666), id="world-writable"),
    pytest.param(lambda agent: ((agent / "plan.py").unlink(), (agent / "plan.py").symlink_to(
        ROOT / "converge" / "plan.py")), id="symlink"),
])
@pytest.mark.parametrize("stamped", [False, True], ids=["hashed", "stamped"])
def test_a_damaged_cache_is_unpacked_again(tmp_path: Path, damage: Any, stamped: bool) -> None:
    """Issue 12 item 16: the cache was trusted as long as converge/__init__.py
    existed, while the docs said it was checked against its hash. Also once a
    stamp says it was verified."""
    agent = _cached(tmp_path, stamped)
    damage(agent)
    data, digest = bundle.build()
    code, lines, err = run_loader(tmp_path, request() + shipped(data))
    assert code == 0, err
    assert bundle.parse_handshake(lines[0])[1] is True  # "need": the bundle is sent again
    assert json.loads(lines[1]) == {"notice": "the cached agent did not match its hash: "
                                              "replaced"}
    assert "facts" in json.loads(lines[2])
    assert (agent / "agent" / "engine.py").read_bytes() == \
        (ROOT / "converge" / "agent" / "engine.py").read_bytes()
    assert not (agent / "agent" / "sitecustomize.py").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["agent-" + digest]
    code, lines, err = run_loader(tmp_path, request())
    assert bundle.parse_handshake(lines[0])[1] is False, err  # intact again: "ready"


@pytest.mark.parametrize("where", ["base", "parent"])
def test_a_cache_others_can_write_is_refused(tmp_path: Path, where: str) -> None:
    base = tmp_path / "state" / "agent"
    agent = _cached(base)
    (base if where == "base" else base.parent).chmod(0o777)
    marker = agent / "agent" / "remote.py"
    before = marker.read_bytes()
    code, lines, _ = run_loader(base, request())
    assert code == 3
    assert bundle.parse_handshake(lines[0])[1] is False  # no bundle asked for
    error = json.loads(lines[1])["error"]
    assert error == ("the agent cache is writable by another user: %s (owner 0, mode 0777); "
                     "converge runs no code from it (make every folder of that path root's "
                     "and not group- or world-writable)"
                     % (base if where == "base" else base.parent))
    assert len(lines) == 2 and marker.read_bytes() == before


def test_the_plan_digest_is_sha256_without_hashlib() -> None:
    import hashlib

    from converge.plan import sha256_hex

    for data in (b"", b"plan", bytes(range(256)) * 300):
        assert sha256_hex(data) == hashlib.sha256(data).hexdigest()


def test_the_agent_exits_without_python_s_shutdown_and_loses_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The loader ends with os._exit (Python's shutdown cost every run about 5 ms):
    every answer still arrives and the exit status is the agent's."""
    monkeypatch.delenv("COVERAGE_PROCESS_CONFIG", raising=False)  # the text users run
    assert bundle.loader_source("0" * 64).endswith("    os._exit(code)\n")
    (tmp_path / "motd").write_text("hello\n")
    recipe = tmp_path / "recipe.py"
    recipe.write_text("from converge import file\n" + "".join(
        "file(%r, content='hello\\n')\n" % str(tmp_path / ("f%d" % i)) for i in range(40)))
    plan = compile_recipe(recipe, facts=lambda: {})
    data, _ = bundle.build()
    base = tmp_path / "cache"
    code, lines, err = run_loader(base, request("run", mode="plan", plan=plan.to_dict())
                                  + shipped(data))
    assert code == 0, err
    assert [json.loads(line).get("event", {}).get("status") for line in lines[1:-1]] == \
        ["updated"] * 40
    assert json.loads(lines[-1])["done"] is True
    code, lines, _ = run_loader(base, b"not json\n")
    assert code == 2 and "malformed request" in json.loads(lines[1])["error"]
