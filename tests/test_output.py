"""What a newcomer reads: whole transcripts of converge runs (subprocess, real files
under a --root tree), with the timings made constant. Each pins a text the way a
user sees it: console lines, summary, errors, help."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def converge(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "converge", *args], cwd=cwd,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=120, env={**os.environ, **(env or {})})


def steady(text: str) -> str:
    """Timings (`in 0.12s`) and run ids made constant."""
    text = re.sub(r" in \d+\.\d\ds\b", " in 0.00s", text)
    return re.sub(r"\b\d{8}T\d{6}-\d{6}\b", "RUN_ID", text)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/motd").write_text("old\n")
    return root


def recipe(tmp_path: Path, text: str, name: str = "recipe.py") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


MOTD = 'from converge import file\nfile("/etc/motd", content="new\\n")\n'


# -- 3. JSON on standard output ----------------------------------------------------------

@pytest.mark.parametrize("command", ["apply", "plan", "check"])
def test_json_to_stdout_sends_the_console_to_stderr(command: str, tmp_path: Path,
                                                    root: Path) -> None:
    recipe(tmp_path, MOTD)
    proc = converge(command, "--root", str(root), "recipe.py", "--json", "-", cwd=tmp_path)
    report = json.loads(proc.stdout)  # standard output is the report, and only that
    assert report["hosts"]["localhost"]["resources"][0]["id"] == "file[/etc/motd]"
    if command != "check":
        assert "* file[/etc/motd] action create\n" in proc.stderr
    assert re.search(r"^(Converged|Plan for) 1 resource: ", proc.stderr, re.M), proc.stderr


def test_rollback_json_to_stdout_sends_the_console_to_stderr(tmp_path: Path,
                                                             root: Path) -> None:
    recipe(tmp_path, MOTD)
    assert converge("apply", "--root", str(root), "recipe.py", cwd=tmp_path).returncode == 0
    proc = converge("rollback", "--root", str(root), "--json", "-", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["mode"] == "rollback"
    assert "* file[/etc/motd] action create\n" in proc.stderr


# -- 4. Wording -------------------------------------------------------------------------

def test_a_new_file_s_mode_and_owner_are_from_none(tmp_path: Path, root: Path) -> None:
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    recipe(tmp_path, 'from converge import file\n'
           'file("/etc/app.conf", content="a\\n", mode="0640", owner="root")\n')
    proc = converge("apply", "--root", str(root), "recipe.py", cwd=tmp_path)
    assert steady(proc.stdout) == (
        "* file[/etc/app.conf] action create\n"
        "  - create new file /etc/app.conf\n"
        "  - update content in file /etc/app.conf from none to 87428fc5\n"
        "  - change mode from none to '0640'\n"
        "  - change owner from none to 'root'\n"
        "Converged 1 resource: 1 updated, 0 up to date, 0 failed in 0.00s\n")


def test_a_refused_rollback_prints_its_error_and_no_summary(tmp_path: Path,
                                                           root: Path) -> None:
    recipe(tmp_path, MOTD)
    assert converge("apply", "--root", str(root), "recipe.py", cwd=tmp_path).returncode == 0
    (root / "etc/motd").write_text("changed by hand\n")
    proc = converge("rollback", "--root", str(root), cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert steady(proc.stderr) == (
        "error: rollback of run RUN_ID refused: 1 file was changed since that run:\n"
        "  /etc/motd: content is now %s, the run left 7aa7a535\n"
        "  look at what changed; run again with --force to restore them anyway\n"
        % hashlib.sha256(b"changed by hand\n").hexdigest()[:8])


# -- 2. A failed resource does not print changes as if they were made -------------------

FAILING = ('from converge import file\n'
           'file("/etc/b/c", content="b")\n'
           'file("/etc/d", content="d")\n')


def test_a_failed_resource_shows_its_error_not_its_changes(tmp_path: Path, root: Path) -> None:
    recipe(tmp_path, FAILING)
    proc = converge("apply", "--root", str(root), "recipe.py", cwd=tmp_path)
    assert proc.returncode == 1
    assert steady(proc.stdout) == (
        "* file[/etc/b/c] action create (failed)\n"
        "  ! recipe.py:2: parent directory /etc/b does not exist\n"
        "    declare it first: directory('/etc/b', recursive=True)\n"
        "* file[/etc/d] action create\n"
        "  - create new file /etc/d\n"
        "  - update content in file /etc/d from none to 18ac3e73\n"
        "Converged 2 resources: 1 updated, 0 up to date, 1 failed in 0.00s\n")


def test_history_shows_a_failed_resource_s_error_not_its_changes(tmp_path: Path,
                                                                 root: Path) -> None:
    recipe(tmp_path, FAILING)
    converge("apply", "--root", str(root), "recipe.py", cwd=tmp_path)
    proc = converge("history", "--root", str(root), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "STARTED", steady(proc.stdout)) == (
        "RUN_ID  STARTED  apply  1 changed, 1 failed  recipe.py\n"
        "    file[/etc/b/c] (failed)\n"
        "      ! parent directory /etc/b does not exist\n"
        "    file[/etc/d]\n"
        "      - create new file /etc/d\n"
        "      - update content in file /etc/d from none to 18ac3e73\n")


# -- 6. Paths in messages ----------------------------------------------------------------

def test_a_source_is_shown_whole_when_the_current_directory_is_root(tmp_path: Path,
                                                                    root: Path) -> None:
    broken = recipe(tmp_path, 'from converge import file\n\nfile("/etc/x", content=1)\n',
                    "hello.py")
    for given in (str(broken), str(broken).lstrip("/")):  # absolute, and relative to /
        proc = converge("plan", "--root", str(root), given, cwd=Path("/"))
        assert proc.stderr == ("error: %s:3: file[/etc/x]: content must be a string or "
                               "bytes, not an int\n" % broken), given
    proc = converge("plan", "--root", str(root), "hello.py", cwd=tmp_path)
    assert proc.stderr.startswith("error: hello.py:3: file[/etc/x]: ")


@pytest.mark.parametrize("given", [".", "..", "here"])
def test_a_folder_without_a_recipe_is_named(given: str, tmp_path: Path, root: Path) -> None:
    (tmp_path / "here" / "sub").mkdir(parents=True)
    cwd = {".": tmp_path / "here", "..": tmp_path / "here" / "sub", "here": tmp_path}[given]
    proc = converge("apply", "--root", str(root), given, cwd=cwd)
    assert proc.returncode == 1
    named = "here" if given == "here" else str(tmp_path / "here")
    assert proc.stderr == ("error: %s is a folder without a recipe.py\n"
                           "  give a recipe file, or a cookbook folder (one with recipe.py)\n"
                           % named)


# -- 7. Help -----------------------------------------------------------------------------

COMMANDS = [["apply"], ["plan"], ["check"], ["history"], ["rollback"], ["resources"],
            ["test"], ["lab"], ["lab", "up"], ["lab", "ls"], ["lab", "ssh"],
            ["lab", "inventory"], ["lab", "down"], ["runs"], ["runs", "show"], ["report"],
            ["vault"], ["vault", "encrypt"], ["vault", "decrypt"], ["vault", "view"],
            ["vault", "edit"], ["vault", "create"], ["vault", "rekey"],
            ["vault", "encrypt-string"], ["facts"], ["new"], ["new", "cookbook"],
            ["new", "resource"], ["pull"], ["stubs"], ["disconnect"]]


def help_of(*command: str) -> str:
    proc = converge(*command, "--help", cwd=REPO, env={"COLUMNS": "80"})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("command", [[]] + COMMANDS, ids=lambda c: " ".join(c) or "converge")
def test_help_has_no_placeholders_and_no_cut_sentences(command: list) -> None:
    text = help_of(*command)
    usage = text.splitlines()[0]
    assert "{" not in usage, usage  # RECIPE, not {recipe}
    assert not re.search(r"<[a-z ]+>", text), text  # no <str>, <int range>, <path>
    assert not re.search(r"\.\.\.$", text.split("Commands:")[-1] if "Commands:" in text
                         else "", re.M), text  # no command summary cut mid-sentence
    assert re.match(r"Usage: converge [a-z -]*\[OPTIONS\]( [A-Z\[]|$| COMMAND)", usage), usage


def test_the_command_list_gives_each_command_a_whole_sentence() -> None:
    listed = help_of().split("Commands:\n")[1].splitlines()
    assert sorted(listed) == sorted([
        "  pull        Pull mode: converge this machine from a signed git repository.",
        "  stubs       Write type stubs that know your own resource types.",
        "  report      Write one self-contained HTML report of runs.",
        "  apply       Converge this machine (or the targets) to the recipe.",
        "  plan        Show what apply would change, with diffs; change nothing.",
        "  check       Detect drift: exit 0 in sync, 2 drift, 1 error.",
        "  history     List the runs journaled on the target and what each changed.",
        "  rollback    Undo a run: restore what it changed, as a run of its own.",
        "  resources   List every resource type with its actions and properties.",
        "  test        Apply a recipe twice in fresh lab nodes: idempotent?",
        "  vault       Files and values encrypted with Ansible Vault.",
        "  facts       Print the facts a recipe reads as node.*, as JSON.",
        "  new         Write a working skeleton to start from.",
        "  runs        The runs recorded in the run store.",
        "  lab         Throwaway sandbox nodes on this machine, to try recipes in.",
        "  disconnect  Close the SSH connections kept open by earlier runs.",
    ])


def option_help(text: str, option: str) -> str:
    """The help of one option, its wrapped lines joined."""
    lines = text.split("Options:\n")[1].splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(r"\s+(-\w, )?%s\b" % option,
                                                                 line))
    body = [lines[start]] + [line for line in lines[start + 1:]][:3]
    out = []
    for i, line in enumerate(body):
        if i and re.match(r"\s+-", line):
            break
        out.append(line.strip())
    return " ".join(out)


@pytest.mark.parametrize("command, root", [
    ("apply", "Work on this directory tree as if it were /"),
    ("history", "List the runs journaled in this directory tree (by apply --root DIR)."),
    ("rollback", "Undo a run made in this directory tree (by apply --root DIR)."),
])
def test_each_command_describes_root_and_hosts_for_what_it_does(command: str,
                                                                root: str) -> None:
    text = help_of(command)
    assert root in option_help(text, "--root")
    host = option_help(text, "--host")
    assert "Push" not in host and "A target host, reached over SSH" in host


def test_resources_shows_a_types_example() -> None:
    listing = converge("resources", "apt_repository", cwd=REPO).stdout
    assert "\nExample:\n  apt_repository(\"nginx\", \"https://nginx.org/packages/debian\"" \
        in listing, listing
    assert listing.index("Example:") < listing.index("Common properties:")


def test_resources_says_required_and_suggests_a_close_type() -> None:
    listing = converge("resources", "file", cwd=REPO).stdout
    assert "[default (required)]" not in listing
    assert re.search(r"^  path +Path of the file; .*  \[required\]$", listing, re.M)
    assert "  mode           " in listing and "[default None]" in listing
    proc = converge("resources", "fil", cwd=REPO)
    assert proc.returncode == 1
    from converge.agent.extensions import LOADED
    from converge.resources._base import load_all

    ours = sorted(t for t in load_all() if t not in LOADED)  # not a cookbook's, loaded here
    assert proc.stderr == ("error: no resource type 'fil'; did you mean 'file'?\n"
                           "  the types: %s\n" % ", ".join(ours))


# -- 5. The recap, as the docs show it ---------------------------------------------------

COUNTS = (r"\d+ (updated|would change), \d+ up to date, \d+ failed(, \d+ skipped)?"
          r"(, \d+ failed but ignored)?")
RECAP_HOST = re.compile(r"^\S+ {2,}(ok|changed|would change|failed|unreachable) *(  %s)?$"
                        % COUNTS)
FLEET_LINE = re.compile(r"^(Converged|Plan for) \d+ hosts?: \d+ ok, \d+ (changed|would change), "
                        r"\d+ failed, \d+ unreachable; \d+ resources?: %s in \d+\.\d\ds$"
                        % COUNTS)


def test_every_recap_in_the_docs_is_in_the_words_the_code_prints() -> None:
    pages = sorted((REPO / "docs").glob("*.md")) + [REPO / "README.md"]
    seen = 0
    for page in pages:
        lines = [line[4:] for line in page.read_text().splitlines()]
        assert "ok=" not in page.read_text(), page.name
        for index, line in enumerate(lines):
            if line != "RECAP":
                continue
            seen += 1
            block = []
            for following in lines[index + 1:]:
                block.append(following)
                if FLEET_LINE.match(following) or not following.strip():
                    break
            assert FLEET_LINE.match(block[-1]), (page.name, block)
            assert all(RECAP_HOST.match(host) for host in block[:-1]), (page.name, block)
    assert seen >= 5
