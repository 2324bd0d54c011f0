"""Warm connections, the run's side (converge/transport/persist.py), without SSH:
durations, the private folder, the relay's frames. Against real sshd and another
user: tests/lab/test_warm_ssh.py."""

from __future__ import annotations

import os
import socket
import struct
from pathlib import Path

import pytest

from converge.errors import ConvergeError
from converge.transport import persist


@pytest.mark.parametrize("text, seconds", [
    pytest.param("60s", 60.0, id="seconds"), pytest.param("5m", 300.0, id="minutes"),
    pytest.param("1h", 3600.0, id="hours"), pytest.param("0.5s", 0.5, id="fraction"),
    pytest.param("90", 90.0, id="bare"), pytest.param("no", 0.0, id="no"),
    pytest.param("0", 0.0, id="zero"), pytest.param(" OFF ", 0.0, id="off"),
])
def test_durations(text: str, seconds: float) -> None:
    assert persist.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "-5s", "5d", "", "nan", "inf"])
def test_bad_durations_say_what_is_expected(text: str) -> None:
    with pytest.raises(ConvergeError, match="expected a duration such as 60s"):
        persist.parse_duration(text)


def test_the_default_is_a_minute_unless_the_environment_says(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv(persist.ENV_PERSIST, raising=False)
    assert persist.default_persist() == 60.0
    monkeypatch.setenv(persist.ENV_PERSIST, "no")
    assert persist.default_persist() == 0.0
    monkeypatch.setenv(persist.ENV_PERSIST, "2m")
    assert persist.default_persist() == 120.0


def test_the_folder_is_made_private(tmp_path: Path) -> None:
    folder = tmp_path / "a" / "ssh"
    assert persist.private_dir(str(folder)) == str(folder)
    assert folder.stat().st_mode & 0o777 == 0o700


def test_a_folder_others_can_enter_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "open"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    with pytest.raises(persist.PersistError, match=r"is not private \(owner \d+, mode 0755"):
        persist.private_dir(str(folder))


def test_a_symlink_is_refused_where_the_folder_should_be(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(real)
    with pytest.raises(persist.PersistError, match="is not a folder"):
        persist.private_dir(str(tmp_path / "link"))


def test_the_folder_follows_the_environment_then_the_account(tmp_path: Path,  # type: ignore[no-untyped-def]
                                                             monkeypatch) -> None:
    monkeypatch.setenv(persist.ENV_DIR, str(tmp_path / "mine"))
    assert persist.directory() == str(tmp_path / "mine")
    monkeypatch.delenv(persist.ENV_DIR)
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    assert persist.directory() == str(runtime / "converge-ssh")
    runtime.chmod(0o755)  # not private: not used; HOME is not used either
    monkeypatch.setenv("HOME", str(tmp_path))
    import pwd

    home = pwd.getpwuid(os.geteuid()).pw_dir
    assert persist.directory() == os.path.join(home, ".cache", "converge", "ssh")


def test_no_broker_means_nothing_to_disconnect(tmp_path: Path) -> None:
    assert persist.disconnect(folder=str(tmp_path / "none")) == 0
    assert persist.request({"op": "status"}, str(tmp_path / "none")) is None


def frame(kind: bytes, data: bytes) -> bytes:
    return persist.FRAME.pack(kind, len(data)) + data


def test_the_relay_splits_stdout_stderr_and_the_exit_status() -> None:
    ours, broker = socket.socketpair()
    channel = persist.RelayChannel(ours)
    broker.sendall(frame(persist.STDOUT, b"CONVERGE/1 abc ready py=3.11.2\n{\"ev")
                   + frame(persist.STDERR, b"warn") + frame(persist.STDOUT, b"ent\": 1}\n"))
    out = channel.makefile("rb", -1)
    assert out.readline() == b"CONVERGE/1 abc ready py=3.11.2\n"
    assert out.readline() == b'{"event": 1}\n'
    assert channel.recv_stderr(100) == b"warn"
    assert not channel.exit_status_ready()
    channel.sendall(b"request\n")
    kind, size = persist.FRAME.unpack(broker.recv(persist.FRAME.size))
    assert (kind, broker.recv(size)) == (persist.STDIN, b"request\n")
    broker.sendall(frame(persist.EXIT, struct.pack("!i", 127)))
    broker.close()
    assert channel.recv_exit_status() == 127
    assert out.readline() == b"" and channel.recv_stderr(10) == b""
    channel.close()


def test_a_relay_whose_broker_is_gone_ends_without_a_status() -> None:
    ours, broker = socket.socketpair()
    channel = persist.RelayChannel(ours)
    broker.close()
    assert channel.recv_exit_status() == -1
    assert channel.makefile().read() == b""
    channel.close()
