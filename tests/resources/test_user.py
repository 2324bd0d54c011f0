"""user and group under a temporary root: what plan says from the passwd, shadow and
group files, what is refused at compile time, the rollback steps, and the home
made from /etc/skel. Applying needs the real shadow tools: tests/e2e/test_accounts_e2e.py
runs them in lab nodes (under --root, apply is refused)."""

from __future__ import annotations

import os
from typing import Any, List, Tuple

import pytest

from converge.agent.system import System
from converge.errors import PropertyError
from converge.resources._skel import copy_skel, default_home, home_mode
from converge.resources.group import Group
from converge.resources.user import User
from tests.conftest import Converger

HASH = ("$6$salt$Fz0oQxN6vHq1N0y8fYVQ0D3bTnCYp2mXxWhR7Hk8h1t6P2b0m4e2"
        "bJtJ0Zb5y9s3k1q7r8uCgEoL4dPpQ1xAa0")
PASSWD = ("root:x:0:0:root:/root:/bin/sh\n"
          "deploy:x:1001:1001:Deploy:/home/deploy:/bin/sh\n"
          "svc:x:998:998::/nonexistent:\n")
SHADOW = ("root:*:19000:0:99999:7:::\n"
          "deploy:!%s:19000:0:99999:7::21945:\n"
          "svc:!:19000::::::\n") % HASH
GROUP = ("root:x:0:\nsudo:x:27:deploy\nadm:x:4:deploy,svc\ndeploy:x:1001:\nsvc:x:998:\n"
         "app:x:2500:\n")


@pytest.fixture
def accounts(converger: Converger) -> Converger:
    converger.path("/etc/passwd").write_text(PASSWD)
    converger.path("/etc/shadow").write_text(SHADOW)
    converger.path("/etc/group").write_text(GROUP)
    converger.path("/home/deploy").mkdir(parents=True)
    return converger


def plan(converger: Converger, line: str) -> Tuple[str, List[str], Any]:
    event = converger.run("from converge import group, user\n" + line + "\n", mode="plan")[0]
    return event["status"], event["changes"], event["error"] or event["warnings"]


@pytest.mark.parametrize("line, status, lines", [
    pytest.param('user("deploy")', "up_to_date", [], id="nothing-declared"),
    pytest.param('user("deploy", uid=1001, gid="deploy", home="/home/deploy", shell="/bin/sh", '
                 'comment="Deploy", groups=["sudo", "adm"], expire_date="2030-01-31", '
                 'password="%s")' % HASH, "up_to_date", [], id="all-as-declared"),
    pytest.param('user("deploy", password="%s")' % HASH, "up_to_date", [],
                 id="a-locked-hash-is-the-same-hash"),
    pytest.param('user("deploy", shell="/bin/bash", comment="Deploy, room 1", uid=1500, '
                 'gid=2500)', "updated", [
                     "alter user deploy: uid from 1001 to 1500",
                     "alter user deploy: gid from 1001 (deploy) to 2500 (app)",
                     "alter user deploy: shell from '/bin/sh' to '/bin/bash'",
                     "alter user deploy: comment from 'Deploy' to 'Deploy, room 1'"],
                 id="fields"),
    pytest.param('user("deploy", groups=["sudo"])', "up_to_date", [], id="append-keeps-others"),
    pytest.param('user("deploy", groups=["sudo"], append=False)', "updated",
                 ["alter user deploy: remove from groups adm"], id="exact"),
    pytest.param('user("deploy", groups=[], append=False)', "updated",
                 ["alter user deploy: remove from groups adm, sudo"], id="exact-empty"),
    pytest.param('user("deploy", groups=["app", "sudo"])', "updated",
                 ["alter user deploy: add to groups app"], id="append-adds"),
    pytest.param('user("deploy", home="/srv/deploy", manage_home=True)', "updated",
                 ["alter user deploy: home from /home/deploy to /srv/deploy (moving its "
                  "contents)"], id="home-moves"),
    pytest.param('user("deploy", home="/srv/deploy")', "updated",
                 ["alter user deploy: home from /home/deploy to /srv/deploy"],
                 id="home-not-managed-not-moved"),
    pytest.param('user("svc", manage_home=True)', "updated",
                 ["alter user svc: create home /nonexistent from /etc/skel"], id="home-made"),
    pytest.param('user("deploy", password="$y$j9T$abc$def")', "updated",
                 ["alter user deploy: password (sensitive)"], id="password"),
    pytest.param('user("deploy", expire_date="never")', "updated",
                 ["alter user deploy: expire_date from 2030-01-31 to never"], id="expire"),
    pytest.param('user("deploy", system=True)', "up_to_date", [], id="system-only-at-creation"),
    pytest.param('user("new", uid=1600, manage_home=True, groups=["sudo"])', "updated",
                 ["create user new (uid 1600, home /home/new from /etc/skel, groups sudo)"],
                 id="create"),
    pytest.param('user("new", action="remove")', "up_to_date", [], id="remove-absent"),
    pytest.param('user("deploy", action="remove", manage_home=True)', "updated",
                 ["remove user deploy and its home /home/deploy"], id="remove"),
    pytest.param('user("deploy", action="lock")', "up_to_date", [], id="already-locked"),
    pytest.param('user("deploy", action="unlock")', "updated", ["unlock user deploy"],
                 id="unlock"),
    pytest.param('user("root", action="lock")', "updated", ["lock user root"], id="lock"),
])
def test_user_plan_table(accounts: Converger, line: str, status: str, lines: List[str]) -> None:
    got = plan(accounts, line)
    assert got[:2] == (status, lines), got


