"""cron: /etc/cron.d files and user crontabs under a temporary root.

A System rooted elsewhere than / keeps a user's crontab in the spool directory
(crontab(1) would edit the live machine); the real crontab(1) is exercised in lab
nodes (tests/e2e/test_cron_e2e.py).
"""

from __future__ import annotations

import json
import stat

import pytest

from converge.agent import runs
from converge.errors import PropertyError
from converge.resources import _cron_fields as cf
from tests.conftest import Converger, statuses
from tests.resources import cron_grammar as grammar

SA1 = 'cron("sa1", minute="*/10", command="/usr/lib/sysstat/sa1 1 1", cron_file="sysstat")'
SPOOL = "/var/spool/cron/crontabs/root"


@pytest.mark.parametrize(
    "files, recipe, lines, result",
    [
        pytest.param({}, SA1, ["add cron entry sa1 to /etc/cron.d/sysstat"],
                     {"/etc/cron.d/sysstat": "# converge: sa1\n"
                      "*/10 * * * * root /usr/lib/sysstat/sa1 1 1\n"}, id="new-cron-file"),
        pytest.param({"/etc/cron.d/sysstat": "# converge: sa1\n"
                      "*/5 * * * * root /usr/lib/sysstat/sa1 1 1\n"}, SA1,
                     ["update cron entry sa1 in /etc/cron.d/sysstat"],
                     {"/etc/cron.d/sysstat": "# converge: sa1\n"
                      "*/10 * * * * root /usr/lib/sysstat/sa1 1 1\n"}, id="update-schedule"),
        pytest.param({"/etc/cron.d/sysstat": "# by hand\nMAILTO=x\n"
                      "*/10  *  * * *   root /usr/lib/sysstat/sa1 1 1\n5 19 * * * root x"},
                     SA1, ["adopt the existing cron entry sa1 in /etc/cron.d/sysstat "
                           "(add its marker)"],
                     {"/etc/cron.d/sysstat": "# by hand\nMAILTO=x\n# converge: sa1\n"
                      "*/10 * * * * root /usr/lib/sysstat/sa1 1 1\n5 19 * * * root x\n"},
                     id="adopt-identical-unmarked-line"),
        pytest.param({"/etc/cron.d/sysstat": "# converge: sa2\n53 23 * * * root sa2\n"}, SA1,
                     ["add cron entry sa1 to /etc/cron.d/sysstat"],
                     {"/etc/cron.d/sysstat": "# converge: sa2\n53 23 * * * root sa2\n"
                      "# converge: sa1\n*/10 * * * * root /usr/lib/sysstat/sa1 1 1\n"},
                     id="shared-cron-file"),
        pytest.param({}, 'cron("oom", command="/usr/local/sbin/oom-protect", user="root", '
                     'environment={"MAILTO": "", "PATH": "/usr/sbin:/usr/bin"}, '
                     'disabled=True, cron_file="oom")',
                     ["add cron entry oom to /etc/cron.d/oom"],
                     {"/etc/cron.d/oom": "# converge: oom\nMAILTO=\"\"\nPATH=/usr/sbin:/usr/bin\n"
                      "# * * * * * root /usr/local/sbin/oom-protect\n"},
                     id="environment-and-disabled"),
        pytest.param({"/etc/cron.d/oom": "# converge: oom\nMAILTO=\"\"\n"
                      "# * * * * * root /usr/local/sbin/oom-protect\n"},
                     'cron("oom", command="/usr/local/sbin/oom-protect", cron_file="oom")',
                     ["update cron entry oom in /etc/cron.d/oom"],
                     {"/etc/cron.d/oom": "# converge: oom\n"
                      "* * * * * root /usr/local/sbin/oom-protect\n"},
                     id="re-enable-drops-environment"),
        pytest.param({"/etc/cron.d/sysstat": "# converge: sa2\n53 23 * * * root sa2\n"
                      "# converge: sa1\n*/10 * * * * root sa1\n"},
                     'cron("sa1", action="delete", cron_file="sysstat")',
                     ["delete cron entry sa1 from /etc/cron.d/sysstat"],
                     {"/etc/cron.d/sysstat": "# converge: sa2\n53 23 * * * root sa2\n"},
                     id="delete-one-of-two"),
        pytest.param({"/etc/cron.d/sysstat": "# converge: sa1\nMAILTO=x\n*/10 * * * * root sa1\n"},
                     'cron("sa1", action="delete", cron_file="sysstat")',
                     ["delete /etc/cron.d/sysstat (its last entry, sa1, is gone)"],
                     {"/etc/cron.d/sysstat": None}, id="delete-last-removes-file"),
        pytest.param({}, 'cron("sa1", action="delete", cron_file="sysstat")', [],
                     {"/etc/cron.d/sysstat": None}, id="delete-absent"),
        pytest.param({"/etc/cron.d/sysstat": "# by hand\n"
                      "*/10 * * * * root /usr/lib/sysstat/sa1 1 1\n5 19 * * * root x\n"},
                     SA1.replace(")", ', action="delete")'),
                     ["delete cron entry sa1 from /etc/cron.d/sysstat"],
                     {"/etc/cron.d/sysstat": "# by hand\n5 19 * * * root x\n"},
                     id="delete-unmarked-line-by-its-job"),
        pytest.param({SPOOL: "# m h dom mon dow command\nMAILTO=me\n0 1 * * * /bin/mine\n"},
                     'cron("daily", special="@daily", command="/usr/bin/true")',
                     ["add cron entry daily to the crontab of root"],
                     {SPOOL: "# m h dom mon dow command\nMAILTO=me\n0 1 * * * /bin/mine\n"
                      "# converge: daily\n@daily /usr/bin/true\n"}, id="user-crontab-keeps-lines"),
        pytest.param({SPOOL: "0 1 * * * /bin/mine\n# converge: daily\n@daily /usr/bin/true\n"},
                     'cron("daily", hour=3, minute=0, weekday="mon", '
                     'command="date +\\\\%s >> /tmp/x")',
                     ["update cron entry daily in the crontab of root"],
                     {SPOOL: "0 1 * * * /bin/mine\n# converge: daily\n"
                      "0 3 * * mon date +\\%s >> /tmp/x\n"}, id="user-crontab-update"),
        pytest.param({}, 'cron("m", minute=[0, 30], hour="8-18/2", month="JAN", '
                     'command="x", cron_file="m")', ["add cron entry m to /etc/cron.d/m"],
                     {"/etc/cron.d/m": "# converge: m\n0,30 8-18/2 * jan * root x\n"},
                     id="lists-ranges-steps-names"),
    ],
)
def test_cron_table(converger: Converger, files, recipe, lines, result) -> None:
    for path, text in files.items():
        converger.path(path).parent.mkdir(parents=True, exist_ok=True)
        converger.path(path).write_text(text)
    events = converger.run("from converge import cron\n" + recipe + "\n")
    assert events[0]["error"] is None
    assert events[0]["changes"] == lines
    for path, text in result.items():
        real = converger.path(path)
        assert (real.read_text() if real.exists() else None) == text
    second = converger.run("from converge import cron\n" + recipe + "\n")
    assert statuses(second) == ["up_to_date"]


