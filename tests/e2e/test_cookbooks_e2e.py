"""Every cookbook and example, converged in a lab node as the docs show it: the
first run converges, the second is all up to date. Real packages (sysstat, chrony,
dstat) are mirrored into the lab's offline repository first, as `converge test`
does."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from converge.lab.idempotence import (
    WORKDIR,
    apply_in_node,
    assert_idempotent,
    check_idempotence,
    mirror_for,
    place_recipe,
    recipe_packages,
)
from tests.e2e.test_apt_repository_e2e import built

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parent.parent.parent


def has_cap_sys_resource() -> bool:
    """Whether this process (root, and so lab nodes) has CAP_SYS_RESOURCE (bit 24)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> 24 & 1)
    return False


# The documented override where root lacks CAP_SYS_RESOURCE (cookbooks/oom_guard/README.md).
NO_CAP = [] if has_cap_sys_resource() else ["-a", "oom_guard.sshd_score_adj=0"]


# The overrides each cookbook's README shows (the defaults: test_converge_test_passes_...).
@pytest.mark.parametrize("cookbook, args", [
    pytest.param("hello", ["-a", "hello.path=/tmp/hello.txt", "-a", "hello.content=Hi"],
                 id="hello"),
    pytest.param("oom_guard", NO_CAP + ["-a", "oom_guard.panic_on_oom=1"], id="oom_guard"),
    pytest.param("sysstat", ["-a", "sysstat.interval=5", "-a", "sysstat.history=7"],
                 id="sysstat"),
])
def test_cookbook_with_its_documented_overrides(cookbook: str, args: list, lab, lab_node
                                                ) -> None:
    path = REPO / "cookbooks" / cookbook
    readme = (path / "README.md").read_text()
    assert " ".join(a for a in args if a not in NO_CAP).replace("-a ", "") in \
        readme.replace("-a ", "").replace('"', ""), "not the README's overrides"
    mirror_for(lab, recipe_packages(path, args))
    result = assert_idempotent(lab_node, path, args)
    assert result.first.with_status("updated"), result.describe()
    if cookbook == "hello":
        assert lab_node.read_file("/tmp/hello.txt") == b"Hi"
    if cookbook == "sysstat":
        assert b"*/5 * * * * root" in lab_node.read_file("/etc/cron.d/sysstat-converge")
        assert b"HISTORY=7\n" in lab_node.read_file("/etc/sysstat/sysstat")
    if cookbook == "oom_guard":
        assert lab_node.read_file("/proc/sys/vm/panic_on_oom") == b"1\n"


def converge_test(lab, *args: str) -> subprocess.CompletedProcess:
    """`converge test ARGS` from the repository root, as the docs show it (the session
    lab's repository shared, so packages are mirrored once)."""
    env = {**os.environ, "CONVERGE_LAB_DIR": str(lab.directory)}
    return subprocess.run([sys.executable, "-m", "converge", "test", *args], cwd=REPO,
                          capture_output=True, text=True, env=env, timeout=900)


@pytest.mark.parametrize("cookbook", ["hello", "sysstat", "web_hardening", "oom_guard"])
def test_converge_test_passes_each_cookbook_with_its_defaults(cookbook: str, lab) -> None:
    done = converge_test(lab, f"cookbooks/{cookbook}")
    output = done.stdout + done.stderr
    if cookbook == "oom_guard" and not has_cap_sys_resource():
        # the documented refusal, then the documented override
        assert done.returncode == 1, output
        assert "the kernel refused oom_score_adj -1000" in output
        assert "needs CAP_SYS_RESOURCE" in output
        done = converge_test(lab, f"cookbooks/{cookbook}", "-a", "oom_guard.sshd_score_adj=0")
        output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "node1: idempotent: the second run changed nothing" in output
    if cookbook == "hello":
        assert "* file[file.txt] action create (up to date)" in output


