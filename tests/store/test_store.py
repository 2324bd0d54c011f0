"""The run store, in SQLite and in a real PostgreSQL server alike: runs recorded by
apply, check and rollback as they go, listed and shown again, migrations, and a
controller killed mid-run."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from converge import store as run_store
from converge.errors import ConvergeError

RECIPE = """\
from converge import execute, file
file("out/motd", content="hello %s\\n" % attrs.get("who", "world"))
file("out/other", content="same\\n")
"""


def converge(*args: str, cwd: Path, env: Optional[Dict[str, str]] = None,
             ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "converge", *args], cwd=cwd, text=True,
                          capture_output=True, timeout=120, stdin=subprocess.DEVNULL,
                          env={**os.environ, **(env or {})})


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "recipe.py").write_text(RECIPE)
    (tmp_path / "out").mkdir()
    return tmp_path


def test_runs_are_recorded_listed_and_shown(work: Path, store_url: str) -> None:
    env = {"CONVERGE_STORE": store_url}
    first = converge("apply", "recipe.py", cwd=work, env=env)
    assert first.returncode == 0, first.stderr
    assert converge("apply", "recipe.py", cwd=work, env=env).returncode == 0
    (work / "out/motd").write_text("drifted\n")
    assert converge("check", "recipe.py", cwd=work, env=env).returncode == 2
    assert converge("rollback", "--yes", "--force", cwd=work, env=env).returncode == 0

    listed = converge("runs", "--json", cwd=work, env=env)
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)
    assert [(r["kind"], r["status"], r["result"]) for r in runs] == [
        ("rollback", "finished", "changed"), ("check", "finished", "changed"),
        ("apply", "finished", "ok"), ("apply", "finished", "changed")]
    assert runs[3]["hosts"] == {"localhost": {"status": "changed", "error": None}}
    assert runs[3]["recipe"] == "recipe.py" and len(runs[3]["recipe_hash"]) == 16
    assert runs[3]["options"] == ["apply", "recipe.py"] and runs[0]["options"][0] == "rollback"
    assert runs[3]["summary"]["updated"] == 2

    ids = [r["id"] for r in runs]  # runs in one second share their time part: take the
    prefix = next(runs[3]["id"][:n] for n in range(16, 23)  # shortest unique beginning
                  if sum(i.startswith(runs[3]["id"][:n]) for i in ids) == 1)
    shown = converge("runs", "show", prefix, cwd=work, env=env)
    assert shown.returncode == 0, shown.stderr
    # the lines the console printed, indented under the host
    for line in first.stdout.splitlines()[:-1]:
        assert "  " + line in shown.stdout.splitlines()
    assert "Converged 2 resources: 2 updated, 0 up to date, 0 failed" in shown.stdout
    check = converge("runs", "show", runs[1]["id"], "--diff", cwd=work, env=env).stdout
    assert "would update content in file out/motd" in check and "-drifted" in check

    only_checks = json.loads(converge("runs", "--json", "--status", "changed", "--recipe",
                                      "recipe", cwd=work, env=env).stdout)
    assert [r["kind"] for r in only_checks] == ["check", "apply"]  # rollback: no recipe
    assert json.loads(converge("runs", "--json", "--host", "elsewhere", cwd=work,
                               env=env).stdout) == []
    assert json.loads(converge("runs", "--json", "--since", "2999-01-01", cwd=work,
                               env=env).stdout) == []
    text = converge("runs", cwd=work, env=env).stdout.splitlines()
    assert len(text) == 4 and "apply" in text[3] and "changed=1" in text[3]


def test_plan_is_not_recorded_and_a_compile_error_records_nothing(work: Path,
                                                                  store_url: str) -> None:
    env = {"CONVERGE_STORE": store_url}
    assert converge("plan", "recipe.py", cwd=work, env=env).returncode == 0
    (work / "broken.py").write_text("from converge import file\nfile(\"x\", mode=\"999\")\n")
    assert converge("apply", "broken.py", cwd=work, env=env).returncode == 1
    assert json.loads(converge("runs", "--json", cwd=work, env=env).stdout) == []


def test_the_default_store_is_in_the_state_directory(work: Path) -> None:
    assert converge("apply", "recipe.py", cwd=work).returncode == 0
    path = Path(os.environ["CONVERGE_STATE_DIR"]) / "store.db"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT kind, status FROM runs").fetchall() == [
            ("apply", "finished")]


def test_migrations(tmp_path: Path, store_url: str) -> None:
    opened = run_store.connect(store_url)
    assert opened.version() == run_store.SCHEMA_VERSION
    opened.close()
    again = run_store.connect(store_url)  # migrating a current store does nothing
    assert again.version() == run_store.SCHEMA_VERSION
    again.db.transaction([("UPDATE converge_schema SET version = ?",
                           (run_store.SCHEMA_VERSION + 1,))])
    again.close()
    with pytest.raises(ConvergeError, match="newer than this converge's"):
        run_store.connect(store_url)


def test_a_bad_store_url_is_one_error(work: Path) -> None:
    done = converge("apply", "recipe.py", "--store", "mysql://x", cwd=work)
    assert done.returncode == 1
    assert done.stderr == "error: --store mysql://x: expected sqlite:///PATH or " \
        "postgresql://...\n"
    assert not (work / "out/motd").exists()


HOLD = """\
from converge import execute, file
file("out/first", content="1\\n")
execute(["sh", "-c", "echo here > ready && head -c 1 gate"], cwd="%s")
"""


def test_a_killed_controller_leaves_an_interrupted_run(work: Path, store_url: str) -> None:
    for fifo in ("ready", "gate"):
        os.mkfifo(work / fifo)
    (work / "hold.py").write_text(HOLD % work)
    controller = subprocess.Popen(
        [sys.executable, "-m", "converge", "apply", "hold.py"], cwd=work,
        env={**os.environ, "CONVERGE_STORE": store_url}, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        with open(work / "ready") as ready:  # the execute runs: the run is under way
            assert ready.read() == "here\n"
        opened = run_store.connect(store_url)
        [running] = opened.runs()
        assert running["status"] == "running"
        os.killpg(controller.pid, signal.SIGKILL)
        controller.wait()
        [killed] = opened.runs()
        assert killed["id"] == running["id"] and killed["status"] == "interrupted"
        assert [r["id"] for r in opened.runs(status="interrupted")] == [running["id"]]
        opened.close()
    finally:
        if controller.poll() is None:
            os.killpg(controller.pid, signal.SIGKILL)
            controller.wait()


def test_finished_hosts_are_kept_when_the_run_dies(store_url: str) -> None:
    """Each host is written when it finishes, in one transaction: what was done
    before the controller died is there."""
    opened = run_store.connect(store_url)
    recorder = run_store.Recorder(opened, "apply", None, ["apply"], warn=print)
    recorder.begin()
    event = {"id": "file[/etc/motd]", "action": "create", "status": "updated",
             "changes": ["update content in file /etc/motd from 1 to 2"], "time": 0.25}
    recorder.event("web1", event)
    recorder.host("web1", {"summary": {"updated": 1, "failed": 0}})
    run = opened.run(recorder.id)
    assert run["hosts"]["web1"]["status"] == "changed"
    assert run["hosts"]["web1"]["resources"] == [event]
    assert run["hosts"]["web1"]["seconds"] == 0.25
    assert opened.host_history("web1")[0]["changed"] == ["file[/etc/motd]"]
    opened.close()


def test_a_store_that_cannot_be_opened_warns_and_the_run_goes_on(work: Path) -> None:
    (work / "store.db").mkdir()  # a folder where the file should be
    done = converge("apply", "recipe.py", cwd=work,
                    env={"CONVERGE_STORE": "sqlite:///%s" % (work / "store.db")})
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith("warning: cannot open the run store %s" % (work / "store.db"))
    assert done.stderr.endswith("; the run goes on, unrecorded\n")
    assert (work / "out/motd").read_text() == "hello world\n"


def test_vault_values_are_scrubbed_from_the_store(work: Path, store_url: str) -> None:
    from converge import vault

    (work / "pw").write_text("pw\n")
    secret = "s3cret-%s" % os.urandom(4).hex()
    text = vault.encrypt(("who: %s\n" % secret).encode(), b"pw")
    (work / "book").mkdir()
    (work / "book/recipe.py").write_text(RECIPE)
    (work / "book/attributes.yaml").write_text(text)
    env = {"CONVERGE_STORE": store_url, "CONVERGE_VAULT_PASSWORD_FILE": str(work / "pw")}
    done = converge("apply", "book", "--diff", cwd=work, env=env)
    assert done.returncode == 0, done.stderr
    dump = converge("runs", "show", "--json", cwd=work, env=env).stdout
    assert secret not in dump and "(sensitive)" in dump
    raw: List[str] = []
    opened = run_store.connect(store_url)
    for table in ("runs", "run_hosts", "run_resources"):
        raw += [repr(row) for row in opened.db.execute("SELECT * FROM %s" % table)]
    opened.close()
    assert raw and not [row for row in raw if secret in row]


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          check=True, env={**os.environ, "GIT_AUTHOR_NAME": "a",
                                           "GIT_AUTHOR_EMAIL": "a@example.org",
                                           "GIT_COMMITTER_NAME": "a",
                                           "GIT_COMMITTER_EMAIL": "a@example.org"})
    return done.stdout.strip()


def test_the_recipes_commit_is_read_from_the_repository_as_git_says_it(tmp_path: Path) -> None:
    """A branch's loose ref, packed refs, a detached HEAD and a worktree: the commit
    git rev-parse gives, read without running git."""
    from converge.store import recipe_info

    repo = tmp_path / "repo"
    (repo / "site").mkdir(parents=True)
    recipe = repo / "site" / "recipe.py"
    recipe.write_text("from converge import file\n")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "one")
    first = _git(repo, "rev-parse", "HEAD")
    assert recipe_info(str(recipe))["git_commit"] == first  # refs/heads/main
    _git(repo, "pack-refs", "--all")
    assert not (repo / ".git/refs/heads/main").exists()
    assert recipe_info(str(recipe))["git_commit"] == first  # packed-refs
    recipe.write_text("from converge import directory\n")
    _git(repo, "commit", "-q", "-am", "two")
    second = _git(repo, "rev-parse", "HEAD")
    assert second != first and recipe_info(str(recipe))["git_commit"] == second
    _git(repo, "checkout", "-q", "--detach", first)
    assert recipe_info(str(recipe))["git_commit"] == first  # detached
    _git(repo, "checkout", "-q", "main")
    _git(repo, "worktree", "add", "-q", "-b", "side", str(tmp_path / "side"), first)
    assert recipe_info(str(tmp_path / "side/site/recipe.py"))["git_commit"] == first
    assert recipe_info(str(tmp_path / "side/site"))["git_commit"] == first
    outside = tmp_path / "alone.py"
    outside.write_text("")
    assert recipe_info(str(outside))["git_commit"] is None
