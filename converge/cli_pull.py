"""converge pull: the command line of pull mode (converge/pull.py), its timer
(--install, --uninstall) and the run it records."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional

import typer

if TYPE_CHECKING:  # converge.pull (socket, git, gpg) is imported by the pull command only
    from .pull import Settings

TRUST_DIR = "/etc/converge/pull-trust"
AttrOpt = typer.Option([], "--attr", "-a", metavar="KEY=VALUE",
                       help="Set an attribute (repeatable).")


def pull(
    repo: Optional[str] = typer.Argument(None, metavar="REPO", help="The git repository: "
                                         "an https or ssh URL, or a path."),
    branch: str = typer.Option("main", "--branch", "-b", metavar="BRANCH",
                               help="The branch whose newest commit is applied."),
    recipe: str = typer.Option("recipe.py", "--recipe", metavar="PATH",
                               help="The recipe, a path inside the repository."),
    inventory: Optional[str] = typer.Option(
        None, "--inventory", "-i", metavar="PATH", help="An inventory inside the repository: "
        "this node's host and group variables come from it."),
    host: Optional[str] = typer.Option(None, "--host", metavar="NAME", help="This node's "
                                       "name in the inventory (default: its host name)."),
    allowed_signers: Optional[str] = typer.Option(
        None, "--allowed-signers", metavar="FILE", help="Trust commits signed by these SSH "
        "keys (git's gpg.ssh.allowedSignersFile format)."),
    gpg_key: Optional[str] = typer.Option(None, "--gpg-key", metavar="FILE", help="Trust "
                                          "commits signed by these OpenPGP public keys."),
    store: Optional[str] = typer.Option(None, "--store", metavar="URL", help="Also record "
                                        "the runs in this run store (postgresql://...)."),
    only_if_changed: bool = typer.Option(
        False, "--only-if-changed", help="Skip the run when the commit is the one last "
        "applied and no drift check is due (--check-every)."),
    check_every: str = typer.Option("6h", "--check-every", metavar="DURATION",
                                    help="With --only-if-changed: apply the same commit "
                                    "again this often, to correct drift."),
    allow_older: bool = typer.Option(False, "--allow-older", help="Apply a commit that is "
                                     "not a descendant of the one last applied."),
    attr: List[str] = AttrOpt,
    config: Optional[str] = typer.Option(None, "--config", metavar="FILE", help="Read the "
                                         "settings from FILE (what --install wrote)."),
    install: bool = typer.Option(False, "--install", help="Run this pull on a timer: "
                                 "systemd (cron where systemd does not run)."),
    every: str = typer.Option("30m", "--every", metavar="DURATION",
                              help="With --install: how often the timer runs."),
    splay: str = typer.Option("5m", "--splay", metavar="DURATION", help="With --install: "
                              "a random delay of up to this much, so nodes spread out."),
    wheels: Optional[str] = typer.Option(
        None, "--wheels", metavar="DIR", help="With --install: first install converge for "
        "this python3 from the wheels in DIR (python3 -m converge.wheels build)."),
    uninstall: bool = typer.Option(False, "--uninstall", help="Remove the timer and the "
                                   "stored settings."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
) -> None:
    """Pull mode: converge this machine from a signed git repository.

    Fetches BRANCH of REPO, verifies the signature of the commit at its tip,
    refuses a commit not signed by a trusted key or older than the one last
    applied, and applies the recipe here with this node's facts and its
    inventory variables. Every pull is recorded in the run store."""
    from .pull import Settings, duration

    if uninstall:
        _uninstall()
        raise typer.Exit(0)
    if config:
        if repo:
            raise typer.BadParameter("give REPO or --config, not both")
        settings = Settings.load(config)
    elif not repo:
        raise typer.BadParameter("give the repository (REPO) or --config FILE")
    else:
        settings = Settings(repo=repo, branch=branch, recipe=recipe, inventory=inventory,
                            host=host, allowed_signers=allowed_signers, gpg_key=gpg_key,
                            store=store, only_if_changed=only_if_changed,
                            check_every=check_every, allow_older=allow_older, attrs=list(attr))
    settings.check()
    if wheels and not install:
        raise typer.BadParameter("--wheels goes with --install")
    if install:
        _install(settings, duration(every, "--every"), duration(splay, "--splay"), wheels)
        raise typer.Exit(0)
    raise typer.Exit(run_pull(settings, debug))


def run_pull(settings: Settings, debug: bool = False) -> int:
    """One pull: fetch, verify, apply, record. The exit code."""
    import socket

    from .pull import Checkout, PullError, due, timestamp
    from .store import Recorder, connect

    def warn(text: str) -> None:
        typer.echo("warning: " + text, err=True)

    checkout = Checkout(settings)
    checkout.prepare()
    lock = checkout.lock()
    local = connect(None)
    name = settings.host or socket.gethostname()
    recorder = Recorder(local, "pull", settings.recipe, sys.argv[1:], warn=warn)
    state = checkout.state()
    try:
        try:
            commit = checkout.fetch()
            signer = checkout.verify(commit)
            checkout.check_order(commit, state.get("last_applied"))
        except PullError as exc:
            _record_failure(recorder, name, exc)
            state["last_error"] = {"at": timestamp(), "error": str(exc)}
            raise
        finally:
            _sync(settings, local, recorder, state, warn)
            checkout.save(state)
        if not due(state, commit, settings):
            typer.echo("%s: commit %s is applied already, next drift check in %ds "
                       "(--check-every %s)" % (name, commit[:12], _next_check(state, settings),
                                               settings.check_every))
            return 0
        typer.echo("%s: applying %s of %s, signed by %s" % (
            name, commit[:12], settings.branch, _printable(signer)))
        tree = checkout.checkout(commit)
        recorder.recipe = str(tree / settings.recipe)
        try:
            outcome = _apply(settings, tree, name, recorder, debug)
        except Exception as exc:  # a compile error: record it, keep the state
            _record_failure(recorder, name, exc)
            state["last_error"] = {"at": timestamp(), "commit": commit, "error": str(exc)}
            raise
        else:
            state.update(last_applied=commit, last_run_at=time.time(),
                         last_result="failed" if outcome.failed else "ok")
            state.pop("last_error", None)
        finally:
            _sync(settings, local, recorder, state, warn)
            checkout.save(state)
        return 1 if outcome.failed else 0
    finally:
        recorder.finish(None, interrupted=True)  # no-op once the run finished
        local.close()
        os.close(lock)


def _apply(settings: Settings, tree: Path, name: str, recorder: Any, debug: bool) -> Any:
    from .pull import PullError
    from .recipe import parse_assignments
    from .report import Console, summary_line
    from .runner import run
    from .transport.local import LocalTransport

    recipe = tree / settings.recipe
    if not recipe.is_file():
        raise PullError("%s has no recipe %s" % (settings.repo, settings.recipe),
                        hint="--recipe PATH, relative to the repository's top folder")
    layer: Dict[str, Any] = {}
    if settings.inventory:
        from .inventory import load

        hosts = load(str(tree / settings.inventory)).hosts
        if name not in hosts:
            raise PullError("%s has no host %s" % (settings.inventory, name),
                            hint="--host NAME names this node in the inventory")
        layer = hosts[name].vars
    started = time.monotonic()
    console = Console(sys.stdout)
    transport = LocalTransport(host=name, debug=debug,
                               on_notice=lambda text: typer.echo(_printable(text), err=True))
    outcome = run(recipe, [transport], mode="apply", attrs=parse_assignments(settings.attrs),
                  host_vars={name: layer}, cookbook_path=[tree / "cookbooks"],
                  recorder=recorder, on_event=lambda host, event: console.event(event, host))
    entry = outcome.report["hosts"][name]
    sys.stdout.write(summary_line(entry["summary"], time.monotonic() - started) + "\n")
    if entry.get("error"):
        typer.echo("error: %s" % _printable(entry["error"]), err=True)
    return outcome


def _record_failure(recorder: Any, name: str, exc: BaseException) -> None:
    from .vault import scrub

    entry = {"error": scrub(str(exc)), "summary": {"total": 0, "failed": 0}}
    recorder.begin()
    recorder.host(name, entry)
    recorder.finish({"summary": {"hosts": 1, "failed": 1}, "hosts": {name: entry}})


def _sync(settings: Settings, local: Any, recorder: Any, state: Dict[str, Any],
          warn: Any) -> None:
    """Copy this run, and the runs an unreachable store missed, to --store."""
    if not settings.store:
        return
    from .pull import copy_runs
    from .store import connect

    waiting = list(state.get("unsynced") or [])
    if recorder.state == "done" and recorder.id not in waiting:
        waiting.append(recorder.id)
    if not waiting:  # nothing to send yet: no connection (a pull that applies sends once)
        return
    try:
        remote = connect(settings.store)
        try:
            waiting = copy_runs(local, remote, waiting)
        finally:
            remote.close()
    except Exception as exc:  # noqa: BLE001 - the run is kept here, sent next time
        warn("the run store could not be written (%s): %d run(s) kept here, sent with "
             "the next pull that reaches it" % (_printable(str(exc)), len(waiting)))
    state["unsynced"] = waiting


def _next_check(state: Dict[str, Any], settings: Settings) -> int:
    from .pull import duration

    last = float(state.get("last_run_at") or 0)
    return max(0, int(last + duration(settings.check_every) - time.time()))


def _printable(text: str) -> str:
    from .errors import printable

    return printable(text)


# -- the timer ----------------------------------------------------------------------------


def _systemd_running() -> bool:
    return os.path.isdir("/run/systemd/system")


def _quote_unit(word: str) -> str:
    """One word of a unit's ExecStart, quoted as systemd reads it."""
    escaped = (word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
               .replace("$", "$$"))
    return '"%s"' % escaped


