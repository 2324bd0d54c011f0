"""sysctl: a fake /proc/sys and /etc/sysctl.d under a temporary root."""

from __future__ import annotations

import os
import stat

import pytest

from converge.agent import runs
from converge.errors import PropertyError
from tests.conftest import Converger, statuses

PANIC = "/etc/sysctl.d/99-converge-vm.panic_on_oom.conf"
HEAD = "# Managed by converge: sysctl[vm.panic_on_oom]\n"


@pytest.fixture
def proc(converger: Converger) -> Converger:
    """A /proc/sys with a few parameters, as the kernel shows them."""
    values = {"vm/panic_on_oom": "0\n", "vm/swappiness": "60\n",
              "net/ipv4/ip_local_port_range": "32768\t60999\n",
              "net/ipv4/ip_forward": "0\n", "fs/file-nr": "1024\t0\t9223372036854775807\n",
              "net/ipv4/conf/eth0.100/rp_filter": "0\n"}
    for key, value in values.items():
        path = converger.path("/proc/sys/" + key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value)
    os.chmod(converger.path("/proc/sys/fs/file-nr"), 0o444)
    converger.path("/etc/sysctl.d").mkdir()
    return converger


def runtime(c: Converger, key: str) -> str:
    return c.path("/proc/sys/" + key).read_text()


@pytest.mark.parametrize(
    "files, recipe, lines, result",
    [
        pytest.param({}, 'sysctl("vm.panic_on_oom", 1)',
                     ["set vm.panic_on_oom from 0 to 1",
                      "persist vm.panic_on_oom = 1 in " + PANIC],
                     {PANIC: HEAD + "vm.panic_on_oom = 1\n"}, id="set-and-persist"),
        pytest.param({PANIC: HEAD + "vm.panic_on_oom = 0\n"}, 'sysctl("vm.panic_on_oom", "1")',
                     ["set vm.panic_on_oom from 0 to 1",
                      "persist vm.panic_on_oom = 1 in " + PANIC],
                     {PANIC: HEAD + "vm.panic_on_oom = 1\n"}, id="string-value-same-as-int"),
        pytest.param({}, 'sysctl("vm.panic_on_oom", 1, persist=False)',
                     ["set vm.panic_on_oom from 0 to 1"], {PANIC: None}, id="runtime-only"),
        pytest.param({}, 'sysctl("vm.panic_on_oom", 0)',
                     ["persist vm.panic_on_oom = 0 in " + PANIC],
                     {PANIC: HEAD + "vm.panic_on_oom = 0\n"}, id="runtime-ok-persist-missing"),
        pytest.param({}, 'sysctl("net.ipv4.ip_local_port_range", [32768, 60999], persist=False)',
                     [], {}, id="multi-value-compares-by-fields"),
        pytest.param({}, 'sysctl("net.ipv4.ip_local_port_range", "1024   65000", '
                     'conf_file="60-net.conf")',
                     ["set net.ipv4.ip_local_port_range from 32768 60999 to 1024 65000",
                      "persist net.ipv4.ip_local_port_range = 1024 65000 in "
                      "/etc/sysctl.d/60-net.conf"],
                     {"/etc/sysctl.d/60-net.conf": "net.ipv4.ip_local_port_range = 1024 65000\n"},
                     id="multi-value-set"),
        pytest.param({"/etc/sysctl.d/60-shared.conf": "# mine\nvm.swappiness=30\n"
                      "net.ipv4.ip_forward = 0\nnet.ipv4.ip_forward = 0\nkernel.x = 1"},
                     'sysctl("net.ipv4.ip_forward", 1, conf_file="60-shared.conf", '
                     'comment="router")',
                     ["set net.ipv4.ip_forward from 0 to 1",
                      "persist net.ipv4.ip_forward = 1 in /etc/sysctl.d/60-shared.conf"],
                     {"/etc/sysctl.d/60-shared.conf": "# mine\nvm.swappiness=30\n# router\n"
                      "net.ipv4.ip_forward = 1\nkernel.x = 1\n"}, id="shared-file-one-line"),
        pytest.param({"/etc/sysctl.conf": "vm.swappiness = 10\n"},
                     'sysctl("vm.swappiness", 10, conf_file="/etc/sysctl.conf")',
                     ["set vm.swappiness from 60 to 10"],
                     {"/etc/sysctl.conf": "vm.swappiness = 10\n"}, id="absolute-conf-file"),
        pytest.param({}, 'sysctl("net/ipv4/conf/eth0.100/rp_filter", 1, persist=False)',
                     ["set net.ipv4.conf.eth0/100.rp_filter from 0 to 1"], {},
                     id="slash-notation"),
        pytest.param({PANIC: HEAD + "vm.panic_on_oom = 1\n"},
                     'sysctl("vm.panic_on_oom", action="remove")',
                     ["remove vm.panic_on_oom from %s (the runtime value 0 is left as is)" % PANIC],
                     {PANIC: None}, id="remove-owned-file"),
        pytest.param({"/etc/sysctl.d/60-shared.conf": "vm.swappiness = 1\nvm.panic_on_oom = 1\n"},
                     'sysctl("vm.panic_on_oom", action="remove", conf_file="60-shared.conf")',
                     ["remove vm.panic_on_oom from /etc/sysctl.d/60-shared.conf "
                      "(the runtime value 0 is left as is)"],
                     {"/etc/sysctl.d/60-shared.conf": "vm.swappiness = 1\n"},
                     id="remove-from-shared-file"),
        pytest.param({}, 'sysctl("vm.panic_on_oom", action="remove")', [], {},
                     id="remove-nothing-persisted"),
    ],
)
def test_sysctl_table(proc: Converger, files, recipe, lines, result) -> None:
    for path, text in files.items():
        proc.path(path).write_text(text)
    events = proc.run("from converge import sysctl\n" + recipe + "\n")
    assert events[0]["error"] is None
    assert events[0]["changes"] == lines
    for path, text in result.items():
        assert (proc.path(path).read_text() if proc.path(path).exists() else None) == text
    second = proc.run("from converge import sysctl\n" + recipe + "\n")
    assert statuses(second) == ["up_to_date"]


