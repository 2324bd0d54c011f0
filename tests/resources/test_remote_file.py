"""remote_file under a temporary root, against an HTTP server this test starts on
127.0.0.1: conditional GET, no download when the checksum matches, each failure
(404, timeout, checksum mismatch) leaving the old file whole, headers sent and
never shown, drift, plan writing nothing, and rollback."""

from __future__ import annotations

import hashlib
import http.server
import threading
from typing import Any, Dict, Iterator, List, Tuple

import pytest

from converge.agent import journal as jn
from converge.agent.engine import Engine
from converge.agent.rollback import build
from converge.errors import PropertyError
from tests.conftest import Converger


class Server:
    """Serves ``files`` by path with an ETag; records each request's headers."""

    def __init__(self) -> None:
        self.files: Dict[str, bytes] = {}
        self.seen: List[Tuple[str, Dict[str, str]]] = []
        self.release = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                server.seen.append((self.path, dict(self.headers)))
                if self.path == "/hang":
                    server.release.wait(30)
                    return
                if self.path == "/private" and self.headers.get("Authorization") != "Bearer T0KEN":
                    self.send_error(401)
                    return
                data = server.files.get(self.path.replace("/private", "/p"))
                if data is None:
                    self.send_error(404)
                    return
                tag = '"%s"' % hashlib.sha256(data).hexdigest()[:16]
                if self.headers.get("If-None-Match") == tag:
                    self.send_response(304)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("ETag", tag)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    served = Server()
    try:
        yield served
    finally:
        served.close()


def run(converger: Converger, line: str, mode: str = "apply") -> Dict[str, Any]:
    return converger.run("from converge import remote_file\n" + line + "\n", mode=mode)[0]


def test_download_then_conditional_get(converger: Converger, server: Server) -> None:
    server.files["/tool"] = b"tool v1\n"
    line = 'remote_file("/etc/tool", "%s/tool", mode="0750")' % server.url
    first = run(converger, line)
    assert first["changes"] == [
        "create new file /etc/tool",
        "update content in file /etc/tool from none to %s (from %s/tool)"
        % (hashlib.sha256(b"tool v1\n").hexdigest()[:8], server.url)]
    target = converger.path("/etc/tool")
    assert target.read_bytes() == b"tool v1\n" and target.stat().st_mode & 0o777 == 0o750
    stamp = target.stat().st_mtime_ns
    second = run(converger, line)
    assert (second["status"], second["changes"]) == ("up_to_date", [])
    assert "If-None-Match" in server.seen[-1][1]  # asked, and was told 304
    assert target.stat().st_mtime_ns == stamp

    server.files["/tool"] = b"tool v2\n"
    planned = run(converger, line, mode="plan")
    assert planned["changes"][0].startswith("update content in file /etc/tool from ")
    assert target.read_bytes() == b"tool v1\n"  # plan wrote nothing
    assert run(converger, line)["status"] == "updated"
    assert target.read_bytes() == b"tool v2\n"

    target.write_bytes(b"edited by hand\n")  # drift: the record's ETag must not be used
    fixed = run(converger, line)
    assert fixed["status"] == "updated" and "If-None-Match" not in server.seen[-1][1]
    assert target.read_bytes() == b"tool v2\n"


def test_a_matching_checksum_downloads_nothing(converger: Converger, server: Server) -> None:
    data = b"pinned\n"
    server.files["/pinned"] = data
    digest = hashlib.sha256(data).hexdigest()
    line = 'remote_file("/etc/pinned", "%s/pinned", checksum="%s")' % (server.url, digest.upper())
    assert run(converger, line)["status"] == "updated"
    requests = len(server.seen)
    assert run(converger, line)["status"] == "up_to_date"
    assert len(server.seen) == requests


@pytest.mark.parametrize("path, extra, error", [
    pytest.param("/missing", "", "{url}/missing answered HTTP 404 Not Found", id="404"),
    pytest.param("/hang", ", timeout=0.5", "{url}/hang timed out after 0.5s", id="timeout"),
    pytest.param("/tool", ", checksum='%s'" % ("0" * 64),
                 "checksum mismatch for {url}/tool: expected %s, the download has " % ("0" * 64),
                 id="checksum-mismatch"),
])
def test_failures_leave_the_old_file_whole(converger: Converger, server: Server, path: str,
                                           extra: str, error: str) -> None:
    server.files["/tool"] = b"new\n"
    target = converger.path("/etc/tool")
    target.write_bytes(b"old\n")
    event = run(converger, 'remote_file("/etc/tool", "%s%s"%s)' % (server.url, path, extra))
    assert event["status"] == "failed"
    assert event["error"].startswith(error.format(url=server.url)), event["error"]
    assert target.read_bytes() == b"old\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["group", "passwd", "tool"]