@pytest.mark.parametrize("line, error", [
    pytest.param('user("svc", action="unlock")', "user svc has no password hash: unlocking "
                 "would leave a passwordless account", id="unlock-without-hash"),
    pytest.param('user("nobody", action="lock")', "user nobody does not exist, so it cannot "
                 "lock", id="lock-missing"),
    pytest.param('user("nobody", action="modify", shell="/bin/sh")', "user nobody does not "
                 "exist, so it cannot modify", id="modify-missing"),
    pytest.param('group("nogroup", action="modify", gid=5)', "group nogroup does not exist, so "
                 "it cannot be modified", id="group-modify-missing"),
])
def test_failures_in_plan(accounts: Converger, line: str, error: str) -> None:
    status, _, message = plan(accounts, line)
    assert status == "failed" and message.startswith(error), message


def test_missing_groups_and_members_are_warnings_in_plan_only(accounts: Converger) -> None:
    """An earlier resource may create them: plan warns; apply fails (lab tests)."""
    status, lines, warnings = plan(accounts, 'user("deploy", groups=["ops"])')
    assert (status, lines, warnings) == ("updated", ["alter user deploy: add to groups ops"],
                                         ["group ops does not exist yet"])
    status, lines, warnings = plan(accounts, 'group("app", members=["ghost"])')
    assert warnings == ["user ghost does not exist yet"]


@pytest.mark.parametrize("line, status, lines", [
    pytest.param('group("app", gid=2500)', "up_to_date", [], id="as-declared"),
    pytest.param('group("adm", members=["svc", "deploy"])', "up_to_date", [], id="same-members"),
    pytest.param('group("adm", members=["deploy"])', "updated",
                 ["alter group adm: remove members svc"], id="exact"),
    pytest.param('group("adm", members=["root"], append=True)', "updated",
                 ["alter group adm: add members root"], id="append"),
    pytest.param('group("adm", members=[])', "updated",
                 ["alter group adm: remove members deploy, svc"], id="empty"),
    pytest.param('group("app", gid=2600)', "updated", ["alter group app: gid from 2500 to 2600"],
                 id="gid"),
    pytest.param('group("new", gid=3000, members=["deploy"], system=True)', "updated",
                 ["create group new (gid 3000, members deploy, system group)"], id="create"),
    pytest.param('group("app", action="remove")', "updated", ["remove group app"], id="remove"),
    pytest.param('group("nope", action="remove")', "up_to_date", [], id="remove-absent"),
])
def test_group_plan_table(accounts: Converger, line: str, status: str, lines: List[str]) -> None:
    assert plan(accounts, line)[:2] == (status, lines)