def test_runtime_value_written(proc: Converger) -> None:
    proc.run('from converge import sysctl\nsysctl("vm.panic_on_oom", 1)\n'
             'sysctl("net.ipv4.ip_local_port_range", (1024, 65000), persist=False)\n')
    assert runtime(proc, "vm/panic_on_oom") == "1\n"
    assert runtime(proc, "net/ipv4/ip_local_port_range") == "1024 65000\n"
    assert oct(proc.path(PANIC).stat().st_mode & 0o777) == "0o644"


def test_second_run_up_to_date_keeps_mtimes(proc: Converger, mtimes) -> None:
    recipe = ('from converge import sysctl\nsysctl("vm.panic_on_oom", 1, comment="kdump")\n'
              'sysctl("vm.swappiness", 10, conf_file="60-mem.conf")\n'
              'sysctl("net.ipv4.ip_forward", 1, conf_file="60-mem.conf")\n')
    assert statuses(proc.run(recipe)) == ["updated"] * 3
    before = mtimes(proc.root)
    assert statuses(proc.run(recipe)) == ["up_to_date"] * 3
    assert mtimes(proc.root) == before
    assert proc.path("/etc/sysctl.d/60-mem.conf").read_text() == \
        "vm.swappiness = 10\nnet.ipv4.ip_forward = 1\n"
    assert proc.path(PANIC).read_text() == HEAD + "# kdump\nvm.panic_on_oom = 1\n"