def test_converge_test_of_chrony_says_a_node_cannot_run_chronyd(lab) -> None:
    """chronyd dies at start in a node (no CAP_SYS_TIME) while its init script exits 0:
    the test fails, saying so, instead of blessing a dead daemon."""
    done = converge_test(lab, "cookbooks/chrony")
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "node1: service[chrony] is not running after the runs (`service chrony status`: " \
        in output
    assert ("node1: service[chrony]: a lab node cannot give chrony what it needs: it sets the "
            "system clock, which needs CAP_SYS_TIME, and lab nodes do not have it") in output
    readme = (REPO / "cookbooks/chrony/README.md").read_text()
    assert "Not testable in a lab node" in readme and "CAP_SYS_TIME" in readme


@pytest.mark.parametrize("example, args", [
    pytest.param("oom.py", ["-a", "score_adj=0"], id="oom"),
    pytest.param("sysstat.py", [], id="sysstat"),
])
def test_example_runs_as_documented(example: str, args: list, lab, lab_node) -> None:
    path = REPO / "examples" / example
    mirror_for(lab, recipe_packages(path))
    result = assert_idempotent(lab_node, path, args)
    assert result.first.ok and result.second.ok


def test_chrony_cookbook_fails_where_chronyd_cannot_run(lab, lab_node) -> None:
    """chronyd needs to set the clock (CAP_SYS_TIME), which no lab node can give it:
    Debian's init script prints 'chronyd failed!' and exits 0, and the service's
    restart fails with chronyd's own words instead of passing on that exit code."""
    path = REPO / "cookbooks" / "chrony"
    mirror_for(lab, recipe_packages(path))
    lab_node.run(["mkdir", "-p", WORKDIR])
    assert lab_node.run(["apt-get", "update", "-qq"], timeout=300).returncode == 0
    run = apply_in_node(lab_node, place_recipe(lab_node, path), WORKDIR + "/chrony.json",
                        ["-a", "chrony.servers=[ntp1.example.net]"])
    assert run.returncode == 1, run.stdout + run.stderr
    assert b"server ntp1.example.net iburst minpoll 6 maxpoll 10\n" in lab_node.read_file(
        "/etc/chrony/chrony.conf")
    failed = run.with_status("failed")
    assert [r["id"] for r in failed] == ["service[chrony]"], run.stdout
    error = failed[0]["error"]
    assert error.startswith("chrony did not start: `service chrony start` exited 0, but its "
                            "status command exited"), error
    assert "chronyd failed!" in error and "Operation not permitted" in error, error


README_REFUSAL = ("the kernel refused oom_score_adj -1000 for pid 1 (sshd: /usr/sbin/sshd -D -e "
                  "[listener] 0 of 10-100 startups) (Permission denied, EACCES): setting it "
                  "below a process's oom_score_adj_min (normally 0) needs CAP_SYS_RESOURCE")


def test_the_readme_recipes_in_a_node(lab, lab_node, tmp_path: Path) -> None:
    """The README's first recipe converges as written, and its OOM recipe
    (examples/oom.py) with its defaults: everything converges; its
    oom_protect(-1000) needs CAP_SYS_RESOURCE, and where root lacks it the run says
    exactly that."""
    block = re.search(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    assert block, "README.md lost its recipe"
    first = tmp_path / "first.py"
    first.write_text(block.group(1))
    assert check_idempotence(lab_node, first).ok
    recipe = tmp_path / "recipe.py"
    recipe.write_text((REPO / "examples/oom.py").read_text())
    mirror_for(lab, recipe_packages(recipe))
    result = check_idempotence(lab_node, recipe)
    oom = "oom_protect[sshd]"
    if has_cap_sys_resource():
        assert result.ok, result.describe()
    else:
        failed = [res for res in result.first.resources() if res["status"] == "failed"]
        assert [res["id"] for res in failed] == [oom], result.describe()
        assert "oom_score_adj -1000 for pid 1 (sshd: /usr/sbin/sshd" in failed[0]["error"]
        assert "needs CAP_SYS_RESOURCE" in failed[0]["error"]
        second = {res["id"]: res["status"] for res in result.second.resources()}
        assert second == {"sysctl[vm.panic_on_oom]": "up_to_date", oom: "failed",
                          "package[dstat]": "up_to_date"}
    assert lab_node.read_file("/proc/sys/vm/panic_on_oom") == b"0\n"
    assert lab_node.run(["dpkg-query", "-W", "dstat"]).returncode == 0


# A site over HTTPS with a certificate made here, for each server.
CERT = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-days", "1", "-subj", "/CN=lab.test", "-keyout", "/etc/ssl/private/lab.key",
        "-out", "/etc/ssl/certs/lab.pem"]
