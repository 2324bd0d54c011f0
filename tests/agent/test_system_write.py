"""System.write_atomic when its writer dies or the disk refuses: the old file stays
whole, the error names the file, and a dead writer's temp file is removed by the
next write into that directory.

The writers here are real child processes stopped by the kernel: RLIMIT_FSIZE
makes a write past the limit raise SIGXFSZ, which kills a process mid-write (or,
with the signal ignored, as Python ignores it by default, fails the write with
EFBIG). A writer that lives on lifts the limit after the write: the limit holds for
every file a process writes, and under ``pytest --cov`` coverage writes the child's
data file as it exits (cut at 4096 bytes, it was a "malformed" data file that the
combine skipped with a warning)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from converge.agent.system import System, temp_writer

OLD = b"old content\n"
CHILD = textwrap.dedent("""\
    import resource, signal, sys
    from converge.agent.system import System
    root, ignore = sys.argv[1], sys.argv[2] == "ignore"
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN if ignore else signal.SIG_DFL)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))
    try:
        System(root).write_atomic("/etc/app.conf", b"new " * 50000)
    except OSError as exc:
        print("%s|%s" % (exc.filename, exc.strerror))
    finally:  # the limit is for the write under test only, not for what runs at exit
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    """)


def writer(root: Path, ignore_sigxfsz: bool) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CHILD, str(root),
                           "ignore" if ignore_sigxfsz else "die"],
                          capture_output=True, text=True, timeout=60)


def temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if temp_writer(p.name) is not None)


def setup_root(tmp_path: Path) -> Path:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/app.conf").write_bytes(OLD)
    return tmp_path


def test_a_writer_killed_mid_write_leaves_the_old_file_and_a_temp_the_next_write_removes(
        tmp_path: Path) -> None:
    root = setup_root(tmp_path)
    done = writer(root, ignore_sigxfsz=False)
    assert done.returncode == -signal.SIGXFSZ, done.stderr
    assert (root / "etc/app.conf").read_bytes() == OLD
    left = temps(root / "etc")
    assert len(left) == 1 and left[0].startswith(".app.conf.converge-"), left
    assert (root / "etc" / left[0]).stat().st_size == 4096  # really cut mid-write
    System(str(root)).write_atomic("/etc/other.conf", b"x\n")
    assert temps(root / "etc") == []
    assert (root / "etc/app.conf").read_bytes() == OLD


def test_sweep_temps_clears_a_directory_no_write_visits(tmp_path: Path) -> None:
    root = setup_root(tmp_path)
    assert writer(root, ignore_sigxfsz=False).returncode == -signal.SIGXFSZ
    assert len(temps(root / "etc")) == 1
    System(str(root)).sweep_temps("/etc")
    assert temps(root / "etc") == []
    assert (root / "etc/app.conf").read_bytes() == OLD


def test_a_live_writers_temp_file_is_left_alone(tmp_path: Path) -> None:
    root = setup_root(tmp_path)
    live = root / "etc" / ".app.conf.converge-1-abcd1234.tmp"  # pid 1 always exists
    foreign = root / "etc" / ".converge-notours.tmp"
    live.write_bytes(b"half")
    foreign.write_bytes(b"?")
    System(str(root)).write_atomic("/etc/app.conf", b"new\n")
    assert live.exists() and foreign.exists()
    assert (root / "etc/app.conf").read_bytes() == b"new\n"


def test_a_refused_write_names_the_file_and_leaves_no_temp(tmp_path: Path) -> None:
    root = setup_root(tmp_path)
    done = writer(root, ignore_sigxfsz=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "/etc/app.conf|File too large"
    assert (root / "etc/app.conf").read_bytes() == OLD
    assert temps(root / "etc") == []


def test_temp_names() -> None:
    assert temp_writer(".motd.converge-4242-k3j_x9a2.tmp") == 4242
    assert temp_writer(".a.converge-1.converge-77-zz.tmp") == 77
    for name in ("motd", ".converge-abc.tmp", ".motd.converge-12.tmp", ".motd.converge-x-y.tmp",
                 "motd.converge-12-ab.tmp"):
        assert temp_writer(name) is None, name