def test_plan_mode_changes_nothing(proc: Converger, mtimes) -> None:
    before = mtimes(proc.root)
    events = proc.run('from converge import sysctl\nsysctl("vm.panic_on_oom", 1)\n', mode="plan")
    assert events[0]["changes"] == ["set vm.panic_on_oom from 0 to 1",
                                    "persist vm.panic_on_oom = 1 in " + PANIC]
    assert mtimes(proc.root) == before


def test_later_file_in_load_order_is_a_warning(proc: Converger) -> None:
    proc.path("/etc/sysctl.d/99-zz-local.conf").write_text("vm.panic_on_oom = 0\n")
    proc.path("/etc/sysctl.d/10-early.conf").write_text("vm.panic_on_oom = 2\n")
    proc.path("/usr/lib/sysctl.d").mkdir(parents=True)
    proc.path("/usr/lib/sysctl.d/99-zzz.conf").write_text("vm.* = 2\n")
    events = proc.run('from converge import sysctl\nsysctl("vm.panic_on_oom", 1)\n')
    assert events[0]["status"] == "updated"
    assert events[0]["warnings"] == [
        "/etc/sysctl.d/99-zz-local.conf sets vm.panic_on_oom = 0 and is read after "
        "%s at boot, so it wins there" % PANIC,
        "/usr/lib/sysctl.d/99-zzz.conf sets vm.panic_on_oom = 2 and is read after "
        "%s at boot, so it wins there" % PANIC,
    ]


def test_conf_file_outside_boot_directories_is_a_warning(proc: Converger) -> None:
    proc.path("/opt").mkdir()
    events = proc.run('from converge import sysctl\n'
                      'sysctl("vm.panic_on_oom", 1, conf_file="/opt/k.conf")\n')
    assert events[0]["warnings"] == [
        "/opt/k.conf is not read at boot (systemd-sysctl reads *.conf files in /etc/sysctl.d, "
        "/run/sysctl.d, /usr/local/lib/sysctl.d, /usr/lib/sysctl.d, /lib/sysctl.d)"]


@pytest.mark.parametrize("recipe, error", [
    pytest.param('sysctl("net.ipv4.ip_forwrd", 1)',
                 "no such kernel parameter net.ipv4.ip_forwrd\ndid you mean net.ipv4.ip_forward?",
                 id="unknown-key"),
    pytest.param('sysctl("vmm", 1)', "no such kernel parameter vmm\ndid you mean vm?",
                 id="unknown-top-level-key"),
    pytest.param('sysctl("fs.file-nr", "1 2 3")',
                 "kernel parameter fs.file-nr is read-only (it is 1024 0 9223372036854775807, "
                 "not 1 2 3)", id="read-only"),
])
def test_target_errors_persist_nothing(proc: Converger, recipe, error) -> None:
    events = proc.run("from converge import sysctl\n" + recipe + "\n"
                      'sysctl("vm.swappiness", 60)\n')
    assert statuses(events) == ["failed", "updated"]
    assert events[0]["error"] == error
    assert os.listdir(proc.path("/etc/sysctl.d")) == ["99-converge-vm.swappiness.conf"]


