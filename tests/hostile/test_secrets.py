"""sensitive=True: the secret values of a resource never show in the console
(plain, --diff, --debug), in `converge plan`, in the JSON report, in error
messages or in the run journal (which keeps hashes only); every channel says
(sensitive) instead. The secrets come from attributes.yaml, never from the
command line, and no process converge starts holds them in its argv but the
command a recipe asks to execute (traced with strace; the SSH trip is checked in
tests/lab/test_secrets_ssh.py)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import List

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.hostile.conftest import TRIED as tried
from tests.hostile.conftest import hostile_text

RECIPE = """\
from converge import cron, directory, execute, file, line, sysctl, template
directory("/srv/app")
file("/srv/app/db.conf", content="password=%s\\n" % attrs["secret"], mode="0600",
     sensitive=True)
template("/srv/app/token.conf", source="token.j2", variables={"token": attrs["secret"]},
         sensitive=True)
line("/srv/app/pgpass", "*:*:*:app:%s" % attrs["secret"], sensitive=True)
sysctl("kernel.domainname", attrs["secret"], persist=False, sensitive=True)
cron("backup", command="/usr/local/bin/backup --key %s" % attrs["secret"],
     cron_file="backup", sensitive=True)
execute(["echo", attrs["secret"]], returns=[7], sensitive=True, ignore_failure=True)
"""


def secret(n: int) -> str:
    return "S3CRET-%d-%s" % (n, os.urandom(6).hex())


@pytest.fixture
def project(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    (work / "templates").mkdir(parents=True)
    (work / "recipe.py").write_text(RECIPE)
    (work / "templates/token.j2").write_text("token = {{ token }}\n")
    root = tmp_path / "root"
    for folder in ("etc", "srv", "proc/sys/kernel", "var/lib"):
        (root / folder).mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc/group").write_text("root:x:0:\n")
    (root / "proc/sys/kernel/domainname").write_text("(none)\n")
    return tmp_path


def converge(project: Path, value: str, *args: str, trace: Path | None = None
             ) -> subprocess.CompletedProcess:
    """`converge ARGS recipe.py` with the secret in attributes.yaml; with ``trace``,
    under strace, which writes there every program started and its argv."""
    (project / "work/attributes.yaml").write_text("secret: %s\n" % value)
    argv = [sys.executable, "-m", "converge", *args]
    if "--root" not in args and args[0] in ("apply", "plan"):
        argv += ["--root", str(project / "root")]
    if trace:
        argv = ["strace", "-f", "-qq", "-e", "trace=execve", "-s", "100000", "-o", str(trace),
                *argv]
    return subprocess.run(argv + ["recipe.py"], cwd=project / "work", capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=120)


def test_no_argv_holds_a_secret_but_the_command_executed(project: Path) -> None:
    value = secret(4)
    trace = project / "execve.log"
    for args in (["plan"], ["apply", "--diff", "--debug"]):
        done = converge(project, value, *args, trace=trace)
        assert done.returncode == 0 and "(sensitive)" in done.stdout, shown(done)
        execs = [line for line in trace.read_text().splitlines() if "execve(" in line]
        assert any("/python" in line and "converge" in line for line in execs), execs
        # the argv of each program started (every directory of PATH tried, for some)
        holding = {line.split(", [", 1)[1].split("], ", 1)[0] for line in execs
                   if value in line}
        # the recipe's execute(["echo", secret]) itself, and only when applied
        assert holding == ({'"echo", "%s"' % value} if args[0] == "apply" else set()), execs


def shown(done: subprocess.CompletedProcess) -> str:
    return done.stdout + done.stderr


def assert_hidden(text: str, secrets: List[str]) -> None:
    for value in secrets:
        assert value not in text, "secret %s shown:\n%s" % (value, text)


def test_no_channel_shows_a_sensitive_value(project: Path) -> None:
    first, second = secret(1), secret(2)
    report = project / "report.json"
    runs = [
        converge(project, first, "plan"),
        converge(project, first, "apply", "--diff", "--json", str(report)),
        converge(project, first, "apply", "--diff"),
        converge(project, second, "plan"),
        converge(project, second, "apply", "--diff", "--debug"),
        converge(project, second, "apply", "--json", "-"),
    ]
    # the run really converged: the secrets are where the recipe put them
    root = project / "root"
    assert second in (root / "srv/app/db.conf").read_text()
    assert second in (root / "srv/app/token.conf").read_text()
    assert second in (root / "srv/app/pgpass").read_text()
    assert second in (root / "etc/cron.d/backup").read_text()
    assert (root / "proc/sys/kernel/domainname").read_text().strip() == second
    for done in runs:
        assert_hidden(shown(done), [first, second])
    assert_hidden(report.read_text(), [first, second])

    plan = shown(runs[0])
    assert "would update content in file /srv/app/db.conf (sensitive)" in plan
    assert "would update content in file /srv/app/token.conf (sensitive)" in plan
    assert "would set kernel.domainname from (sensitive) to (sensitive)" in plan
    assert "* line[/srv/app/pgpass: (sensitive) " in plan
    assert "* execute[(sensitive) " in plan and "would execute (sensitive)" in plan
    update = shown(runs[4])
    assert "update content in file /srv/app/db.conf (sensitive)" in update
    assert "append line (sensitive) to /srv/app/pgpass" in update
    assert "update cron entry backup in /etc/cron.d/backup" in update
    assert "output not shown: sensitive" in update
    assert "+++" not in update and "---" not in update  # no diff at all
    data = json.loads(runs[5].stdout[runs[5].stdout.index("{"):])
    resources = data["hosts"]["localhost"]["resources"]
    assert all("diff" not in r for r in resources)


def test_the_journal_keeps_hashes_of_sensitive_content_only(project: Path) -> None:
    first, second = secret(1), secret(2)
    for value in (first, second):
        done = converge(project, value, "apply")
        assert "Converged" in done.stdout, shown(done)
    runs = project / "root/var/lib/converge/runs"
    journals = sorted(runs.glob("*.json"))
    assert len(journals) == 2
    text = "".join(p.read_text() for p in journals)
    assert_hidden(text, [first, second])
    old = ("password=%s\n" % first).encode()
    assert hashlib.sha256(old).hexdigest() in text  # what was replaced: its hash only
    records = [r for r in json.loads(journals[1].read_text())["resources"]
               if r.get("sensitive")]
    assert {r["type"] for r in records} >= {"file", "template", "line", "cron"}
    # the replaced content itself is kept for rollback in a backup only root can read
    backups = [p for p in (project / "root/var/lib/converge").rglob("*") if p.is_file()
               and p.parent != runs and old in p.read_bytes()]
    assert backups and all(p.stat().st_mode & 0o077 == 0 for p in backups)


@pytest.mark.parametrize("call, message", [
    pytest.param('execute(["mysql", "-p" + attrs["secret"]], returns=["x"], sensitive=True)',
                 "execute[(sensitive)]: returns must be an integer or a list of integers, "
                 "not ['x']", id="execute-returns"),
    pytest.param('execute(["mysql", "-p" + attrs["secret"], 7], shell=True, sensitive=True)',
                 "execute[(sensitive)]: shell=True takes the command as one string, not a list",
                 id="execute-shell"),
    pytest.param('execute("mysql -p" + attrs["secret"], sensitive=True)',
                 "execute[(sensitive)]: command is a string, and strings are never run by a "
                 "shell unless asked: give an argument list such as (sensitive), or shell=True",
                 id="execute-string"),
    pytest.param('line("/etc/x", attrs["secret"] + "\\n", sensitive=True)',
                 "line[/etc/x: (sensitive)]: line contains a newline; declare one line "
                 "resource per line", id="line-newline"),
    pytest.param('sysctl("vm.swappiness", attrs["secret"] + "\\n", sensitive=True)',
                 "sysctl[vm.swappiness]: value (sensitive) contains a newline or NUL character",
                 id="sysctl-value"),
    pytest.param('file("/etc/x", content=attrs["secret"], sensitive=True, notifies="x")',
                 "file[/etc/x]: notifies takes svc.restart or [('restart', svc)], not 'x'",
                 id="file-notifies"),
])
def test_compile_errors_of_sensitive_resources_hide_the_values(project: Path, call: str,
                                                               message: str) -> None:
    (project / "work/broken.py").write_text(
        "from converge import *\n" + textwrap.dedent(call) + "\n")
    value = secret(3)
    (project / "work/attributes.yaml").write_text("secret: %s\n" % value)
    for extra in ([], ["--debug"]):
        done = subprocess.run([sys.executable, "-m", "converge", "apply", "--root",
                               str(project / "root"), "broken.py", *extra],
                              cwd=project / "work", capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=300)
        assert done.returncode == 1
        assert_hidden(shown(done), [value])
        assert "error: broken.py:2: " + message in done.stderr


SENSITIVE_CALLS = [
    'execute(["mysql", "-p" + attrs["secret"]], returns=["x"], sensitive=True)',
    'execute("mysql -p" + attrs["secret"], sensitive=True)',
    'execute(["mysql", attrs["secret"]], shell=True, sensitive=True)',
    'line("/etc/x", attrs["secret"] + "\\n", sensitive=True)',
    'line("/etc/x", "a", match="(" + attrs["secret"], sensitive=True)',
    'sysctl("vm.swappiness", attrs["secret"] + "\\n", sensitive=True)',
    'cron("job", command=attrs["secret"] + "\\n", sensitive=True)',
    'file("/etc/x", content=attrs["secret"], mode="999", sensitive=True)',
    'template("/etc/x", source="t.j2", variables={"a": attrs["secret"]}, mode="9",'
    ' sensitive=True)',
]


@given(tail=hostile_text, call=st.sampled_from(SENSITIVE_CALLS))
def test_no_compile_error_shows_a_hostile_secret(tail: str, call: str) -> None:
    from converge.errors import ConvergeError
    from converge.recipe import compile_recipe

    value = "S3CRET" + tail
    with tempfile.TemporaryDirectory() as work:
        (Path(work) / "t.j2").write_text("{{ a }}\n")
        recipe = Path(work) / "recipe.py"
        recipe.write_text("from converge import *\n" + call + "\n")
        tried["refused"] += 1
        with pytest.raises(ConvergeError) as info:
            compile_recipe(recipe, attrs={"secret": value})
    text = str(info.value)
    assert "S3CRET" not in text, text
    assert "(sensitive)" in text or "is not" in text or "must" in text, text


SHARED = """\
from converge import cron, file, line
# a sensitive resource and a plain one in the same file, four times over
file("/srv/app/db.conf", content="password=%s\\n" % attrs["secret"], mode="0600",
     sensitive=True)
