"""What a hostile inventory, a hostile target or a local user on a target can make
converge do, tried against real sshd in lab nodes (issue 12, items 10, 11, 15, 16):
an address that would become ssh options, terminal escapes in what a target says,
a fact that would steer a source= out of the cookbook, a damaged agent cache."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from converge.lab import Lab, Node
from tests.lab.test_ssh import converge, inventory, write

pytestmark = pytest.mark.lab

RECIPE = "from converge import file\nfile('/srv/trusted', content='x\\n')\n"


def proxy_config(tmp_path: Path, lab: Lab, node: Node) -> Path:
    """An OpenSSH config whose ProxyCommand hands %h to ssh, as many do: every host
    but the node itself is reached through the node (``localhost`` is then the
    node's own sshd)."""
    recorded = lab.known_hosts_path.read_text().splitlines()
    mine = [line for line in recorded if line.split()[0] == node.address]
    known = tmp_path / "known_hosts"
    known.write_text("".join("%s\n%s\n" % (line, line.replace(node.address, "localhost", 1))
                             for line in mine))
    config = tmp_path / "ssh_config"
    config.write_text(textwrap.dedent("""\
        Host {address}
          ProxyCommand none
        Host *
          User root
          IdentityFile {key}
          UserKnownHostsFile {known}
          ProxyCommand ssh -F {config} -o BatchMode=yes -W %h:%p root@{address}
        """).format(key=lab.key_path, known=known, config=config, address=node.address))
    return config


def test_an_address_with_ssh_options_runs_nothing_on_the_controller(
        lab: Lab, lab_node: Node, tmp_path: Path) -> None:
    """Issue 12 item 10: `%h` of a ProxyCommand was an address with a quoted
    -oProxyCommand in it, and the controller ran that command."""
    marks = tmp_path / "marks"
    marks.mkdir()
    config = proxy_config(tmp_path, lab, lab_node)
    recipe = write(tmp_path / "recipe.py", RECIPE)
    inv = tmp_path / "inventory.yml"
    inv.write_text(json.dumps({"ssh_config": str(config), "hosts": {"web1": {
        "address": "%s:22 \"-oProxyCommand=sh -c 'touch %s/owned'\""
                   % (lab_node.address, marks)}}}))
    done = converge(tmp_path, "apply", str(recipe), "-i", str(inv))
    assert list(marks.iterdir()) == []
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith("error: inventory.yml:1: host web1: address '%s:22 "
                                  % lab_node.address)
    assert "is not a host name, an IPv4 address or an IPv6 address" in done.stderr
    assert len(done.stderr.splitlines()) == 1
    assert lab_node.run(["test", "-e", "/srv/trusted"]).returncode == 1
    # the same config with a plain address goes through the ProxyCommand
    inv.write_text(json.dumps({"ssh_config": str(config),
                               "hosts": {"web1": {"address": "localhost"}}}))
    good = converge(tmp_path, "apply", str(recipe), "-i", str(inv))
    assert good.returncode == 0, good.stdout + good.stderr
    assert lab_node.read_file("/srv/trusted") == b"x\n"
    assert list(marks.iterdir()) == []


@pytest.mark.parametrize("line, message", [
    pytest.param("  HostName %h -oProxyCommand=id", "HostName: address", id="hostname"),
    pytest.param("  User root -oProxyCommand=id", "User: user", id="user"),
])
def test_the_openssh_config_is_checked_too(lab: Lab, lab_node: Node, tmp_path: Path,
                                           line: str, message: str) -> None:
    config = proxy_config(tmp_path, lab, lab_node)
    config.write_text("Host web1\n%s\n" % line + config.read_text())
    inv = tmp_path / "inventory.yml"
    inv.write_text(json.dumps({"ssh_config": str(config), "hosts": {"web1": {}}}))
    done = converge(tmp_path, "apply", str(write(tmp_path / "recipe.py", RECIPE)), "-i",
                    str(inv))
    assert done.returncode == 1
    assert done.stderr.startswith("error: web1: ssh config %s, Host web1, %s" % (config, message))
    assert len(done.stderr.splitlines()) == 1


def test_a_broken_proxycommand_is_one_line_not_a_traceback(lab: Lab, lab_node: Node,
                                                           tmp_path: Path) -> None:
    """A stray quote in a ProxyCommand: paramiko's shlex raised a ValueError that
    came out as a 60-line traceback."""
    config = proxy_config(tmp_path, lab, lab_node)
    config.write_text(config.read_text().replace("-W %h:%p", "-W '%h:%p"))
    inv = tmp_path / "inventory.yml"
    inv.write_text(json.dumps({"ssh_config": str(config),
                               "hosts": {"web1": {"address": "localhost"}}}))
    done = converge(tmp_path, "apply", str(write(tmp_path / "recipe.py", RECIPE)), "-i",
                    str(inv))
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    assert "  ! unreachable: cannot connect to root@localhost:22: No closing quotation " \
        "(ProxyCommand ssh " in done.stdout


# -- terminal escapes from a target (item 11) --------------------------------------

ESCAPES = "\x1b]0;owned\x07\x1b[2J\x9b31m"
SHOWN = "\\x1b]0;owned\\x07\\x1b[2J\\x9b31m"


def start_background(node: Node, script: str, ready: str) -> None:
    """Run a python3 script in the node in the background; it creates ``ready``
    once it is in place, and this returns then."""
    done = node.run(["sh", "-c", 'setsid python3 -c "$1" >/dev/null 2>&1 &', "sh", script])
    assert done.returncode == 0, done.stderr
    for _ in range(500):
        if node.run(["test", "-e", ready]).returncode == 0:
            return
    raise AssertionError("the background process in %s did not start" % node.name)


def test_a_process_title_in_history_is_escaped(lab: Lab, lab_node: Node, tmp_path: Path) -> None:
    """A process title (anyone can write one) shown in an oom_protect change, then
    by `converge history`, reached the terminal raw."""
    # its title (argv[0]) is ESCAPES + "marker-title"
    start_background(lab_node, "import os; os.execvp('python3', [%r, '-c', "
                     "'import time; open(\"/tmp/titled\", \"w\").close(); time.sleep(600)'])"
                     % (ESCAPES + "marker-title"), "/tmp/titled")
    recipe = write(tmp_path / "recipe.py", """\
        from converge import oom_protect
        oom_protect("titled", pattern="[m]arker-title", score_adj=500, persist=False)
        """)
    inv = inventory(tmp_path, lab, [lab_node])
    done = converge(tmp_path, "apply", str(recipe), "-i", str(inv))
    assert done.returncode == 0, done.stdout + done.stderr
    assert SHOWN in done.stdout
    history = converge(tmp_path, "history", "-i", str(inv))
    assert history.returncode == 0, history.stdout + history.stderr
    assert SHOWN in history.stdout
    for out in (done, history):
        assert "\x1b" not in out.stdout + out.stderr
        assert "\x9b" not in out.stdout + out.stderr
        assert "\x07" not in out.stdout + out.stderr


def test_a_lock_holder_with_escapes_is_shown_escaped(lab: Lab, lab_node: Node,
                                                     tmp_path: Path) -> None:
    """The run lock's pid and start time, read from the target, reached the
    operator's terminal raw in the "waiting" notice and in the host's error."""
    lab_node.write_file("/var/lib/converge/lock", json.dumps(
        {"pid": ESCAPES, "started": ESCAPES}).encode(), 0o600)
    start_background(lab_node, "import fcntl, os, time\n"
                     "fd = os.open('/var/lib/converge/lock', os.O_RDWR)\n"
                     "fcntl.flock(fd, fcntl.LOCK_EX)\n"
                     "open('/tmp/locked', 'w').close()\n"
                     "time.sleep(600)\n", "/tmp/locked")
    recipe = write(tmp_path / "recipe.py", RECIPE)
    inv = inventory(tmp_path, lab, [lab_node])
    done = converge(tmp_path, "apply", str(recipe), "-i", str(inv), "--lock-timeout", "0.5")
    assert done.returncode == 1
    assert "waiting for the converge run of pid %s (started %s)" % (SHOWN, SHOWN) \
        in done.stderr
    assert "  ! failed: another converge run is changing this machine: pid %s, started %s" \
        % (SHOWN, SHOWN) in done.stdout
    assert "\x1b" not in done.stdout + done.stderr
    assert "\x9b" not in done.stdout + done.stderr
    assert "\x07" not in done.stdout + done.stderr


# -- a fact that steers a source (item 15) -----------------------------------------


def test_a_target_s_facts_cannot_ship_a_controller_file(lab: Lab, lab_node: Node,
                                                        tmp_path: Path) -> None:
    """/etc/os-release on the target says ID=../../..: with
    source="motd/%s" % node.platform, a file of the controller went to the target."""
    secret = tmp_path / "secret"
    secret.write_text("the controller's secret\n")
    book = tmp_path / "book"
    (book / "files" / "motd").mkdir(parents=True)
    (book / "files" / "motd" / "debian").write_text("Debian motd\n")
    recipe = write(book / "recipe.py", """\
        from converge import file, node
        file("/etc/motd", source="motd/%s" % node.platform)
        """)
    climb = "../" * len((book / "files" / "motd").parts) + str(secret).lstrip("/")
    lab_node.write_file("/etc/os-release", ('ID="%s"\n' % climb).encode())
    inv = inventory(tmp_path, lab, [lab_node])
    done = converge(tmp_path, "apply", str(recipe), "-i", str(inv))
    assert done.returncode == 1
    assert "secret" not in lab_node.read_file("/etc/motd").decode("utf-8", "replace")
    assert done.stderr.splitlines()[0] == (
        "error: book/recipe.py:2: %s: file[/etc/motd]: source 'motd/%s' is %s, outside the "
        "folders sources come from (book)" % (lab_node.name, climb, secret))
    assert "the controller's secret" not in done.stdout + done.stderr
    # a target that says what it is gets its file
    lab_node.write_file("/etc/os-release", b'ID=debian\n')
    good = converge(tmp_path, "apply", str(recipe), "-i", str(inv))
    assert good.returncode == 0, good.stdout + good.stderr
    assert lab_node.read_file("/etc/motd") == b"Debian motd\n"


# -- the cached agent (item 16) ------------------------------------------------------


def cache_of(node: Node) -> str:
    from converge.transport import bundle

    return "/var/lib/converge/agent/agent-%s" % bundle.build()[1]


def test_a_damaged_agent_cache_is_replaced(lab: Lab, lab_node: Node, tmp_path: Path) -> None:
    recipe = write(tmp_path / "recipe.py", RECIPE)
    inv = inventory(tmp_path, lab, [lab_node])
    first = converge(tmp_path, "apply", str(recipe), "-i", str(inv))
    assert first.returncode == 0, first.stdout + first.stderr
    engine = cache_of(lab_node) + "/converge/agent/engine.py"
    original = lab_node.read_file(engine)
    lab_node.write_file(engine, b"raise SystemExit('damaged')\n", 0o644)
    again = converge(tmp_path, "apply", str(recipe), "-i", str(inv))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "%s: the cached agent did not match its hash: replaced" % lab_node.name \
        in again.stderr
    assert "(up to date)" in again.stdout
    assert lab_node.read_file(engine) == original


def test_an_agent_cache_a_local_user_can_write_runs_nothing(lab: Lab, lab_node: Node,
                                                            tmp_path: Path) -> None:
    """The cache folder made world-writable (a mistake): alice swaps the cached
    agent for her own. It used to run, as root; now the cache is refused."""
    from tests.lab.test_ssh import add_user

    recipe = write(tmp_path / "recipe.py", RECIPE)
    inv = inventory(tmp_path, lab, [lab_node])
    first = converge(tmp_path, "apply", str(recipe), "-i", str(inv))
    assert first.returncode == 0, first.stdout + first.stderr
    add_user(lab_node, lab, "alice")
    lab_node.run(["chmod", "0777", "/var/lib/converge/agent"]).check_returncode()
    cache = cache_of(lab_node)
    planted = lab_node.run([
        "su", "alice", "-c",
        'mv "$0" "$0.old" && mkdir -p "$0/converge/agent" && : > "$0/converge/__init__.py" '
        '&& : > "$0/converge/agent/__init__.py" && printf "$1" > "$0/converge/agent/remote.py"',
        cache, 'open("/tmp/owned", "w")\ndef main(r, o): return 0\n'])
    assert planted.returncode == 0, planted.stderr
    done = converge(tmp_path, "apply", str(recipe), "-i", str(inv))
    assert done.returncode == 1
    assert lab_node.run(["test", "-e", "/tmp/owned"]).returncode == 1
    assert "! failed: agent: the agent cache is writable by another user: " \
        "/var/lib/converge/agent (owner 0, mode 0777); converge runs no code from it" \
        in done.stdout