@pytest.mark.parametrize("recipe, message", [
    ('sysctl("vm..panic", 1)', "sysctl[vm..panic]: key 'vm..panic' is not a kernel "
     "parameter name such as 'vm.panic_on_oom'"),
    ('sysctl("vm.panic on oom", 1)', "sysctl[vm.panic on oom]: key 'vm.panic on oom' is not a "
     "kernel parameter name such as 'vm.panic_on_oom'"),
    ('sysctl("vm.panic_on_oom")', "sysctl[vm.panic_on_oom]: value is required for action "
     "'apply'"),
    ('sysctl("vm.panic_on_oom", True)', "sysctl[vm.panic_on_oom]: value True is ambiguous for a "
     "kernel parameter; write 1 or 0"),
    ('sysctl("vm.panic_on_oom", 1.5)', "sysctl[vm.panic_on_oom]: value 1.5 is not a number, a "
     "text or a list of fields"),
    ('sysctl("vm.panic_on_oom", "1\\n2")', "sysctl[vm.panic_on_oom]: value '1\\n2' contains a "
     "newline or NUL character"),
    ('sysctl("vm.panic_on_oom", [])', "sysctl[vm.panic_on_oom]: value is an empty list; give at "
     "least one field"),
    ('sysctl("vm.panic_on_oom", 1, conf_file="local")', "sysctl[vm.panic_on_oom]: conf_file "
     "'local' must end in .conf (only *.conf files in /etc/sysctl.d are read at boot)"),
    ('sysctl("vm.panic_on_oom", 1, conf_file="etc/x.conf")', "sysctl[vm.panic_on_oom]: "
     "conf_file 'etc/x.conf' must be an absolute path or a file name under /etc/sysctl.d"),
    ('sysctl("vm.panic_on_oom", "high")', "sysctl[vm.panic_on_oom]: value 'high' is not an "
     "integer"),
    ('sysctl("vm.swappiness", "10%")', "sysctl[vm.swappiness]: value '10%' is not an integer"),
    ('sysctl("net.ipv4.conf.all.rp_filter", "strict")', "sysctl[net.ipv4.conf.all.rp_filter]: "
     "value 'strict' is not an integer"),
    ('sysctl("net.ipv4.ip_local_port_range", [1024, "max"])',
     "sysctl[net.ipv4.ip_local_port_range]: value '1024 max' is not an integer (each field "
     "must be one)"),
    ('sysctl("vm.panic_on_oom", 1, persist="yes")', "sysctl[vm.panic_on_oom]: persist must be "
     "True or False, not 'yes'"),
])
def test_bad_input_refused_at_compile_time(proc: Converger, recipe, message) -> None:
    with pytest.raises(PropertyError) as info:
        proc.compile("from converge import sysctl\n" + recipe + "\n")
    assert str(info.value) == "recipe.py:2: " + message


@pytest.mark.parametrize("recipe", [
    'sysctl("vm.panic_on_oom", "0x1")', 'sysctl("vm.swappiness", -1)',
    'sysctl("kernel.hostname", "web1")', 'sysctl("kernel.core_pattern", "|/bin/dump %p")',
    'sysctl("vm.numa_zonelist_order", "Node")', 'sysctl("net.ipv6.conf.all.stable_secret", '
    '"fd00::1")', 'sysctl("kernel.unknown_knob", "any text")',
])
def test_integers_and_text_keys_accepted_at_compile_time(proc: Converger, recipe) -> None:
    proc.compile("from converge import sysctl\n" + recipe + "\n")


def test_text_for_an_integer_parameter_refused_on_the_target(proc: Converger) -> None:
    """A key the compiler does not know takes integers when the kernel shows one; text is
    refused before anything is written, as the kernel would (EINVAL), also where
    /proc/sys is a copy that takes any text (a lab node)."""
    path = proc.path("/proc/sys/kernel/sched_autogroup_enabled")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("1\n")
    events = proc.run('from converge import sysctl\n'
                      'sysctl("kernel.sched_autogroup_enabled", "on")\n')
    assert statuses(events) == ["failed"]
    assert events[0]["error"] == (
        "kernel.sched_autogroup_enabled takes integers (it is 1 now); on is not one, so the "
        "kernel would refuse it: nothing was written\n"
        "give an integer, or a list of them for a multi-value key")
    assert path.read_text() == "1\n"
    assert os.listdir(proc.path("/etc/sysctl.d")) == []
    hostname = proc.path("/proc/sys/kernel/hostname")
    hostname.write_text("1234\n")  # a text key that looks like a number
    events = proc.run('from converge import sysctl\n'
                      'sysctl("kernel.hostname", "web1", persist=False)\n')
    assert statuses(events) == ["updated"] and hostname.read_text().strip() == "web1"