NGINX_SITE = """server {
    listen 443 ssl default_server;
    ssl_certificate /etc/ssl/certs/lab.pem;
    ssl_certificate_key /etc/ssl/private/lab.key;
    root /var/www/html;
}
"""
APACHE_SITE = """<VirtualHost *:443>
    ServerName lab.test
    SSLEngine on
    SSLCertificateFile /etc/ssl/certs/lab.pem
    SSLCertificateKeyFile /etc/ssl/private/lab.key
    DocumentRoot /var/www/html
</VirtualHost>
"""


def run_ok(node, *argv: str) -> str:
    done = node.run(list(argv), timeout=300)
    assert done.returncode == 0, f"{argv}: {done.stdout}{done.stderr}"
    return done.stdout + done.stderr


def https_headers(node) -> dict[str, str]:
    """The response's headers (names in lower case) to a GET over HTTPS; the page is 200."""
    text = run_ok(node, "curl", "-sk", "--max-time", "20", "-D", "-", "-o", "/dev/null",
                  "https://127.0.0.1/")
    status, *lines = text.strip().splitlines()
    assert status.split()[1] == "200", text
    return {name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines)}


@pytest.mark.parametrize("server, args, hsts", [
    pytest.param("nginx", [], "max-age=31536000; includeSubDomains", id="nginx-defaults"),
    pytest.param("apache2", ["-a", "web_hardening.hsts_preload=true"],
                 "max-age=31536000; includeSubDomains; preload", id="apache2-preload"),
])
def test_web_hardening_against_the_real_server(server: str, args: list, hsts: str, lab,
                                               lab_node) -> None:
    """The real nginx or apache2 (mirrored into the lab) serving HTTPS: after the
    cookbook, the response carries the configured Strict-Transport-Security, and the
    server's own configuration test passes."""
    node = lab_node
    mirror_for(lab, [server])
    run_ok(node, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-qq",
           "--no-install-recommends", server)
    run_ok(node, *CERT)
    node.write_file("/var/www/html/index.html", b"hello over https\n")
    if server == "nginx":
        node.write_file("/etc/nginx/sites-enabled/lab-ssl", NGINX_SITE.encode())
        run_ok(node, "nginx")
        check = ["nginx", "-t"]
    else:
        node.write_file("/etc/apache2/sites-available/lab-ssl.conf", APACHE_SITE.encode())
        run_ok(node, "a2enmod", "-q", "ssl")
        run_ok(node, "a2ensite", "-q", "lab-ssl")
        run_ok(node, "apache2ctl", "start")
        check = ["apache2ctl", "configtest"]
    assert "strict-transport-security" not in https_headers(node)

    result = assert_idempotent(node, REPO / "cookbooks" / "web_hardening", args)
    updated = {res["id"] for res in result.first.with_status("updated")}
    assert f"service[{server}]" in updated, result.describe()  # reloaded, once
    assert "Syntax OK" in run_ok(node, *check) or "test is successful" in run_ok(node, *check)
    headers = https_headers(node)
    assert headers.get("strict-transport-security") == hsts, headers
    assert headers.get("x-content-type-options") == "nosniff", headers


# -- cookbooks/base ------------------------------------------------------------------

VARYING = [(re.compile(r"\(\d+\.\d+\.\d+\.\d+\)"), "(ADDRESS)"),
           (re.compile(r" in \d+\.\d+s$", re.M), " in Ns"),
           # the zone lab nodes start with is the machine's own
           (re.compile(r"(/etc/localtime was |/etc/timezone from )\S+?(\)|$| to)", re.M),
            r"\1ZONE\2")]


