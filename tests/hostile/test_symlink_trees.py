"""Random trees of files, directories and symbolic links owned by root and by
alice (uid 1000), and a resource declared at a path among them: apply it, roll
it back, and check that nothing changed outside the declared path.

"The declared path" is computed here, independently of agent/paths.py, by
walking it as the security model says: a link is followed only when root owns
it and it sits in a directory only root can write, its target resolved inside
the root. The declared path may change where it leads (and the link met last,
which ``delete`` removes), along with the directories created for it and the
state directory; nothing else in the tree may change, and nothing at all in a
directory beside the tree that links point to.

Every link target is relative, or a host path inside the test's temporary
folder, and the tree sits four folders deep in it: code that resolved links as
the kernel does, out of the root, would still only reach the temporary folder,
never this machine's own files.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from typing import Dict, List, Optional, Set, Tuple

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from converge.agent import runs
from converge.agent.system import System
from converge.errors import ConvergeError
from converge.plan import Plan, Step
from converge.resources._base import REGISTRY
from tests.hostile.conftest import TRIED as tried

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="owning links as uid 1000 needs root")

ALICE = 1000
NAMES = ("a", "b", "etc")  # "etc" meets the root's own /etc
OUT = "@OUT"  # replaced by the host path of the directory beside the tree
TARGETS = ("etc", "etc/shadow", "../etc", "../etc/shadow", "../../etc/shadow", "a", "b/a",
           "..", "../..", "../../../../a", "nonexistent", OUT, OUT + "/a", OUT + "/a/keep")

path_st = st.lists(st.sampled_from(NAMES), min_size=1, max_size=3).map(lambda p: "/" + "/".join(p))
entry_st = st.tuples(
    path_st,
    st.sampled_from(["file", "dir", "link"]),
    st.sampled_from([0, ALICE]),
    st.sampled_from([0o755, 0o777, 0o1777, 0o700, 0o644]),
    st.sampled_from(TARGETS),
)
resource_st = st.one_of(
    st.tuples(st.just("file"), st.just("create"), st.fixed_dictionaries({
        "content": st.sampled_from(["new\n", ""]),
        "mode": st.sampled_from([None, "0644", "4755"]),
        "owner": st.sampled_from([None, "root", "alice"])})),
    st.tuples(st.just("file"), st.just("delete"), st.just({})),
    st.tuples(st.just("file"), st.just("create"), st.fixed_dictionaries({
        "mode": st.sampled_from(["0600", "0666"])})),
    st.tuples(st.just("file"), st.just("create"), st.fixed_dictionaries({
        "owner": st.just("alice")})),
    st.tuples(st.just("directory"), st.just("create"), st.fixed_dictionaries({
        "recursive": st.booleans(), "owner": st.sampled_from([None, "alice"])})),
    st.tuples(st.just("link"), st.just("create"), st.fixed_dictionaries({
        "to": st.sampled_from(["/etc/shadow", "../x"])})),
    st.tuples(st.just("line"), st.just("present"), st.fixed_dictionaries({
        "line": st.just("alice::0:0")})),
)


def build(root: str, out: str, entries: List[Tuple[str, str, int, int, str]]) -> None:
    assert all(t.count("..") <= 4 for t in TARGETS)  # never above the temporary folder
    os.makedirs(root + "/etc")
    with open(root + "/etc/passwd", "w") as fh:
        fh.write("root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n")
    with open(root + "/etc/group", "w") as fh:
        fh.write("root:x:0:\nalice:x:1000:\n")
    with open(root + "/etc/shadow", "w") as fh:
        fh.write("root:secret\n")
    os.chmod(root + "/etc/shadow", 0o640)
    os.makedirs(out + "/a")
    with open(out + "/a/keep", "w") as fh:
        fh.write("outside\n")
    for path, kind, owner, mode, target in entries:
        real = root + path
        parent = os.path.dirname(real)
        if not os.path.lexists(parent):
            try:
                os.makedirs(parent)  # root's, 0755
            except OSError:
                continue  # a file or a link on the way
        if os.path.lexists(real) or os.path.islink(parent) or not os.path.isdir(parent):
            continue
        if kind == "file":
            with open(real, "w") as fh:
                fh.write("old %s\n" % path)
            os.chmod(real, mode & 0o777)
        elif kind == "dir":
            os.mkdir(real)
            os.chmod(real, mode)
        else:
            os.symlink(target.replace(OUT, out), real)
        os.lchown(real, owner, owner)


def snapshot(top: str) -> Dict[str, tuple]:
    out: Dict[str, tuple] = {}
    for folder, dirs, files in os.walk(top):
        for name in dirs + files:
            path = os.path.join(folder, name)
            st_ = os.lstat(path)
            if stat.S_ISREG(st_.st_mode):
                with open(path, "rb") as fh:
                    data: object = fh.read()
            elif stat.S_ISLNK(st_.st_mode):
                data = os.readlink(path)
            else:
                data = None
            out[path] = (st_.st_mode, st_.st_uid, st_.st_gid, data)
    return out


def trusted(link: str) -> bool:
    parent = os.lstat(os.path.dirname(link))
    return os.lstat(link).st_uid == 0 and parent.st_uid == 0 and not parent.st_mode & 0o022


def allowed(root: str, declared: str) -> Set[str]:
    """The host paths a resource at ``declared`` may change: the model's walk."""
    out: Set[str] = set()
    stack = [p for p in reversed(declared.split("/")) if p]
    where: List[str] = []
    hops = 0
    while stack:
        name = stack.pop()
        if name == "..":
            where = where[:-1]
            continue
        real = root + "/" + "/".join(where + [name])
        last = not stack
        if last:
            out.add(real)  # the name itself (a link delete removes)
        if os.path.islink(real):
            hops += 1
            if not trusted(real) or hops > 40:
                return out
            target = os.readlink(real)
            if target.startswith("/"):
                where = []
            stack.extend(reversed([p for p in target.split("/") if p and p != "."]))
            continue
        if last:
            return out
        if not os.path.exists(real):  # created as a parent, with what follows
            out.add(real)
            for rest in range(len(stack)):
                out.add(real + "/" + "/".join(reversed(stack[rest:])))
            return out
        where.append(name)
    out.add(root + "/" + "/".join(where))
    return out