def test_cli_shows_warning_and_json_report(proc: Converger, tmp_path) -> None:
    import json
    import subprocess
    import sys

    proc.path("/etc/sysctl.d/99-zz-local.conf").write_text("vm.panic_on_oom = 0\n")
    recipe = proc.write("r.py", 'from converge import sysctl\nsysctl("vm.panic_on_oom", 1)\n')
    report = tmp_path / "report.json"
    done = subprocess.run([sys.executable, "-m", "converge", "apply", "--root", str(proc.root),
                           str(recipe), "--json", str(report)],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    warning = ("/etc/sysctl.d/99-zz-local.conf sets vm.panic_on_oom = 0 and is read after "
               "%s at boot, so it wins there" % PANIC)
    assert done.stdout.splitlines()[:4] == [
        "* sysctl[vm.panic_on_oom] action apply", "  - set vm.panic_on_oom from 0 to 1",
        "  - persist vm.panic_on_oom = 1 in " + PANIC, "  warning: " + warning]
    data = json.loads(report.read_text())
    [host] = data["hosts"].values()
    assert host["resources"][0]["warnings"] == [warning]


def test_an_empty_runtime_value_is_shown_as_two_quotes(proc: Converger) -> None:
    proc.path("/proc/sys/kernel").mkdir()
    proc.path("/proc/sys/kernel/core_pattern").write_text("\n")
    events = proc.run('from converge import sysctl\n'
                      'sysctl("kernel.core_pattern", "core", persist=False)\n')
    assert events[0]["changes"] == ["set kernel.core_pattern from '' to core"]


def test_remove_of_a_parameter_this_kernel_lacks_still_removes_the_file(proc: Converger
                                                                         ) -> None:
    """A setting persisted for a parameter the running kernel does not have (a module
    not loaded, an older kernel): remove deletes it and names no runtime value."""
    conf = "/etc/sysctl.d/99-converge-net.netfilter.nf_conntrack_max.conf"
    proc.path(conf).write_text("net.netfilter.nf_conntrack_max = 262144\n")
    events = proc.run('from converge import sysctl\n'
                      'sysctl("net.netfilter.nf_conntrack_max", action="remove")\n')
    assert events[0]["error"] is None
    assert events[0]["changes"] == [
        "remove net.netfilter.nf_conntrack_max from %s (the runtime value is left as is)" % conf]
    assert not proc.path(conf).exists()


def test_remove_takes_its_comment_and_deletes_a_file_left_without_settings(
        proc: Converger) -> None:
    shared = "/etc/sysctl.d/60-shared.conf"
    proc.path(shared).write_text("vm.swappiness = 1\n# kdump\nvm.panic_on_oom = 1\n")
    recipe = ('from converge import sysctl\n'
              'sysctl("%s", action="remove", conf_file="60-shared.conf", comment="%s")\n')
    proc.run(recipe % ("vm.panic_on_oom", "kdump"))
    assert proc.path(shared).read_text() == "vm.swappiness = 1\n"  # its comment went too
    proc.path(shared).write_text("# local settings\nvm.swappiness = 1\n")
    events = proc.run(recipe % ("vm.swappiness", "other"))
    assert statuses(events) == ["updated"]
    assert not proc.path(shared).exists()  # only a comment was left: the file goes


def test_a_later_file_that_agrees_and_remove_are_no_warning(proc: Converger) -> None:
    proc.path("/etc/sysctl.d/99-zz-local.conf").write_text("vm.panic_on_oom = 1\n")
    events = proc.run('from converge import sysctl\nsysctl("vm.panic_on_oom", 1)\n')
    assert events[0]["status"] == "updated" and events[0]["warnings"] == []
    events = proc.run('from converge import sysctl\n'
                      'sysctl("vm.panic_on_oom", action="remove")\n')
    assert events[0]["status"] == "updated" and events[0]["warnings"] == []


def test_the_persisted_file_is_0644_in_a_0755_directory_whatever_was_there(
        proc: Converger) -> None:
    proc.path("/etc/sysctl.d").rmdir()
    proc.run('from converge import sysctl\nsysctl("vm.panic_on_oom", 1)\n')
    assert stat.S_IMODE(proc.path("/etc/sysctl.d").stat().st_mode) == 0o755
    os.chmod(proc.path(PANIC), 0o600)
    proc.run('from converge import sysctl\nsysctl("vm.panic_on_oom", 2)\n')
    assert stat.S_IMODE(proc.path(PANIC).stat().st_mode) == 0o644


def test_rollback_puts_back_a_runtime_only_value(proc: Converger) -> None:
    runs.apply_plan(proc.system, proc.compile(
        'from converge import sysctl\nsysctl("vm.swappiness", 10, persist=False)\n'))
    assert runtime(proc, "vm/swappiness") == "10\n"
    events = runs.rollback(proc.system)
    assert statuses(events) == ["updated"]
    assert runtime(proc, "vm/swappiness") == "60\n"


@pytest.mark.parametrize("declared, marked", [
    pytest.param('conf_file="60-net.conf"', True, id="persisted"),
    pytest.param('conf_file="60-net.conf", persist=False', False, id="runtime-only"),
    pytest.param('conf_file="60-net.conf", persist=False, action="remove"', True,
                 id="remove"),
])
def test_a_secret_persisted_in_a_shared_file_hides_the_other_writers_diff(
        proc: Converger, declared: str, marked: bool) -> None:
    """A sensitive sysctl's file (a stable_secret) is a secret file for every
    resource that writes it; one that persists nothing makes no file secret."""
    value = "" if "remove" in declared else '"fd00::1", '
    plan = proc.compile('from converge import sysctl\n'
                        'sysctl("net.ipv6.conf.all.stable_secret", %s%s, sensitive=True)\n'
                        'sysctl("net.ipv4.ip_forward", 1, conf_file="60-net.conf")\n'
                        % (value, declared))
    assert plan.steps[1].resource().meta.secret_file is marked


@pytest.mark.parametrize("key", [
    "vm.swappiness", "vm", "fs.file-max", "kernel.panic", "kernel.panicx", "kernel.panic_on_oops",
    "kernel.shmmax", "kernel.shm", "net.core.wmem_max", "net.core.rmem_default",
    "net.core.mem_", "net.core.somaxconn", "net.ipv4.tcp_rmem", "net.ipv4.tcp_mem",
    "net.ipv4.tcp_congestion_control", "net.ipv4.tcp_allowed_congestion_control",
    "net.ipv4.conf.all.rp_filter", "net.ipv6.conf.eth0.stable_secret", "kernel.random.uuid",
    "fs.binfmt_misc.status", "kernel.hostname", "net.ipv4.icmp_echo_ignore_all", "x.vm.y", "",
])
def test_known_keys_match_as_fnmatch_matched_them(key: str) -> None:
    """The glob lists are matched without fnmatch (a regular expression compiled for
    each glob on every agent start): same answers."""
    import fnmatch

    from converge.resources import _sysctl_files as files

    for glob in files.INTEGER_KEYS + files.TEXT_KEYS + ("a*b*b", "*", "**", "*_*_*"):
        assert not set(glob) & set("?[]")  # what the plain matcher supports
        assert files._glob(key, glob) == fnmatch.fnmatchcase(key, glob), (key, glob)
    for key2, glob in (("abb", "a*b*b"), ("ab", "a*b*b"), ("abxb", "a*b*b"), ("a_b", "*_*_*")):
        assert files._glob(key2, glob) == fnmatch.fnmatchcase(key2, glob), (key2, glob)


def test_patterns_compile_when_first_used() -> None:
    import re

    from converge.resources._validate import pattern

    broken = pattern("(")  # not compiled yet, so no error yet
    with pytest.raises(re.error):
        broken.fullmatch("(")
    name = pattern(r"[a-z]+", re.IGNORECASE)
    assert name.fullmatch("Abc") and not name.fullmatch("a-b") and name.pattern == "[a-z]+"
