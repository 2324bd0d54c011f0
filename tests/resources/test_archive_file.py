"""archive_file under a temporary root: tar (plain, gz, bz2, xz) and zip archives the
tests build, idempotence for each overwrite, members that would escape refused
before anything is written, links planted in the destination never followed,
and the rollback steps."""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest

from converge.agent.engine import Engine
from converge.agent.journal import Journal
from converge.agent.rollback import build
from tests.conftest import Converger

Entry = Tuple[str, str, str]  # (name, kind: file|dir|symlink|hardlink|fifo, data or target)

APP = [("app-1.0/", "dir", ""), ("app-1.0/bin/", "dir", ""),
       ("app-1.0/bin/run", "file", "#!/bin/sh\necho run\n"),
       ("app-1.0/README", "file", "read me\n"), ("app-1.0/current", "symlink", "bin/run")]


def tar_bytes(entries: List[Entry], compression: str = "gz") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:" + compression) as archive:
        for name, kind, data in entries:
            info = tarfile.TarInfo(name.rstrip("/"))
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                archive.addfile(info)
            elif kind == "file":
                info.size, info.mode = len(data.encode()), 0o4755 if "run" in name else 0o644
                archive.addfile(info, io.BytesIO(data.encode()))
            else:
                info.type = {"symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
                             "fifo": tarfile.FIFOTYPE}[kind]
                info.linkname = data
                archive.addfile(info)
    return buffer.getvalue()