def changed(before: Dict[str, tuple], after: Dict[str, tuple]) -> Set[str]:
    return {p for p in set(before) | set(after) if before.get(p) != after.get(p)}


def alice_link(path: str, target: str) -> Tuple[str, str, int, int, str]:
    return (path, "link", ALICE, 0o777, target)


# The attacks of issue 12, always tried, besides what hypothesis generates:
@example(link=alice_link("/a", "etc/shadow"), entries=[], where="",
         resource=("file", "create", {"mode": "0666"}))  # item 2: a mode through a link
@example(link=alice_link("/a", "etc"), entries=[], where="/profile.d",
         resource=("file", "create", {"content": "x", "mode": None, "owner": "alice"}))  # 3
@example(link=alice_link("/a", "etc"), entries=[], where="/shadow",
         resource=("file", "delete", {}))  # item 3: a delete through a link
@settings(max_examples=max(settings().max_examples, 100))
@given(link=st.tuples(path_st, st.just("link"), st.sampled_from([0, ALICE]),
                      st.just(0o777), st.sampled_from(TARGETS)),
       entries=st.lists(entry_st, max_size=10),
       where=st.one_of(st.just(""), st.sampled_from(NAMES).map(lambda n: "/" + n), path_st),
       resource=resource_st)
def test_nothing_outside_the_declared_path_changes(link, entries, where, resource) -> None:
    # one link always planted first; the declared path is that link (where=""), a
    # name under it ("/a"), or another path of the tree ("/a/b")
    entries = [link] + entries
    declared = link[0] + where if where.count("/") <= 1 else where
    base = tempfile.mkdtemp(prefix="converge-tree-")
    try:
        root, out = base + "/1/2/3/4/root", base + "/outside"
        build(root, out, entries)
        may = allowed(root, declared)
        state = root + "/var/lib/converge"
        type_name, action, props = resource
        step: Optional[Step]
        try:
            obj = REGISTRY[type_name](declared, **props)
            obj.meta.action = action
            obj.check_action()
            step = Step.from_resource(obj)
        except ConvergeError:
            step = None
        if step is None:
            return
        before, outside = snapshot(root), snapshot(out)
        system = System(root, cwd="/")
        events = runs.apply_plan(system, Plan([step], "tree", {}))
        tried["symlink trees " + events[0]["status"]] += 1
        stray = {p for p in changed(before, snapshot(root)) - may
                 if not (p + "/").startswith(state + "/") and p + "/" != state + "/"
                 and not state.startswith(p + "/")}
        assert not stray, (events, sorted(stray))
        assert snapshot(out) == outside
        try:
            runs.rollback(System(root, cwd="/"), force=True, yes=True)
        except ConvergeError:
            pass  # nothing to roll back: the resource failed or changed nothing
        stray = {p for p in changed(before, snapshot(root)) - may
                 if not (p + "/").startswith(state + "/") and not state.startswith(p + "/")}
        assert not stray, ("rollback", events, sorted(stray))
        assert snapshot(out) == outside
    finally:
        shutil.rmtree(base)