def test_cron_file_mode_and_second_run(converger: Converger, mtimes) -> None:
    recipe = ("from converge import cron\n" + SA1 + "\n"
              'cron("sa2", hour=23, minute=53, command="/usr/lib/sysstat/sa2 -A", '
              'cron_file="sysstat")\n'
              'cron("mine", special="@reboot", command="/bin/true", user="www-data")\n')
    assert statuses(converger.run(recipe)) == ["updated"] * 3
    path = converger.path("/etc/cron.d/sysstat")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert path.read_text().endswith("\n")
    before = mtimes(converger.root)
    assert statuses(converger.run(recipe)) == ["up_to_date"] * 3
    assert mtimes(converger.root) == before
    assert converger.path("/var/spool/cron/crontabs/www-data").read_text() == \
        "# converge: mine\n@reboot /bin/true\n"


def test_wrong_mode_is_fixed(converger: Converger) -> None:
    converger.run("from converge import cron\n" + SA1 + "\n")
    path = converger.path("/etc/cron.d/sysstat")
    path.chmod(0o600)
    events = converger.run("from converge import cron\n" + SA1 + "\n")
    assert events[0]["changes"] == ["change mode of /etc/cron.d/sysstat from '0600' to '0644'"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_plan_mode_changes_nothing(converger: Converger, mtimes) -> None:
    before = mtimes(converger.root)
    events = converger.run("from converge import cron\n" + SA1 + "\n", mode="plan")
    assert events[0]["changes"] == ["add cron entry sa1 to /etc/cron.d/sysstat"]
    assert "+*/10 * * * * root /usr/lib/sysstat/sa1 1 1" in events[0]["diffs"][0]
    assert [line for line in events[0]["diffs"][0].splitlines()[2:]
            if line.startswith("-")] == []  # a new file: nothing taken away
    assert mtimes(converger.root) == before


@pytest.mark.parametrize("recipe, message", [
    ('cron("sa1", minute=61, command="x")', "cron[sa1]: minute '61' is out of range 0-59"),
    ('cron("sa1", hour="24", command="x")', "cron[sa1]: hour '24' is out of range 0-23"),
    ('cron("sa1", day=0, command="x")', "cron[sa1]: day '0' is out of range 1-31"),
    ('cron("sa1", month="13", command="x")', "cron[sa1]: month '13' is out of range 1-12"),
    ('cron("sa1", weekday="8", command="x")', "cron[sa1]: weekday '8' is out of range 0-7"),
    ('cron("sa1", weekday="monday", command="x")', "cron[sa1]: weekday 'monday' is not a "
     "number 0-7 or one of the names sun, mon, tue, wed, thu, fri, sat"),
    ('cron("sa1", weekday="mon/2", command="x")', "cron[sa1]: weekday 'mon/2': a step needs a "
     "range or * before it (write mon-7/2)"),
    ('cron("sa1", minute="*/0", command="x")', "cron[sa1]: minute '*/0': the step must be "
     "1 or more"),
    ('cron("sa1", minute="every 5", command="x")', "cron[sa1]: minute 'every 5' is not a cron "
     "field (a number, a range such as 1-5, a list such as 1,15, a step such as */10 or "
     "1-30/5, or *)"),
    ('cron("sa1", command="date +%s")', "cron[sa1]: command contains an unescaped '%': cron "
     "turns % into a newline and passes what follows as standard input; write \\% to keep a "
     "literal %"),
    ('cron("sa1", command="a\\nb")', "cron[sa1]: command contains a newline; a cron entry is "
     "one line (put several commands in a script)"),
    ('cron("sa1")', "cron[sa1]: command is required for action 'create'"),
    ('cron("sa1", special="@boot", command="x")', "cron[sa1]: special '@boot' is not one of: "
     "@reboot, @hourly, @daily, @weekly, @monthly, @yearly, @annually, @midnight"),
    ('cron("sa1", special="@daily", hour=3, command="x")', "cron[sa1]: give either special or "
     "the minute/hour/day/month/weekday fields, not both"),
    ('cron("sa1", command="x", cron_file="sys.stat")', "cron[sa1]: cron_file 'sys.stat' is not "
     "a valid name: cron ignores files in /etc/cron.d whose names contain anything but "
     "letters, digits, '_' and '-'"),
    ('cron("sa1", command="x", environment={"MAIL TO": "x"})', "cron[sa1]: environment name "
     "'MAIL TO' is not a variable name such as MAILTO"),
    ('cron("sa1", command="x", user="bad user")', "cron[sa1]: user 'bad user' is not a valid "
     "name (letters, digits, '_', '-', '.'; or a numeric id)"),
])
def test_bad_input_refused_at_compile_time(converger: Converger, recipe, message) -> None:
    with pytest.raises(PropertyError) as info:
        converger.compile("from converge import cron\n" + recipe + "\n")
    assert str(info.value) == "recipe.py:2: " + message


def test_unknown_user_fails_and_writes_nothing(converger: Converger) -> None:
    events = converger.run('from converge import cron\n'
                           'cron("x", command="true", user="nosuch", cron_file="x")\n')
    assert events[0]["status"] == "failed"
    assert events[0]["error"] == "user 'nosuch' does not exist on this machine"
    assert not converger.path("/etc/cron.d/x").exists()


@pytest.mark.parametrize("field, text, verdict", grammar.TABLE,
                         ids=["%s=%s" % (f, t) for f, t, _ in grammar.TABLE])
def test_fields_read_as_crontab_reads_them(field: str, text: str, verdict: str) -> None:
    """converge's grammar against the verdict of Debian's crontab(1) (re-measured by
    tests/e2e/test_cron_e2e.py::test_crontab_agrees_with_the_grammar_table)."""
    if verdict == grammar.OK:
        assert cf.field(field, text) == text.lower()
    else:
        with pytest.raises(PropertyError):
            cf.field(field, text)


def test_the_grammar_table_is_large_enough() -> None:
    assert len(grammar.TABLE) >= 40
    assert {v for _, _, v in grammar.TABLE} == {grammar.OK, grammar.BAD, grammar.LAX}


def test_a_users_spool_file_is_0600_and_goes_with_its_last_entry(converger: Converger
                                                                 ) -> None:
    """Under a root a user's crontab is its spool file: 0600 as crontab(1) makes it,
    in a directory made 0755 when missing, removed when its last entry goes."""
    recipe = 'from converge import cron\ncron("mine", hour=3, command="/bin/true"%s)\n'
    converger.run(recipe % "")
    spool = converger.path(SPOOL)
    assert stat.S_IMODE(spool.stat().st_mode) == 0o600
    assert stat.S_IMODE(spool.parent.stat().st_mode) == 0o755
    events = converger.run(recipe % ', action="delete"')
    assert events[0]["changes"] == ["delete cron entry mine from the crontab of root"]
    assert not spool.exists()


@pytest.mark.parametrize("recipe, label, user", [
    pytest.param(SA1, "/etc/cron.d/sysstat", "root ", id="cron-file"),
    pytest.param(SA1.replace(', cron_file="sysstat"', ""), "crontab(root)", "", id="crontab"),
])
def test_the_diff_names_the_file_and_shows_the_changed_line(converger: Converger, recipe: str,
                                                            label: str, user: str) -> None:
    path = converger.path("/etc/cron.d/sysstat" if user else SPOOL)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# converge: sa1\n*/5 * * * * %s/usr/lib/sysstat/sa1 1 1\n" % user)
    events = converger.run("from converge import cron\n" + recipe + "\n", mode="plan")
    [diff] = events[0]["diffs"]
    lines = diff.splitlines()
    assert lines[:2] == ["--- " + label, "+++ %s (new)" % label]
    assert [line for line in lines[2:] if line[:1] in "+-"] == [
        "-*/5 * * * * %s/usr/lib/sysstat/sa1 1 1" % user,
        "+*/10 * * * * %s/usr/lib/sysstat/sa1 1 1" % user]


def test_rolling_back_a_secret_crontab_entry_shows_no_secret(converger: Converger) -> None:
    """The user's crontab a sensitive entry was written to is a secret file (its spool
    file under a root): the rollback that restores it shows no diff of it."""
    secret = "s3cr3t-token"
    converger.path(SPOOL).parent.mkdir(parents=True)
    converger.path(SPOOL).write_text("0 1 * * * /bin/mine\n")
    runs.apply_plan(converger.system, converger.compile(
        'from converge import cron\n'
        'cron("dump", hour=2, command="/bin/dump --token=%s", sensitive=True)\n' % secret))
    assert secret in converger.path(SPOOL).read_text()
    events = runs.rollback(converger.system)
    assert statuses(events) == ["updated"]
    assert converger.path(SPOOL).read_text() == "0 1 * * * /bin/mine\n"
    assert secret not in json.dumps([[e["changes"], e["diffs"]] for e in events])


def test_a_secret_entry_makes_its_spool_file_secret_for_other_writers(converger: Converger
                                                                      ) -> None:
    plan = converger.compile(
        'from converge import cron, line\n'
        'cron("dump", hour=2, command="/bin/dump --token=x", sensitive=True)\n'
        'line("%s", "MAILTO=ops")\n' % SPOOL)
    assert plan.steps[1].resource().meta.secret_file