def zip_bytes(entries: List[Entry]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, kind, data in entries:
            info = zipfile.ZipInfo(name)
            mode = {"dir": 0o40755, "file": 0o100644, "symlink": 0o120777}[kind]
            info.external_attr = mode << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def place(converger: Converger, target: str, data: bytes) -> None:
    path = converger.path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def tree(root: Path) -> Dict[str, str]:
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        elif path.is_dir():
            out[rel] = "dir %o" % (path.stat().st_mode & 0o7777)
        else:
            out[rel] = "%o %s" % (path.stat().st_mode & 0o7777, path.read_text())
    return out


def run(converger: Converger, line: str, mode: str = "apply") -> Dict[str, object]:
    return converger.run("from converge import archive_file\n" + line + "\n", mode=mode)[0]


@pytest.mark.parametrize("name, data", [
    pytest.param("app.tar.gz", tar_bytes(APP, "gz"), id="tar.gz"),
    pytest.param("app.tar.bz2", tar_bytes(APP, "bz2"), id="tar.bz2"),
    pytest.param("app.tar.xz", tar_bytes(APP, "xz"), id="tar.xz"),
    pytest.param("app.tar", tar_bytes(APP, ""), id="tar"),
    pytest.param("app.zip", zip_bytes(APP), id="zip"),
])
def test_extract_then_up_to_date(converger: Converger, name: str, data: bytes) -> None:
    place(converger, "/srv/" + name, data)
    line = 'archive_file("/srv/%s", "/opt/app", strip_components=1)' % name
    planned = run(converger, line, mode="plan")
    assert not converger.path("/opt/app").exists()  # plan wrote nothing
    first = run(converger, line)
    assert first["status"] == "updated", first
    assert first["changes"] == planned["changes"]
    assert first["changes"][0] == "create directory /opt/app"
    assert first["changes"][1].startswith("extract /srv/%s (" % name)
    assert first["changes"][1].endswith(", 4 members) into /opt/app")
    dest = converger.path("/opt/app")
    run_mode = "644" if name.endswith("zip") else "755"  # setuid never kept
    assert tree(dest) == {"README": "644 read me\n", "bin": "dir 755",
                          "bin/run": "%s #!/bin/sh\necho run\n" % run_mode,
                          "current": "-> bin/run"}
    stamp = (dest / "README").stat().st_mtime_ns
    second = run(converger, line)
    assert (second["status"], second["changes"]) == ("up_to_date", [])
    assert (dest / "README").stat().st_mtime_ns == stamp


def test_overwrite_modes(converger: Converger) -> None:
    place(converger, "/srv/a.tgz", tar_bytes([("f", "file", "one\n")]))
    for line in ('archive_file("/srv/a.tgz", "/opt/a")',
                 'archive_file("/srv/a.tgz", "/opt/a", overwrite="auto")'):
        run(converger, line)
        assert run(converger, line)["status"] == "up_to_date"
    place(converger, "/srv/a.tgz", tar_bytes([("f", "file", "two\n"), ("g", "file", "g\n")]))
    assert run(converger, 'archive_file("/srv/a.tgz", "/opt/a")')["status"] == "up_to_date"
    auto = run(converger, 'archive_file("/srv/a.tgz", "/opt/a", overwrite="auto")')
    assert auto["status"] == "updated"
    assert "(its checksum changed from " in auto["changes"][0]
    assert converger.path("/opt/a/f").read_text() == "two\n"
    assert run(converger, 'archive_file("/srv/a.tgz", "/opt/a", overwrite="auto")')[
        "status"] == "up_to_date"
    assert run(converger, 'archive_file("/srv/a.tgz", "/opt/a", overwrite=True)')[
        "status"] == "updated"


@pytest.mark.parametrize("entries, message", [
    pytest.param([("ok", "file", "x"), ("../evil", "file", "x")],
                 "archive member '../evil' has a '..' component, which climbs out of the "
                 "destination: nothing was extracted", id="dotdot"),
    pytest.param([("ok", "file", "x"), ("/etc/evil", "file", "x")],
                 "archive member '/etc/evil' has an absolute name, outside the destination",
                 id="absolute"),
    pytest.param([("l", "symlink", "/etc")],
                 "archive member 'l' is a link to the absolute path '/etc', outside the "
                 "destination", id="absolute-link"),
    pytest.param([("d/", "dir", ""), ("d/l", "symlink", "../..")],
                 "archive member 'd/l' is a link to '../..', which resolves outside the "
                 "destination", id="climbing-link"),
    pytest.param([("x/y/z/m", "symlink", "../../../t"), ("x/y/z/l", "symlink", "m/../../../..")],
                 "archive member 'x/y/z/l' is a link to 'm/../../../..', which resolves outside "
                 "the destination", id="link-through-a-link"),
    pytest.param([("l", "symlink", "sub"), ("l/f", "file", "x")],
                 "archive member 'l/f' would be written through the link 'l' of the archive",
                 id="write-through-link"),
    pytest.param([("h", "hardlink", "/etc/shadow")],
                 "archive member 'h' has an absolute name", id="hardlink-out"),
    pytest.param([("moo", "symlink", "../moo"), ("moo", "file", "x")],
                 "archive member 'moo' is a link to '../moo', which resolves outside the "
                 "destination", id="link-then-file-of-the-same-name"),  # mholt/archiver #69
    pytest.param([("p", "fifo", "")], "archive member 'p' is a device, fifo or socket",
                 id="fifo"),
])
def test_escaping_members_refuse_the_whole_archive(converger: Converger, entries: List[Entry],
                                                   message: str) -> None:
    place(converger, "/srv/bad.tar", tar_bytes(entries, ""))
    for mode in ("plan", "apply"):
        event = run(converger, 'archive_file("/srv/bad.tar", "/opt/bad")', mode=mode)
        assert event["status"] == "failed"
        assert str(event["error"]).startswith(message), event["error"]
    assert not converger.path("/opt/bad").exists()  # not even the destination


def test_zip_escapes_are_refused_too(converger: Converger) -> None:
    place(converger, "/srv/bad.zip", zip_bytes([("ok", "file", "x"), ("l", "symlink", "../x")]))
    event = run(converger, 'archive_file("/srv/bad.zip", "/opt/bad")')
    assert str(event["error"]).startswith("archive member 'l' is a link to '../x', which "
                                          "resolves outside the destination")
    assert not converger.path("/opt/bad").exists()


def test_a_link_planted_in_the_destination_is_never_followed(converger: Converger) -> None:
    outside = converger.path("/etc/cron.d")
    outside.mkdir(parents=True)
    dest = converger.path("/srv/www")
    dest.mkdir(parents=True)
    (dest / "conf").symlink_to("/etc/cron.d")  # as a user who owns /srv/www could
    place(converger, "/srv/site.tgz", tar_bytes([("conf/", "dir", ""),
                                                 ("conf/job", "file", "* * * * * root x\n")]))
    event = run(converger, 'archive_file("/srv/site.tgz", "/srv/www", overwrite=True)')
    assert event["status"] == "failed"
    assert "/srv/www/conf is in the way of archive member 'conf'" in str(event["error"])
    assert list(outside.iterdir()) == []


def test_a_file_member_replaces_a_planted_link_instead_of_writing_through_it(
        converger: Converger) -> None:
    victim = converger.path("/etc/victim")
    victim.write_text("keep\n")
    dest = converger.path("/srv/www")
    dest.mkdir(parents=True)
    (dest / "index.html").symlink_to("/etc/victim")
    place(converger, "/srv/site.tgz", tar_bytes([("index.html", "file", "<p>hi</p>\n")]))
    assert run(converger, 'archive_file("/srv/site.tgz", "/srv/www", overwrite=True)')[
        "status"] == "updated"
    assert victim.read_text() == "keep\n"
    assert not (dest / "index.html").is_symlink()


def test_destination_attributes_and_drift(converger: Converger) -> None:
    place(converger, "/srv/a.tgz", tar_bytes([("f", "file", "x")]))
    line = 'archive_file("/srv/a.tgz", "/opt/a", mode="0750", owner="www-data", group="www-data")'
    run(converger, line)
    dest = converger.path("/opt/a")
    assert dest.stat().st_mode & 0o777 == 0o750
    assert (dest.stat().st_uid, (dest / "f").stat().st_uid) == (33, 33)
    dest.chmod(0o777)
    drift = run(converger, line)
    assert drift["changes"] == ["change mode from '0777' to '0750'"]
    assert dest.stat().st_mode & 0o777 == 0o750


@pytest.mark.parametrize("line, message", [
    pytest.param('archive_file("/srv/a.tgz", "/opt/a", overwrite="yes")',
                 "overwrite 'yes' is not one of: False, True, 'auto'", id="overwrite"),
    pytest.param('archive_file("/srv/a.tgz", "/opt/../etc")', "'..' component", id="dotdot"),
    pytest.param('archive_file("/srv/a.tgz", "/opt/a", strip_components=-1)',
                 "strip_components '-1' is out of range", id="strip"),
])
def test_bad_properties(converger: Converger, line: str, message: str) -> None:
    from converge.errors import PropertyError

    with pytest.raises(PropertyError, match=message.replace("(", r"\(").replace(")", r"\)")):
        converger.compile("from converge import archive_file\n" + line + "\n")


def rollback(converger: Converger, recipe: str) -> Tuple[List[str], Optional[str]]:
    """Apply with a journal, then roll back: the rollback's change lines."""
    journal = Journal(converger.system)
    plan = converger.compile("from converge import archive_file\n" + recipe + "\n")
    Engine(converger.system, journal=journal).run(plan)
    journal.finish({})
    from converge.agent import journal as jn

    restore = build(converger.system, jn.load(converger.system, journal.id))
    events = Engine(converger.system).run(restore.plan)
    skipped = restore.skipped[0]["skip_reason"] if restore.skipped else None
    return [c for e in events for c in e["changes"]], skipped


def test_rollback_of_a_new_destination(converger: Converger) -> None:
    place(converger, "/srv/a.tgz", tar_bytes(APP))
    converger.path("/opt").mkdir()
    lines, _ = rollback(converger, 'archive_file("/srv/a.tgz", "/opt/new/app")')
    assert lines == ["delete directory /opt/new"]
    assert not converger.path("/opt/new").exists()


def test_rollback_into_an_existing_destination(converger: Converger) -> None:
    dest = converger.path("/srv/www")
    (dest / "keep").mkdir(parents=True)
    (dest / "keep/old").write_text("old\n")
    (dest / "index.html").write_text("old index\n")
    before = tree(dest)
    place(converger, "/srv/site.tgz", tar_bytes([
        ("index.html", "file", "new index\n"), ("keep/added", "file", "added\n"),
        ("assets/", "dir", ""), ("assets/app.css", "file", "css\n")]))
    lines, _ = rollback(converger, 'archive_file("/srv/site.tgz", "/srv/www", overwrite=True)')
    assert tree(dest) == before, lines


def test_a_destination_that_is_a_link_is_refused(converger: Converger) -> None:
    converger.path("/etc/cron.d").mkdir(parents=True)
    converger.path("/srv").mkdir()
    converger.path("/srv/www").symlink_to("/etc/cron.d")
    place(converger, "/srv/a.tgz", tar_bytes([("job", "file", "x")]))
    event = run(converger, 'archive_file("/srv/a.tgz", "/srv/www", overwrite=True)')
    assert event["error"].startswith("destination /srv/www is a symbolic link (to /etc/cron.d)")
    assert list(converger.path("/etc/cron.d").iterdir()) == []
