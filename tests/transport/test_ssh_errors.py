"""paramiko's failures reach the user as one line (issue 12 item 10): a server
that closes before its banner made paramiko's transport thread log a traceback,
which Python's last-resort handler printed under converge's own message."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path


def test_a_server_that_hangs_up_is_one_line_without_a_traceback(tmp_path: Path) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    port = server.getsockname()[1]

    def hang_up() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.close()

    threading.Thread(target=hang_up, daemon=True).start()
    (tmp_path / "recipe.py").write_text("from converge import file\nfile('/srv/x', content='x')\n")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "converge", "apply", "recipe.py", "-H",
             "root@127.0.0.1:%d" % port], cwd=tmp_path, capture_output=True, text=True,
            stdin=subprocess.DEVNULL, timeout=60,
            env={**os.environ, "HOME": str(tmp_path)})
    finally:
        server.close()
    assert done.returncode == 1
    assert "Traceback" not in done.stderr + done.stdout
    assert done.stderr == ""
    assert "  ! unreachable: cannot connect to root@127.0.0.1:%d: Error reading SSH protocol " \
        "banner" % port in done.stdout


def test_a_refused_connection_is_a_connect_error_chained() -> None:
    """The transport contract (issue 18): the socket's error becomes converge's
    ConnectError in ssh.translate, with the library's exception as its cause."""
    from converge.errors import ConnectError
    from converge.inventory import Host
    from converge.runner import unreachable
    from converge.transport.ssh import SSHTransport

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, not listening: refused
        transport = SSHTransport(Host(name="gone", address="127.0.0.1", port=port,
                                      user="root"), timeout=5.0)
        try:
            transport.facts()
        except ConnectError as exc:
            error = exc
        else:
            raise AssertionError("facts() on a closed port did not fail")
        finally:
            transport.close()
    assert str(error) == "gone: cannot connect to root@127.0.0.1:%d: Connection refused" % port
    assert isinstance(error.__cause__, ConnectionRefusedError)
    assert unreachable(error)