line("/srv/app/db.conf", "# %s" % attrs["other"])
file("/srv/app/pw.conf", content="user=app\\npassword=%s\\n" % attrs["secret"],
     sensitive=True)
line("/srv/app/pw.conf", "password=rotated-%s" % attrs["other"], match="^password=")
cron("token", command="/usr/local/bin/sync --token %s" % attrs["secret"],
     cron_file="shared", sensitive=True)
cron("plain", command="/usr/local/bin/report %s" % attrs["other"], cron_file="shared")
cron("utoken", command="/usr/local/bin/sync --token %s" % attrs["secret"], sensitive=True)
cron("uplain", command="/usr/local/bin/report %s" % attrs["other"])
line("/srv/app/open.conf", "plain %s" % attrs["other"])
"""


def test_a_file_holding_a_secret_shows_no_diff_through_another_resource(project: Path
                                                                        ) -> None:
    """A plain resource that writes a file a sensitive one writes (a line in a
    sensitive file, two entries of one cron.d file or crontab) shows no diff and no
    line read from that file, in any channel: console, --diff, plan, the JSON
    report, the journal, history, and a rollback's output."""
    (project / "work/recipe.py").write_text(SHARED)
    (project / "root/srv/app").mkdir(parents=True)
    (project / "root/var/spool/cron/crontabs").mkdir(parents=True)
    value = secret(7)

    def run(other: str, *args: str) -> subprocess.CompletedProcess:
        (project / "work/attributes.yaml").write_text("secret: %s\nother: %s\n"
                                                      % (value, other))
        done = subprocess.run([sys.executable, "-m", "converge", *args, "--root",
                               str(project / "root"), *(["recipe.py"] if args[0] in
                                                        ("apply", "plan") else [])],
                              cwd=project / "work", capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=120)
        assert done.returncode in (0, 2), shown(done)
        return done

    report = project / "report.json"
    runs = [
        run("one", "apply", "--diff", "--json", str(report)),
        run("two", "plan"),
        run("two", "plan", "--json", "-"),
        run("two", "apply", "--diff", "--debug"),
        run("three", "apply", "--diff", "--json", "-"),
        run("", "history"),
        run("", "history", "--json"),
        run("", "rollback", "--diff", "--force"),
    ]
    root = project / "root"
    assert value in (root / "srv/app/db.conf").read_text()
    assert value in (root / "etc/cron.d/shared").read_text()
    assert value in (root / "var/spool/cron/crontabs/root").read_text()
    for done in runs:
        assert_hidden(shown(done), [value])
    assert_hidden(report.read_text(), [value])
    journals = root / "var/lib/converge/runs"
    assert_hidden("".join(p.read_text() for p in journals.iterdir()), [value])

    plan = shown(runs[1])
    # the plain resources did change, and said so, without their diffs
    assert "would update cron entry plain in /etc/cron.d/shared" in plan
    assert "would update cron entry uplain in the crontab of root" in plan
    assert "would replace line 2 (sensitive) with 'password=rotated-two' in " \
           "/srv/app/pw.conf" in plan
    # a file no sensitive resource writes still gets its diff
    assert "     plain one\n    +plain two\n" in plan
    data = json.loads(runs[2].stdout[runs[2].stdout.index("{"):])
    diffs = {r["id"]: r.get("diff") for r in data["hosts"]["localhost"]["resources"]}
    assert diffs["cron[plain]"] is None and diffs["cron[uplain]"] is None
    assert diffs["line[/srv/app/open.conf: plain two]"]
    assert "+++" in shown(runs[4])  # --diff is on: only the secret files' diffs are gone


def test_a_sensitive_execute_streams_nothing_live(project: Path) -> None:
    """live=True streams a command's output as it comes, but never a sensitive
    command's: its output may be the secret (here printed from its environment)."""
    (project / "work/recipe.py").write_text(
        'from converge import execute\n'
        'execute(["sh", "-c", "echo token: $TOKEN"], environment={"TOKEN": attrs["secret"]},\n'
        '        live=True, sensitive=True)\n'
        'execute(["echo", "plain live output"], live=True)\n')
    value = secret(8)
    done = converge(project, value, "apply")
    assert done.returncode == 0, shown(done)
    assert "plain live output" in done.stderr  # live output of a plain command is shown
    assert_hidden(shown(done), [value])
    assert "warning: live output not shown: the resource is sensitive" in done.stdout