def test_headers_are_sent_and_never_shown(converger: Converger, server: Server) -> None:
    server.files["/p"] = b"secret file\n"
    events = converger.run(
        'from converge import remote_file\n'
        'remote_file("/etc/private", "%s/private", headers={"Authorization": "Bearer T0KEN"})\n'
        'remote_file("/etc/denied", "%s/private")\n' % (server.url, server.url))
    assert [e["status"] for e in events] == ["updated", "failed"]
    assert events[1]["error"].startswith("%s/private answered HTTP 401" % server.url)
    assert "T0KEN" not in repr(events)


def test_a_password_in_the_url_is_never_shown(converger: Converger, server: Server) -> None:
    url = server.url.replace("http://", "http://ops:hunter2@")
    event = run(converger, 'remote_file("/etc/x", "%s/missing")' % url)
    assert "hunter2" not in repr(event) and "ops:***@127.0.0.1" in event["error"]


def test_file_urls_are_read_on_the_target(converger: Converger) -> None:
    converger.path("/srv").mkdir()
    converger.path("/srv/src").write_bytes(b"local\n")
    line = 'remote_file("/etc/copy", "file:///srv/src")'
    assert run(converger, line)["status"] == "updated"
    assert converger.path("/etc/copy").read_bytes() == b"local\n"
    assert run(converger, line)["status"] == "up_to_date"
    missing = run(converger, 'remote_file("/etc/copy2", "file:///srv/none")')
    assert missing["error"] == "file:///srv/none: no such file on the target"


def test_create_if_missing_and_the_parent_and_links(converger: Converger, server: Server
                                                    ) -> None:
    converger.path("/etc/keep").write_bytes(b"mine\n")
    event = run(converger, 'remote_file("/etc/keep", "%s/x", action="create_if_missing")'
                % server.url)
    assert event["status"] == "up_to_date" and server.seen == []
    server.files["/x"] = b"x\n"
    event = run(converger, 'remote_file("/nodir/x", "%s/x")' % server.url)
    assert event["error"].startswith("parent directory /nodir does not exist")
    converger.path("/etc/link").symlink_to("/etc/passwd")
    event = run(converger, 'remote_file("/etc/link", "%s/x")' % server.url)
    assert event["error"].startswith("/etc/link exists and is not a regular file")
    assert "root:x:0:0" in converger.path("/etc/passwd").read_text()


@pytest.mark.parametrize("line, message", [
    pytest.param('remote_file("/x", "ftp://host/x")', "is not an http://, https:// or file://",
                 id="scheme"),
    pytest.param('remote_file("/x", "file://relative/x")', "needs an absolute path",
                 id="file-relative"),
    pytest.param('remote_file("/x", "https://h/x", checksum="abc")', "is not a sha256",
                 id="checksum"),
    pytest.param('remote_file("/x", "https://h/x", headers={"X": "a\\r\\nHost: evil"})',
                 "the value of header X must be one line of text (not shown)", id="header"),
    pytest.param('remote_file("/x", "https://h/x", timeout=0)', "timeout must be a positive",
                 id="timeout"),
])
def test_bad_properties(converger: Converger, line: str, message: str) -> None:
    with pytest.raises(PropertyError) as info:
        converger.compile("from converge import remote_file\n" + line + "\n")
    assert message in info.value.message
    assert "evil" not in str(info.value)


def test_rollback_restores_the_previous_file(converger: Converger, server: Server) -> None:
    server.files["/tool"] = b"new\n"
    converger.path("/etc/tool").write_bytes(b"old\n")
    journal = jn.Journal(converger.system)
    plan = converger.compile('from converge import remote_file\n'
                             'remote_file("/etc/tool", "%s/tool")\n'
                             'remote_file("/etc/added", "%s/tool")\n' % (server.url, server.url))
    Engine(converger.system, journal=journal).run(plan)
    journal.finish({})
    restore = build(converger.system, jn.load(converger.system, journal.id))
    Engine(converger.system).run(restore.plan)
    assert converger.path("/etc/tool").read_bytes() == b"old\n"
    assert not converger.path("/etc/added").exists()
