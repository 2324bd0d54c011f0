"""git: a checkout of a git repository at a branch, tag or commit.

Example::

    git("/srv/app", "https://git.example.com/app.git", revision="main", user="deploy")
    git("/opt/tool", "/srv/git/tool.git", revision="v1.4.2", depth=1)
    git("/srv/docs", "https://git.example.com/docs.git", action="checkout")

``sync`` clones the repository when the destination is absent (or an empty
directory), then on every run asks the remote (``git ls-remote``: plan fetches
nothing) what ``revision`` names and, when HEAD differs, fetches and moves there:
a branch is checked out as a local branch tracking origin's; a tag or a commit id
leaves a detached HEAD, as git does. ``HEAD`` means the remote's default branch.
``checkout`` only clones: an existing checkout is left where it is. Local changes
to tracked files fail the resource (nothing is touched) unless ``force=True``,
which discards them; untracked files are kept either way. A destination that is
not a checkout and not empty fails the resource. A checkout whose origin points
elsewhere gets its origin set to ``repository``.

git runs as ``user`` (and ``group``) when given, with that user's HOME, never
prompting for a password; the password in an ``https://user:pw@host`` URL is never
shown. Rollback removes a clone the run made and puts HEAD back on the commit it
was on (detached); discarded local changes cannot be restored.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from ..errors import ResourceError
from . import _validate as v
from ._base import Change, Resource, prop
from ._git import BAD_REVISION, Runner, redact


class Git(Resource, type_name="git"):
    """Clone a git repository and keep it at a branch, tag or commit."""

    actions = ("sync", "checkout")

    destination: str = prop(doc="Where the checkout lives (an absolute path).", identity=True,
                            coerce=v.path)
    repository: str = prop(doc="The repository URL or path, as git clone takes it.")
    revision: str = prop("HEAD", doc="A branch, a tag or a commit id; HEAD is the remote's "
                         "default branch.")
    depth: Optional[int] = prop(None, doc="Clone and fetch only this many commits (git "
                                "--depth). Unset: the whole history.",
                                coerce=v.between(1, 2 ** 31 - 1))
    user: Optional[str] = prop(None, doc="Run git as this user (it owns the checkout). Unset: "
                               "the user converge runs as.", coerce=v.account)
    group: Optional[str] = prop(None, doc="Run git with this group. Unset: the user's "
                                "primary group.", coerce=v.account)
    enable_submodules: bool = prop(False, doc="Also check out the submodules (git submodule "
                                   "update --init --recursive).")
    force: bool = prop(False, doc="Discard local changes to tracked files when moving the "
                       "checkout. False: local changes fail the resource.")

    def normalise(self) -> None:
        if not self.destination.startswith("/"):
            raise self.fail("destination %s must be an absolute path" % v.quoted(self.destination))
        self.repository = v.text(self.repository, "repository", one_line=True)
        if not self.repository or self.repository.startswith("-"):
            raise self.fail("repository %s is not a URL or a path (it must not start with "
                            "'-', which git would read as an option)" % v.quoted(
                                redact(self.repository)))
        if self.repository.startswith("ext::"):
            raise self.fail("repository %s uses git's ext:: transport, which runs a command; "
                            "give a URL or a path" % v.quoted(redact(self.repository)))
        self.revision = v.text(self.revision, "revision", one_line=True)
        if not self.revision or BAD_REVISION.search(self.revision):
            raise self.fail("revision %s is not a branch, tag or commit id git accepts (no "
                            "leading '-', spaces, '..', '~', '^', ':' or control characters)"
                            % v.quoted(self.revision))

    def _git(self, system: Any) -> Runner:
        return Runner(system, self.destination, self.user, self.group)

    # -- target ----------------------------------------------------------------------

    def current(self, system: Any) -> Dict[str, Any]:
        st = system.stat(self.destination)
        state: Dict[str, Any] = {"exists": st is not None, "checkout": False}
        if st is not None and system.readlink(self.destination) is not None:
            raise ResourceError("%s is a symbolic link; refusing to clone into or update "
                                "what it points to" % self.destination)
        if system.exists(self.destination + "/.git"):
            state["checkout"] = True
            state.update(self._git(system).state())
        elif st is not None and (not system.is_dir(self.destination)
                                 or system.listdir(self.destination)):
            raise ResourceError("%s exists and is not a git checkout (nor an empty directory)"
                                % self.destination, hint="move it away, or choose another "
                                "destination")
        if not state["checkout"] or self.action == "sync":
            state["remote"] = self._git(system).remote(self.repository, self.revision)
        return state

    def changes(self, current: Dict[str, Any]) -> List[Change]:
        dest, repo = self.destination, redact(self.repository)
        if not current["checkout"]:
            sha = (current["remote"]["sha"] or "")[:7]
            return [Change("clone %s into %s at %s (%s)" % (repo, dest, self.revision, sha),
                           data="clone")]
        if self.action == "checkout":
            return []
        out: List[Change] = []
        if current["url"] != self.repository:
            out.append(Change("set origin of %s from %s to %s" % (
                dest, redact(current["url"] or "(none)"), repo), data="url"))
        remote = current["remote"]
        moved = not (current["head"] or "").startswith(remote["sha"]) or (
            remote["branch"] is not None and current["branch"] != remote["branch"])
        if moved and current["dirty"] and not self.force:
            raise ResourceError("%s has local changes to tracked files; nothing was changed"
                                % dest, hint="commit or discard them (git -C %s status), or "
                                "give force=True to discard them" % dest)
        if current["dirty"] and self.force:
            out.append(Change("discard local changes in %s" % dest, data="discard"))
        if moved:
            where = "branch %s" % remote["branch"] if remote["branch"] else self.revision
            old = (current["head"] or "(none)")[:7]
            if old == remote["sha"][:7]:
                out.append(Change("check out %s in %s" % (where, dest), data="move"))
            else:
                out.append(Change("update %s from %s to %s (%s)" % (
                    dest, old, remote["sha"][:7], where), data="move"))
        return out

    # -- journal and rollback -------------------------------------------------------------

    def before(self, system: Any, current: Dict[str, Any], changes: List[Change]
               ) -> Dict[str, Any]:
        """Journal hook: whether the run clones, else the commit HEAD was on."""
        kinds = {c.data for c in changes}
        if "discard" in kinds:
            return {"irreversible": "local changes in %s were discarded" % self.destination}
        base = {"destination": self.destination, "repository": self.repository,
                "user": self.user, "group": self.group}
        if "clone" in kinds:
            return dict(base, cloned=not current["exists"])
        return dict(base, head=current["head"], url=current["url"])

    @classmethod
    def undo(cls, before: Dict[str, Any], system: Any) -> List[Tuple[str, str, Dict[str, Any]]]:
        """Rollback: remove the clone (an empty directory that was there is made
        again); else back to the old origin and commit."""
        dest = before["destination"]
        if "cloned" in before:
            steps = [("directory", "delete", {"path": dest, "recursive": True})]
            if not before["cloned"]:
                steps.append(("directory", "create", {"path": dest}))
            return steps
        return [("git", "sync", {"destination": dest, "repository": before["url"] or
                                 before["repository"], "revision": before["head"],
                                 "user": before["user"], "group": before["group"]})]

    # -- acting --------------------------------------------------------------------------

    def apply(self, system: Any, changes: List[Change]) -> None:
        git = self._git(system)
        kinds = {c.data for c in changes}
        remote = git.remote(self.repository, self.revision)
        kind = remote["kind"]
        revision = remote["branch"] or self.revision
        if "clone" in kinds:
            git.clone(self.repository, revision, kind, self.depth)
        else:
            if "url" in kinds:
                git.run(["remote", "set-url", "origin", self.repository]
                        if self._has_origin(git) else
                        ["remote", "add", "origin", self.repository])
            if "move" in kinds or "discard" in kinds:
                git.fetch(revision, kind, self.depth)
                git.move(revision if kind != "sha" else remote["sha"], kind,
                         "discard" in kinds, self.depth)
        if self.enable_submodules:
            git.submodules()

    @staticmethod
    def _has_origin(git: Runner) -> bool:
        return git.out("remote") is not None and "origin" in (git.out("remote") or "").split()