def test_apply_is_refused_under_a_root(accounts: Converger) -> None:
    events = accounts.run('from converge import group, user\nuser("deploy", shell="/bin/bash")\n'
                          'group("app", gid=2600)\n')
    assert [e["status"] for e in events] == ["failed", "failed"]
    assert events[0]["error"].startswith("cannot create user deploy under the root directory")
    assert "deploy:x:1001:1001:Deploy:/home/deploy:/bin/sh" in accounts.path(
        "/etc/passwd").read_text()


@pytest.mark.parametrize("kwargs, message", [
    pytest.param({"username": "1234"}, "username '1234' is not a valid name", id="numeric-name"),
    pytest.param({"username": "-rf"}, "username '-rf' is not a valid name", id="dash"),
    pytest.param({"username": "deploy", "groups": "sudo, adm"},
                 "groups entry 'sudo, adm' is not a valid name (a letter or '_' first, then "
                 "letters, digits, '_', '.' or '-'; at most 32 characters); give several names "
                 "as a list: ['sudo', 'adm']", id="comma-string"),
    pytest.param({"username": "deploy", "comment": "a:b"}, "comment 'a:b' contains ':'",
                 id="colon"),
    pytest.param({"username": "deploy", "shell": "bash"}, "shell 'bash' must be an absolute path",
                 id="relative-shell"),
    pytest.param({"username": "deploy", "uid": -1}, "uid -1 is out of range", id="uid"),
    pytest.param({"username": "deploy", "uid": 4294967295}, "uid 4294967295 is out of range",
                 id="uid-range"),
    pytest.param({"username": "deploy", "expire_date": "31/01/2030"},
                 "expire_date '31/01/2030' is not a date", id="expire"),
    pytest.param({"username": "deploy", "password": ""}, "password is empty", id="empty-password"),
    pytest.param({"username": "deploy", "password": "$ecret$Passw0rd"},
                 "password is not a crypt hash (its value is not shown)", id="dollar-text"),
    pytest.param({"username": "deploy", "password": "$6$nosalt"},
                 "password is not a crypt hash (its value is not shown)", id="no-hash-part"),
    pytest.param({"username": "deploy", "password": "$6$salt$abc\n"},
                 "password is not a crypt hash (its value is not shown)", id="hash-newline"),
])
def test_user_refused_at_construction(kwargs: Any, message: str) -> None:
    with pytest.raises(PropertyError) as info:
        User(**kwargs)
    assert message in info.value.message


def test_a_clear_text_password_is_refused_and_never_echoed() -> None:
    with pytest.raises(PropertyError) as info:
        User("deploy", password="hunter2-Secret")
    assert "hunter2" not in str(info.value)
    assert "openssl passwd -6" in info.value.message


@pytest.mark.parametrize("value", ["!", "*", "!!", "*LK*", HASH, "!" + HASH,
                                   "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o.9agCG9G317fhZg",
                                   "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW"])
def test_hashes_and_no_hash_markers_are_accepted(value: str) -> None:
    """Ansible #65711: '*' and '!' are valid password fields, not clear text."""
    assert User("deploy", password=value).password == value


def test_group_refused_at_construction() -> None:
    with pytest.raises(PropertyError, match="members entry 'a b' is not a valid name"):
        Group("app", members=["a b"])
    with pytest.raises(PropertyError, match="gid 'x' is not a number"):
        Group("app", gid="x")