def _write(path: str, text: str, mode: int) -> None:
    from .agent.system import System

    System().write_atomic(path, text.encode(), mode=mode)


def _install_wheels(folder: str) -> None:
    from pathlib import Path

    from .pull import PullError
    from .wheels import WheelError, install

    try:
        done = install(Path(folder))
    except (WheelError, OSError) as exc:
        raise PullError("--wheels %s: %s" % (folder, exc)) from None
    changed = [name for name, was_changed in done.items() if was_changed]
    typer.echo("wheels: %d installed, %d up to date, for %s" % (
        len(changed), len(done) - len(changed), sys.executable))


def _check_importable(python: str) -> None:
    """The timer runs ``python -m converge`` with cron's or systemd's environment (no
    PYTHONPATH, another working directory): converge must be installed for it."""
    import subprocess  # noqa: S404

    from .pull import PullError

    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    done = subprocess.run([python, "-c", "import converge.cli"], env=env, cwd="/",  # noqa: S603
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise PullError("%s cannot import converge without PYTHONPATH, so the timer could "
                        "not run it: %s" % (python, (done.stderr.strip().splitlines() or
                                                     ["exit %d" % done.returncode])[-1]),
                        hint="install converge for it: --wheels DIR, with wheels made by "
                        "python3 -m converge.wheels build DIR on the controller")


def _install(settings: Settings, every: int, splay: int, wheels: Optional[str] = None) -> None:
    """Install converge from ``wheels`` when given, keep the settings (and copies of the
    trusted keys) under /etc/converge and run ``converge pull --config`` on a timer."""
    import shutil

    from .pull import CONFIG, CRON_FILE, SYSTEMD_DIR, UNIT, settings_dict

    if wheels:
        _install_wheels(wheels)
    _check_importable(sys.executable)

    os.makedirs(TRUST_DIR, mode=0o755, exist_ok=True)
    kept = settings_dict(settings)
    for key in ("allowed_signers", "gpg_key"):
        if kept[key]:
            target = os.path.join(TRUST_DIR, key.replace("_", "-"))
            shutil.copyfile(kept[key], target + ".tmp")
            os.chmod(target + ".tmp", 0o644)
            os.replace(target + ".tmp", target)
            kept[key] = target
    import json

    _write(CONFIG, json.dumps(kept, indent=1, sort_keys=True) + "\n", 0o600)
    argv = [sys.executable, "-m", "converge", "pull", "--config", CONFIG]
    if _systemd_running():
        for name, text in timer_units(settings.repo, argv, every, splay).items():
            _write(os.path.join(SYSTEMD_DIR, name), text, 0o644)
        for command in (["systemctl", "daemon-reload"],
                        ["systemctl", "enable", "--now", UNIT + ".timer"]):
            _checked(command)
        typer.echo("installed: %s.timer every %ds (splay %ds), settings in %s"
                   % (UNIT, every, splay, CONFIG))
        return
    import shlex

    line = "%s root %s >/dev/null 2>&1\n" % (_cron_schedule(every, splay),
                                             " ".join(shlex.quote(w) for w in argv))
    _write(CRON_FILE, "# converge pull --install: converge this node from %s\n%s"
           % (settings.repo.replace("\n", " "), line.replace("%", "\\%")), 0o644)
    typer.echo("installed: %s (systemd does not run here), settings in %s"
               % (CRON_FILE, CONFIG))


def timer_units(repo: str, argv: List[str], every: int, splay: int) -> Dict[str, str]:
    """The service and timer that run ``argv`` every ``every`` seconds, each tick
    delayed by up to ``splay`` seconds."""
    from .pull import UNIT

    exec_start = " ".join(_quote_unit(w) for w in argv)
    description = printable_unit(repo)
    return {
        UNIT + ".service": "[Unit]\nDescription=converge pull from %s\n"
        "Wants=network-online.target\nAfter=network-online.target\n\n[Service]\n"
        "Type=oneshot\nExecStart=%s\n" % (description, exec_start),
        UNIT + ".timer": "[Unit]\nDescription=converge pull, every %ds\n\n[Timer]\n"
        "OnBootSec=60s\nOnUnitActiveSec=%ds\nRandomizedDelaySec=%ds\n\n[Install]\n"
        "WantedBy=timers.target\n" % (every, every, splay),
    }


def printable_unit(text: str) -> str:
    """A value on one line of a unit file, with systemd's specifiers kept literal."""
    return "".join(c if c.isprintable() else "?" for c in text).replace("%", "%%")


def _cron_schedule(every: int, splay: int) -> str:
    """A cron schedule close to ``every`` seconds, offset by a random splay."""
    import random

    minutes = max(1, every // 60)
    offset = random.randrange(max(1, min(splay // 60, minutes, 60)))  # noqa: S311
    if minutes < 60:
        return "%d-59/%d * * * *" % (offset % minutes, minutes)
    hours = minutes // 60
    if hours < 24:
        return "%d */%d * * *" % (offset, hours)
    return "%d %d * * *" % (offset, random.randrange(24))  # noqa: S311


def _checked(argv: List[str]) -> None:
    import subprocess  # noqa: S404

    from .pull import PullError

    done = subprocess.run(argv, capture_output=True, text=True)  # noqa: S603
    if done.returncode != 0:
        raise PullError("%s: %s" % (" ".join(argv), done.stderr.strip()))


def _uninstall() -> None:
    from .pull import CONFIG, CRON_FILE, SYSTEMD_DIR, UNIT

    removed = []
    if _systemd_running() and os.path.exists(os.path.join(SYSTEMD_DIR, UNIT + ".timer")):
        _checked(["systemctl", "disable", "--now", UNIT + ".timer"])
    for path in (os.path.join(SYSTEMD_DIR, UNIT + ".timer"),
                 os.path.join(SYSTEMD_DIR, UNIT + ".service"), CRON_FILE, CONFIG):
        if os.path.lexists(path):
            os.unlink(path)
            removed.append(path)
    if os.path.isdir(TRUST_DIR):
        import shutil

        shutil.rmtree(TRUST_DIR)
        removed.append(TRUST_DIR)
    if _systemd_running() and removed:
        _checked(["systemctl", "daemon-reload"])
    typer.echo("removed: %s" % (", ".join(removed) or "nothing (not installed)"))


def register(app: typer.Typer) -> None:
    app.command(name="pull")(pull)
