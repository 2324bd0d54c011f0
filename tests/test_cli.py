"""The CLI as a user runs it: a subprocess, real files, exit codes, output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def converge(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "converge", *args], cwd=cwd,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)


def test_hello_example_end_to_end(tmp_path: Path) -> None:
    first = converge("apply", str(REPO / "examples/hello.py"), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    sha8 = "b0f7b4e2"  # sha256("Hello Tunnelix")[:8]
    assert first.stdout.startswith(
        "* file[file.txt] action create\n"
        "  - create new file file.txt\n"
        "  - update content in file file.txt from none to %s\n" % sha8)
    assert "Converged 1 resource: 1 updated, 0 up to date, 0 failed in " in first.stdout
    target = tmp_path / "file.txt"
    assert target.read_text() == "Hello Tunnelix"
    mtime = target.stat().st_mtime_ns
    second = converge("apply", str(REPO / "examples/hello.py"), cwd=tmp_path)
    assert second.returncode == 0
    assert second.stdout.startswith("* file[file.txt] action create (up to date)\n")
    assert target.stat().st_mtime_ns == mtime


def write(tmp_path: Path, text: str) -> Path:
    recipe = tmp_path / "recipe.py"
    recipe.write_text(text)
    return recipe


MOTD = 'from converge import file\nfile("/etc/motd", content="new\\n")\n'


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/motd").write_text("old\n")
    return root


def test_plan_shows_diff_and_changes_nothing(tmp_path: Path, root: Path) -> None:
    proc = converge("plan", "--root", str(root), str(write(tmp_path, MOTD)), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "  - would update content in file /etc/motd from" in proc.stdout
    assert "    -old\n    +new\n" in proc.stdout
    assert "Plan for 1 resource: 1 would change" in proc.stdout
    assert (root / "etc/motd").read_text() == "old\n"


def test_check_exit_codes(tmp_path: Path, root: Path) -> None:
    recipe = str(write(tmp_path, MOTD))
    assert converge("check", "--root", str(root), recipe, cwd=tmp_path).returncode == 2
    assert (root / "etc/motd").read_text() == "old\n"
    assert converge("apply", "--root", str(root), recipe, cwd=tmp_path).returncode == 0
    assert converge("check", "--root", str(root), recipe, cwd=tmp_path).returncode == 0


def test_detailed_exitcode(tmp_path: Path, root: Path) -> None:
    recipe = str(write(tmp_path, MOTD))
    args = ("apply", "--detailed-exitcode", "--root", str(root), recipe)
    assert converge(*args, cwd=tmp_path).returncode == 2
    assert converge(*args, cwd=tmp_path).returncode == 0
    failing = str(write(tmp_path, MOTD.replace('"new\\n"', '"x", owner="nobody-here"')))
    assert converge("apply", "--detailed-exitcode", "--root", str(root), failing,
                    cwd=tmp_path).returncode == 4
    both = write(tmp_path, MOTD.replace('"new\\n"', '"y"') +
                 'file("/etc/b", content="b", owner="nobody-here")\n')
    assert converge("apply", "--detailed-exitcode", "--root", str(root), str(both),
                    cwd=tmp_path).returncode == 6


def test_failed_resource_does_not_stop_the_run_and_exits_1(tmp_path: Path, root: Path) -> None:
    recipe = write(tmp_path, 'from converge import file\n'
                   'file("/etc/a", content="a", owner="nobody-here")\n'
                   'file("/etc/b", content="b")\n')
    proc = converge("apply", "--root", str(root), str(recipe), cwd=tmp_path)
    assert proc.returncode == 1
    assert "* file[/etc/a] action create (failed)\n" in proc.stdout
    assert ("  ! recipe.py:2: owner 'nobody-here' does not exist in %s/etc/passwd" % root
            in proc.stdout)
    assert (root / "etc/b").read_text() == "b"
    assert "1 updated, 0 up to date, 1 failed" in proc.stdout


def test_fail_fast_stops_at_first_failure(tmp_path: Path, root: Path) -> None:
    recipe = write(tmp_path, 'from converge import file\n'
                   'file("/etc/a", content="a", owner="nobody-here")\n'
                   'file("/etc/b", content="b")\n')
    proc = converge("apply", "--fail-fast", "--root", str(root), str(recipe), cwd=tmp_path)
    assert proc.returncode == 1
    assert not (root / "etc/b").exists()


def test_json_report(tmp_path: Path, root: Path) -> None:
    out = tmp_path / "report.json"
    proc = converge("apply", "--json", str(out), "--root", str(root),
                    str(write(tmp_path, MOTD)), cwd=tmp_path)
    assert proc.returncode == 0
    report = json.loads(out.read_text())
    resource = report["hosts"]["localhost"]["resources"][0]
    assert {k: resource[k] for k in ("id", "type", "action", "status", "error")} == {
        "id": "file[/etc/motd]", "type": "file", "action": "create", "status": "updated",
        "error": None}
    assert resource["changes"][0].startswith("update content in file /etc/motd from")
    assert report["hosts"]["localhost"]["summary"]["updated"] == 1
    assert report["summary"]["updated"] == 1 and report["summary"]["failed"] == 0


def test_diff_flag(tmp_path: Path, root: Path) -> None:
    proc = converge("apply", "--diff", "--root", str(root), str(write(tmp_path, MOTD)),
                    cwd=tmp_path)
    assert "    -old\n    +new\n" in proc.stdout
    sensitive = write(tmp_path, MOTD.replace('"new\\n")', '"secret\\n", sensitive=True)'))
    proc = converge("apply", "--diff", "--root", str(root), str(sensitive), cwd=tmp_path)
    assert "secret" not in proc.stdout
    assert "update content in file /etc/motd (sensitive)" in proc.stdout


def test_attributes_from_command_line_and_cookbook(tmp_path: Path) -> None:
    proc = converge("apply", str(REPO / "cookbooks/hello"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "file.txt").read_text() == "Hello Tunnelix"
    proc = converge("apply", str(REPO / "cookbooks/hello"), "-a", "hello.content=Hi there",
                    "-a", "hello.path=other.txt", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "other.txt").read_text() == "Hi there"


def test_resources_lists_every_type() -> None:
    proc = converge("resources", cwd=REPO)
    assert proc.returncode == 0
    from converge.agent.extensions import LOADED
    from converge.docs import first_example
    from converge.resources._base import load_all

    for name, cls in load_all().items():
        if name in LOADED:  # a cookbook's type another test loaded in this process
            continue
        assert "\n%s: " % name in "\n" + proc.stdout
        for field in cls.fields():
            assert "  %s " % field.name in proc.stdout
        # with a recipe example, the first statement of its docstring's (issue 17)
        example = first_example(cls)
        assert example, name
        block = ("\n" + proc.stdout).split("\n%s: " % name, 1)[1].split("\n\n", 1)[0]
        assert "\n  example: %s\n" % example[0] in block + "\n", (name, block)


def test_version() -> None:
    from converge import __version__

    assert converge("--version", cwd=REPO).stdout == "converge %s\n" % __version__


def test_a_no_op_apply_imports_only_what_it_uses(tmp_path: Path) -> None:
    """Start-up (issue 24): a local run of a file and a directory imports neither
    importlib.metadata (entry points are found by a scan), nor yaml (no inventory),
    nor every resource type, nor what only vaults, fleets or pull mode use. Modules,
    not timings: what a run imports is what it pays for."""
    recipe = tmp_path / "recipe.py"
    recipe.write_text("from converge import directory, file\ndirectory(%r)\n"
                      "file(%r, content='x\\n')\n" % (str(tmp_path / "d"),
                                                      str(tmp_path / "d" / "f")))
    code = ("import sys\nbefore = set(sys.modules)\nfrom converge.cli import main\n"
            "try:\n    main(['apply', sys.argv[1]])\nexcept SystemExit:\n    pass\n"
            "print(' '.join(sorted(set(sys.modules) - before)))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    for _ in range(2):  # the second run is the no-op
        proc = subprocess.run([sys.executable, "-c", code, str(recipe)], capture_output=True,
                              text=True, env=env, cwd=str(tmp_path))
        assert proc.returncode == 0, proc.stderr
    assert "(up to date)" in proc.stdout
    imported = set(proc.stdout.strip().splitlines()[-1].split())
    assert "converge.resources.file" in imported and "converge.cli" in imported
    unused = {"importlib.metadata", "yaml", "hmac", "concurrent.futures", "converge.pull",
              "converge.resources.sysctl", "converge.resources.user", "converge.inventory",
              "converge.transport.bundle", "fnmatch"}
    assert sorted(unused & imported) == []


@pytest.mark.parametrize("args", [["apply", "--help"], ["apply"], ["plan", "--bogus"],
                                  ["history", "-h"], ["report", "--help"], ["pull", "--help"]])
def test_a_command_runs_from_an_app_of_that_command_alone_as_from_the_whole(
        args: list) -> None:
    """main() gives typer only the command named (typer reads every command's signature
    at each start); what the user sees is what the whole app says."""
    from typer.testing import CliRunner

    from converge import cli

    alone = cli._app_for(args)
    assert [c.callback for c in alone.registered_commands] == [
        c.callback for c in cli.app.registered_commands
        if (c.name or c.callback.__name__) == args[0]]
    assert cli._app_for(["aply"]) is cli.app and cli._app_for(["vault", "-h"]) is cli.app
    env = {"COLUMNS": "100"}
    whole = CliRunner().invoke(cli.app, args, env=env, prog_name="converge")
    part = CliRunner().invoke(alone, args, env=env, prog_name="converge")
    assert (part.exit_code, part.output) == (whole.exit_code, whole.output)


def test_help_imports_no_heavy_library() -> None:
    code = ("import sys\nsys.argv=['converge','--help']\nfrom converge.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('paramiko','jinja2','rich','yaml')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "TYPER_USE_RICH": ""})
    assert proc.stdout.strip().splitlines()[-1] == "[]"
