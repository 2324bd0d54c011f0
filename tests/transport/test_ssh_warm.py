"""The SSH transport connects while the recipe compiles; a compile error must
still end the run at once, not wait for a host that is slow to answer."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path

from converge.inventory import Host
from converge.transport.ssh import SSHTransport


def test_a_compile_error_returns_while_a_host_is_still_connecting(tmp_path: Path) -> None:
    """A listener on 127.0.0.1 that accepts and never speaks SSH: paramiko would
    wait its 10 s banner timeout. The broken recipe must be reported well before."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        recipe = tmp_path / "recipe.py"
        recipe.write_text("from converge import file\nfile('/etc/motd', mode='999')\n")
        done = subprocess.run(
            [sys.executable, "-m", "converge", "apply", str(recipe),
             "-H", "root@127.0.0.1:%d" % port], capture_output=True, text=True,
            stdin=subprocess.DEVNULL, timeout=8, cwd=tmp_path)
    assert done.returncode == 1
    assert "recipe.py:2: 127.0.0.1:%d: file[/etc/motd]: mode '999'" % port in done.stderr


def test_closing_while_warming_leaves_the_connection_to_the_warm_thread() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        transport = SSHTransport(Host(name="slow", address="127.0.0.1",
                                      port=silent.getsockname()[1], user="root"),
                                 timeout=1.0)
        warm = threading.Thread(target=transport.warm, daemon=True)
        warm.start()
        transport.close()  # returns at once: warm() is still waiting for a banner
        warm.join(timeout=30)
        assert not warm.is_alive()
        assert transport._client is None  # the warm thread closed what it opened
