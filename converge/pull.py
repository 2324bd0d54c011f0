"""Pull mode: a node converges itself from a signed git repository.

::

    converge pull https://git.example/ops.git --allowed-signers /etc/converge/signers \\
        --recipe site.py --inventory inventory.yaml

Each run fetches the branch into a cache under the state directory, verifies the
signature of the commit at its tip against the trusted keys (SSH keys in git's
allowed-signers format, or OpenPGP public keys), checks out exactly that commit,
compiles the recipe with this node's facts and its host and group variables from
the repository's inventory, and applies it here with the run lock and journal as
``converge apply`` does. An unsigned or wrongly signed commit, or one that is not a
descendant of the commit last applied (replaying an old signed commit), is refused:
nothing is applied and the node keeps its state.

Every pull is recorded in the node's own run store (SQLite in the state
directory), failures included. With ``--store URL`` (the shared PostgreSQL store)
the runs not yet written there are copied after each run: a store that cannot be
reached loses nothing, the next pull that reaches it carries the missed runs.

``--install`` keeps these settings in /etc/converge/pull.json and runs them on a
systemd timer (a cron entry where systemd does not run) with a random splay, after
installing converge for this python3 from ``--wheels DIR`` when given
(converge/wheels.py); ``--uninstall`` removes the timer and the settings. See
docs/pull.md.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess  # noqa: S404 - git and gpg, argv lists only
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from .errors import ConvergeError

CONFIG = "/etc/converge/pull.json"
UNIT = "converge-pull"
CRON_FILE = "/etc/cron.d/converge-pull"
SYSTEMD_DIR = "/etc/systemd/system"
DURATION = re.compile(r"^(\d+)([smhd]?)$")
SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class PullError(ConvergeError):
    """A pull that cannot go on: the repository, its signature, or the settings."""


def duration(text: str, what: str = "--check-every") -> int:
    """'90', '90s', '15m', '6h', '1d' as seconds."""
    match = DURATION.match(text.strip())
    if not match:
        raise PullError("%s %r is not a duration" % (what, text),
                        hint="a number of seconds, or with s, m, h or d: 90s, 15m, 6h, 1d")
    return int(match.group(1)) * SECONDS[match.group(2)]


@dataclass
class Settings:
    """What a pull does: the command line's options, or /etc/converge/pull.json."""

    repo: str
    branch: str = "main"
    recipe: str = "recipe.py"
    inventory: Optional[str] = None
    host: Optional[str] = None
    allowed_signers: Optional[str] = None
    gpg_key: Optional[str] = None
    store: Optional[str] = None
    only_if_changed: bool = False
    check_every: str = "6h"
    allow_older: bool = False
    attrs: List[str] = field(default_factory=list)

    def check(self) -> None:
        """Refuse settings that would run something other than what they say."""
        if not self.repo or self.repo.startswith("-"):
            raise PullError("the repository %r is not a git URL or path" % self.repo)
        if self.repo.startswith("ext::") or "::" in self.repo.split("/", 1)[0]:
            raise PullError("the repository %r uses a git remote helper; converge pull "
                            "fetches over https, ssh, git or a local path" % self.repo)
        if not re.match(r"^[A-Za-z0-9._/-]+$", self.branch) or self.branch.startswith(
                ("-", "/")) or ".." in self.branch:
            raise PullError("--branch %r is not a branch name" % self.branch)
        for name in ("recipe", "inventory"):
            value = getattr(self, name)
            if value and (os.path.isabs(value) or ".." in Path(value).parts):
                raise PullError("--%s %s must be a path inside the repository" % (name, value),
                                hint="relative to the repository's top folder, no '..'")
        if not (self.allowed_signers or self.gpg_key):
            raise PullError("converge pull applies signed commits only: say whose "
                            "signatures to trust",
                            hint="--allowed-signers FILE (SSH keys, git's "
                            "gpg.ssh.allowedSignersFile format) or --gpg-key FILE")
        for option, path in (("--allowed-signers", self.allowed_signers),
                             ("--gpg-key", self.gpg_key)):
            if path and not os.path.isfile(path):
                raise PullError("%s %s: no such file" % (option, path))
        duration(self.check_every)

    @classmethod
    def load(cls, path: str) -> "Settings":
        try:
            with open(path) as fh:
                data = json.load(fh)
        except (OSError, ValueError) as exc:
            raise PullError("cannot read the pull settings %s: %s" % (path, exc),
                            hint="converge pull --install writes them") from None
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown or "repo" not in data:
            raise PullError("%s: %s" % (path, "unknown settings: " + ", ".join(unknown)
                                        if unknown else "no repo"))
        return cls(**data)


def state_root() -> Path:
    """Where pull keeps its caches and what it last applied: the state directory
    (CONVERGE_STATE_DIR when set) under pull/."""
    from .agent.system import System

    return Path(System().state_dir()) / "pull"