def tutorial_transcript(command: str) -> str:
    """The output docs/tutorial.md shows under `$ COMMAND` (its indented block)."""
    lines = (REPO / "docs/tutorial.md").read_text().splitlines()
    start = lines.index("    $ " + command) + 1
    end = next(i for i in range(start, len(lines)) if not lines[i].startswith("    "))
    return "".join(line[4:] + "\n" for line in lines[start:end])


def normal(text: str) -> str:
    for pattern, replacement in VARYING:
        text = pattern.sub(replacement, text)
    return text


def test_converge_test_of_base_prints_what_the_tutorial_shows(lab) -> None:
    """cookbooks/base with its defaults passes `converge test`, and its output is
    the tutorial's transcript (address, durations and the starting zone aside)."""
    done = converge_test(lab, "cookbooks/base")
    assert done.returncode == 0, done.stdout + done.stderr
    assert normal(done.stdout + done.stderr) == normal(
        tutorial_transcript("converge test cookbooks/base"))


def test_base_with_a_user_key_and_overrides(lab, lab_node, tmp_path: Path) -> None:
    """The README's overrides and an administrator with a real key: the account in
    sudo, the key logs in over the node's real sshd, the scratch tmpfs mounted with
    the size asked and in fstab, the zone, the name, the unit enabled; the second
    run changes nothing."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "alice@laptop",
                    "-f", str(tmp_path / "alice")], check=True, capture_output=True)
    key = (tmp_path / "alice.pub").read_text().strip()
    readme = (REPO / "cookbooks/base/README.md").read_text()
    overrides = ["-a", "base.timezone=Europe/Paris", "-a", "base.scratch.size=1g"]
    assert " ".join(overrides) in readme
    armored = built(lab_node)  # a flat repository in the node, signed by a key of its own
    args = overrides + ["-a", "base.hostname=web1.example.com",
                        "-a", "base.users=[{name: alice, comment: Alice, keys: [%s]}]" % key,
                        "-a", "base.apt_repositories=[{name: local, uri: 'file:///srv/repo', "
                        "distribution: ./, components: [], key: %s}]" % json.dumps(armored)]
    result = assert_idempotent(lab_node, REPO / "cookbooks/base", args)
    assert result.first.with_status("updated"), result.describe()

    def sh(script: str) -> str:
        done = lab_node.run(["sh", "-c", script])
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "sudo" in sh("id -nG alice").split()
    assert "Signed-By: /etc/apt/keyrings/local.gpg" in sh(
        "cat /etc/apt/sources.list.d/local.sources")
    assert "file:/srv/repo ./ Packages" in sh("apt-cache policy tinypkg")  # updated, trusted
    assert sh("cat /home/alice/.ssh/authorized_keys") == key + "\n"
    assert sh("stat -c '%a %U' /home/alice/.ssh /home/alice/.ssh/authorized_keys") == \
        "700 alice\n600 alice\n"
    assert "size=1048576k" in sh("findmnt -n -o OPTIONS /srv/scratch")
    assert "tmpfs /srv/scratch tmpfs size=1g,mode=1777,nosuid,nodev 0 0\n" in \
        sh("cat /etc/fstab")
    assert sh("readlink /etc/localtime") == "/usr/share/zoneinfo/Europe/Paris\n"
    assert sh("hostname") == "web1.example.com\n"
    assert sh("readlink /etc/systemd/system/multi-user.target.wants/base-heartbeat.service") \
        == "/etc/systemd/system/base-heartbeat.service\n"
    # the key logs in as alice (sshd without PAM refuses an account whose password
    # is locked, as useradd leaves it: '*' is "no password", not locked)
    sh("usermod -p '*' alice")
    argv = [a.replace(str(lab.key_path), str(tmp_path / "alice")).replace("root@", "alice@")
            for a in lab.ssh_command(lab_node, ["id", "-un"])]
    login = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert (login.returncode, login.stdout) == (0, "alice\n"), login.stderr