def test_undo_steps() -> None:
    assert User.undo({"username": "u", "created": True, "home_created": True}, None) == [
        ("user", "remove", {"username": "u", "manage_home": True})]
    assert User.undo({"username": "u", "undo": "unlock"}, None) == [
        ("user", "unlock", {"username": "u"})]
    assert Group.undo({"group_name": "g", "created": True}, None) == [
        ("group", "remove", {"group_name": "g"})]
    assert Group.undo({"group_name": "g", "gid": 5, "members": ["a"], "removed": True}, None) == [
        ("group", "create", {"group_name": "g", "gid": 5, "members": ["a"]})]


def test_undo_of_a_modify_drops_groups_gone_since(accounts: Converger) -> None:
    before = {"username": "deploy", "fields": {"shell": "/bin/sh"}, "moved": False,
              "groups": ["sudo", "made-by-that-run"]}
    assert User.undo(before, accounts.system) == [("user", "modify", {
        "username": "deploy", "shell": "/bin/sh", "manage_home": False, "groups": ["sudo"],
        "append": False})]


def test_a_password_makes_the_resource_sensitive(accounts: Converger) -> None:
    step = accounts.compile('from converge import user\nuser("deploy", password="%s")\n'
                            % HASH).steps[0]
    assert step.sensitive


class Recording(System):
    """A rooted System that records writes and chowns, in order."""

    def __init__(self, root: str) -> None:
        super().__init__(root, cwd="/")
        self.calls: List[Tuple[str, str]] = []

    def write_atomic(self, path: str, data: bytes, *args: Any, **kwargs: Any) -> None:
        self.calls.append(("write", path))
        super().write_atomic(path, data, *args, **kwargs)

    def chown(self, path: str, uid: int = -1, gid: int = -1) -> None:
        self.calls.append(("chown", path))


def test_skel_copy_hands_the_tree_over_from_the_deepest_entry_up(tmp_path: Any) -> None:
    root = tmp_path / "root"
    (root / "etc/skel/.config/app").mkdir(parents=True)
    (root / "etc/skel/.bashrc").write_text("# bashrc\n")
    (root / "etc/skel/.config/app/rc").write_text("rc\n")
    os.symlink("/etc/passwd", root / "etc/skel/.link")
    (root / "etc/login.defs").write_text("UMASK 027\n")
    (root / "home").mkdir()
    system = Recording(str(root))
    copy_skel(system, "/home/u", 1000, 1000)
    assert (root / "home/u/.config/app/rc").read_text() == "rc\n"
    assert os.readlink(root / "home/u/.link") == "/etc/passwd"  # copied, not followed
    assert oct((root / "home/u").stat().st_mode & 0o777) == oct(0o750) == oct(home_mode(system))
    chowns = [p for kind, p in system.calls if kind == "chown"]
    writes = [i for i, (kind, _) in enumerate(system.calls) if kind == "write"]
    assert max(writes) < system.calls.index(("chown", chowns[0]))  # all written, then handed
    assert chowns[-1] == "/home/u"
    for number, path in enumerate(chowns):  # every entry before the folder that holds it
        assert not any(other.startswith(path + "/") for other in chowns[number + 1:]), path


def test_default_home(tmp_path: Any) -> None:
    system = System(str(tmp_path))
    assert default_home(system, "u") == "/home/u"
    (tmp_path / "etc/default").mkdir(parents=True)
    (tmp_path / "etc/default/useradd").write_text("HOME=/srv/homes\n")
    assert default_home(system, "u") == "/srv/homes/u"


def test_what_the_target_holds_is_shown_escaped(accounts: Converger) -> None:
    """A comment set by hand with a terminal escape is shown as text, not sent raw."""
    accounts.path("/etc/passwd").write_text(PASSWD.replace(":Deploy:", ":\x1b[2J\x1b]0;pwn\x07:"))
    _, lines, _ = plan(accounts, 'user("deploy", comment="Deploy")')
    assert lines == ["alter user deploy: comment from '\\x1b[2J\\x1b]0;pwn\\x07' to 'Deploy'"]
    assert "\x1b" not in lines[0]
