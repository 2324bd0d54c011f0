"""The git commands behind the ``git`` resource: every one an argument list, run
as the checkout's user, with no prompt (a repository that asks for a password
fails at once instead of hanging the run) and the checkout named safe (git 2.35.2
and later refuse a repository another user owns: root reading a checkout that
belongs to ``deploy``). Standard library only, Python 3.8.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Sequence

from ..errors import ResourceError

SHA = re.compile(r"[0-9a-f]{7,40}")
#: a revision git would take for an option, or that holds a space or control character
BAD_REVISION = re.compile(r"^-|[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|\.lock$|/$|^/")


def redact(url: str) -> str:
    """A repository URL as output shows it: the password of https://user:pw@host
    replaced (it must never reach a terminal, a journal or a report)."""
    return re.sub(r"(://[^/@:]*):[^/@]*@", r"\1:(hidden)@", url)


class Runner:
    """git, run in one checkout as one user."""

    def __init__(self, system: Any, destination: str, user: Optional[str],
                 group: Optional[str]) -> None:
        self.system = system
        self.destination = destination
        self.user = user
        self.group = group

    def env(self) -> Dict[str, str]:
        env = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "GIT_SSH_COMMAND":
               "ssh -o BatchMode=yes", "GIT_CONFIG_NOSYSTEM": "1"}
        if self.user is not None:  # not root's HOME: git reads its config there
            from . import _accounts as acc

            entry = acc.users(self.system).get(self.user)
            if entry is not None and entry["home"]:
                env["HOME"] = entry["home"]
        return env

    def run(self, args: Sequence[str], in_checkout: bool = True, check: bool = True) -> Any:
        # --no-optional-locks: git status would otherwise rewrite .git/index (its mtime)
        argv = ["git", "--no-optional-locks", "-c",
                "safe.directory=" + self.system.real(self.destination)]
        if in_checkout:
            argv += ["-C", self.system.real(self.destination)]
        done = self.system.run(argv + list(args), env=self.env(), timeout=600,
                               user=self.user, group=self.group)
        if check and not done.ok:
            raise ResourceError("git %s exited %d: %s" % (
                args[0], done.returncode, redact(done.output() or "(no output)")))
        return done

    def out(self, *args: str) -> Optional[str]:
        done = self.run(args, check=False)
        return done.stdout.strip() if done.ok else None

    # -- reading --------------------------------------------------------------------

    def state(self) -> Dict[str, Any]:
        """HEAD's sha, its branch (None when detached), origin's URL and whether
        tracked files have local changes."""
        return {"head": self.out("rev-parse", "--verify", "-q", "HEAD^{commit}"),
                "branch": self.out("symbolic-ref", "-q", "--short", "HEAD"),
                "url": self.out("config", "--get", "remote.origin.url"),
                "dirty": bool(self.out("status", "--porcelain", "--untracked-files=no"))}

    def remote(self, repository: str, revision: str) -> Dict[str, Any]:
        """What ``revision`` names in the remote repository: its sha and whether it
        is a branch, read with ls-remote (nothing is fetched: plan changes nothing)."""
        done = self.run(["ls-remote", "--symref", "--", repository], in_checkout=False)
        refs: Dict[str, str] = {}
        default = ""
        for line in done.stdout.splitlines():
            sha, _, ref = line.partition("\t")
            if sha.startswith("ref: refs/heads/") and ref == "HEAD":
                default = sha[len("ref: refs/heads/"):]
            else:
                refs[ref] = sha
        if revision == "HEAD":  # the remote's default branch, as a clone checks it out
            revision = default
            if not default:
                raise ResourceError("%s has no default branch (its HEAD names none)"
                                    % redact(repository), hint="give revision='BRANCH'")
        if "refs/heads/" + revision in refs:
            return {"sha": refs["refs/heads/" + revision], "branch": revision, "kind": "branch"}
        for ref in ("refs/tags/%s^{}" % revision, "refs/tags/" + revision):
            if ref in refs:  # an annotated tag's commit is the peeled ^{} line
                return {"sha": refs[ref], "branch": None, "kind": "tag"}
        if SHA.fullmatch(revision):
            return {"sha": revision, "branch": None, "kind": "sha"}
        raise ResourceError("revision %s is neither a branch, a tag nor a commit id in %s"
                            % (revision, redact(repository)),
                            hint="list them with: git ls-remote %s" % redact(repository))

    # -- acting ---------------------------------------------------------------------

    def clone(self, repository: str, revision: str, kind: str, depth: Optional[int]) -> None:
        args: List[str] = ["clone", "--origin", "origin"]
        if depth is not None:
            args += ["--depth", str(depth)]
        if kind in ("branch", "tag"):
            args += ["--branch", revision]
        elif kind == "sha":
            args += ["--no-checkout"]
        self.run(args + ["--", repository, self.system.real(self.destination)],
                 in_checkout=False)
        if kind == "sha":
            self.move(revision, "sha", force=False, depth=depth)

    def fetch(self, revision: str, kind: str, depth: Optional[int]) -> None:
        """Fetch what ``revision`` names, by an explicit refspec (a clone made with
        --depth or --branch fetches one branch only by default)."""
        refspec = {"branch": "+refs/heads/%s:refs/remotes/origin/%s" % (revision, revision),
                   "tag": "+refs/tags/%s:refs/tags/%s" % (revision, revision)}.get(kind)
        if refspec is None:
            return  # a commit id: move() fetches it when it is missing
        self.run(["fetch", "--no-tags"] + (["--depth", str(depth)] if depth else []) +
                 ["origin", refspec])

    def move(self, revision: str, kind: str, force: bool, depth: Optional[int]) -> None:
        """Check out the revision: a branch tracking origin's, else a detached HEAD."""
        if kind == "sha" and self.out("cat-file", "-e", revision + "^{commit}") is None:
            self.run(["fetch"] + (["--depth", str(depth)] if depth else []) +
                     ["origin", revision])
        args = ["checkout", "-q"] + (["--force"] if force else [])
        if kind == "branch":
            args += ["-B", revision, "--track", "origin/" + revision]
        else:
            args += ["--detach", revision + "^{commit}" if kind == "sha" else
                     "refs/tags/%s^{commit}" % revision]
        self.run(args + ["--"])

    def submodules(self) -> None:
        self.run(["submodule", "update", "--init", "--recursive"])