class Checkout:
    """The repository's cache on this node, and what was last applied from it."""

    def __init__(self, settings: Settings, root: Optional[Path] = None) -> None:
        import hashlib

        self.settings = settings
        key = hashlib.sha256(("%s\0%s" % (settings.repo, settings.branch)).encode()
                             ).hexdigest()[:16]
        self.dir = (root or state_root()) / key
        self.repo = self.dir / "repo"
        self.state_file = self.dir / "state.json"

    # -- state ---------------------------------------------------------------------------

    def state(self) -> Dict[str, Any]:
        try:
            with open(self.state_file) as fh:
                data: Dict[str, Any] = json.load(fh)
                return data
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise PullError("%s is damaged (%s): remove it to start over" % (
                self.state_file, exc)) from None

    def save(self, state: Dict[str, Any]) -> None:
        temp = self.state_file.with_name(".state.json.tmp")
        with open(os.open(str(temp), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
                  "w") as fh:
            json.dump(state, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temp, self.state_file)

    def prepare(self) -> None:
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        os.chmod(self.dir, 0o700)
        if not (self.repo / ".git").is_dir():
            self.git(["init", "-q", str(self.repo)], cwd=self.dir)

    def lock(self) -> int:
        """An exclusive lock on this repository's cache (two timers never fetch at once)."""
        import fcntl

        fd = os.open(str(self.dir / "lock"), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise PullError("another converge pull of %s is running" % self.settings.repo,
                            hint="it holds %s; this one stops" % (self.dir / "lock")) from None
        return fd

    # -- git -------------------------------------------------------------------------------

    def git(self, args: List[str], cwd: Optional[Path] = None,
            env: Optional[Dict[str, str]] = None) -> str:
        full = dict(os.environ, GIT_TERMINAL_PROMPT="0", LC_ALL="C", **(env or {}))
        done = subprocess.run(  # noqa: S603 - argv list
            ["git", "-c", "protocol.ext.allow=never", "-c", "core.hooksPath=/dev/null", *args],
            cwd=str(cwd or self.repo), env=full, capture_output=True, text=True,
            errors="replace", stdin=subprocess.DEVNULL, timeout=600)
        if done.returncode != 0:
            raise PullError("git %s: %s" % (args[0], (done.stderr or done.stdout).strip()
                                            or "exit %d" % done.returncode))
        return done.stdout.strip()

    def fetch(self) -> str:
        """Fetch the branch; the commit at its tip."""
        self.git(["fetch", "--quiet", "--no-tags", "--force", "--", self.settings.repo,
                  "+refs/heads/%s:refs/converge/fetched" % self.settings.branch])
        return self.git(["rev-parse", "--verify", "refs/converge/fetched^{commit}"])

    def verify(self, commit: str) -> str:
        """Who signed ``commit``, or PullError when no trusted key did."""
        settings = self.settings
        with tempfile.TemporaryDirectory(prefix="converge-pull-") as scratch:
            args, env = ["-c", "gpg.ssh.allowedSignersFile=%s" % (
                os.path.abspath(settings.allowed_signers) if settings.allowed_signers
                else "/dev/null")], {}
            if settings.gpg_key:
                env["GNUPGHOME"] = scratch
                os.chmod(scratch, 0o700)
                done = subprocess.run(  # noqa: S603 - argv list
                    ["gpg", "--batch", "--quiet", "--import", settings.gpg_key],
                    env=dict(os.environ, GNUPGHOME=scratch), capture_output=True, text=True)
                if done.returncode != 0:
                    raise PullError("--gpg-key %s: gpg could not import it: %s" % (
                        settings.gpg_key, done.stderr.strip()))
            found = self.git([*args, "log", "-1", "--format=%G?%x00%GS%x00%GF", commit],
                             env=env)
        status, signer, key = (found.split("\0") + ["", ""])[:3]
        # G: good, from a key the allowed signers trust; U: good, from a key of the
        # keyring made of --gpg-key alone (gpg knows no trust for it)
        trusted = ("G", "U") if settings.gpg_key else ("G",)
        if status in trusted:
            return signer or key
        reasons = {"N": "it is not signed", "B": "its signature is bad",
                   "U": "it is signed by a key the allowed signers do not list",
                   "E": "its signature cannot be checked (no trusted key matches)",
                   "X": "its signature has expired", "Y": "it is signed by an expired key",
                   "R": "it is signed by a revoked key"}
        raise PullError("commit %s of %s is refused: %s" % (
            commit[:12], self.settings.repo, reasons.get(status, "status %r" % status)),
            hint="the node keeps its state; push a commit signed by a trusted key")

    def check_order(self, commit: str, last: Optional[str]) -> None:
        """A node never goes back to an older commit (or an unrelated one) unless told."""
        if not last or last == commit or self.settings.allow_older:
            return
        try:
            self.git(["merge-base", "--is-ancestor", last, commit])
        except PullError:
            raise PullError(
                "commit %s of %s is not a descendant of %s, the commit this node last "
                "applied: refused (replaying an older commit would roll the node back)"
                % (commit[:12], self.settings.repo, last[:12]),
                hint="--allow-older applies it anyway") from None

    def checkout(self, commit: str) -> Path:
        self.git(["-c", "advice.detachedHead=false", "checkout", "-q", "--force", "--detach",
                  commit])
        self.git(["clean", "-q", "-d", "-x", "--force"])
        return self.repo


def due(state: Dict[str, Any], commit: str, settings: Settings) -> bool:
    """--only-if-changed: whether this pull applies (a new commit, or a check due)."""
    if not settings.only_if_changed or state.get("last_applied") != commit:
        return True
    last = state.get("last_run_at") or 0
    return time.time() - float(last) >= duration(settings.check_every)


def copy_runs(local: Any, remote: Any, run_ids: List[str]) -> List[str]:
    """Copy the runs to the shared store; the ids still to copy (none when all went)."""
    left = list(run_ids)
    while left:
        remote.import_run(local.run(left[0]))
        left.pop(0)
    return left


def timestamp() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def settings_dict(settings: Settings) -> Dict[str, Any]:
    return asdict(settings)
