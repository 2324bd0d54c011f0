"""Run stores to test against: a SQLite file, and a real PostgreSQL server (Debian's
package) started for the session as a throwaway cluster in a temporary directory,
run by the unprivileged `postgres` user, listening only on a Unix socket there."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import pytest


def _missing(what: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail("%s is missing: scripts/install.sh --dev installs it" % what)
    pytest.skip("%s is not installed (scripts/install.sh --dev installs it)" % what)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """postgresql://postgres@/postgres?host=SOCKET_DIR for a cluster of our own."""
    initdb = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not initdb:
        _missing("PostgreSQL (the postgresql package)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _missing("psycopg")
    try:
        owner = pwd.getpwnam("postgres")
    except KeyError:
        _missing("the postgres user (the postgresql package)")
    if os.geteuid() != 0:
        pytest.skip("the PostgreSQL fixture runs the server as the postgres user: needs root")
    bindir = os.path.dirname(initdb[-1])
    folder = tempfile.mkdtemp(prefix="converge-pg-")
    os.chown(folder, owner.pw_uid, owner.pw_gid)

    def as_postgres(*argv: str) -> None:
        done = subprocess.run(["runuser", "-u", "postgres", "--", *argv], capture_output=True,
                              text=True, timeout=120, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stdout + done.stderr

    try:
        as_postgres(bindir + "/initdb", "-D", folder + "/data", "--auth=trust", "-U",
                    "postgres", "-E", "UTF8", "--no-sync")
        as_postgres(bindir + "/pg_ctl", "-D", folder + "/data", "-l", folder + "/log", "-o",
                    "-k %s -c listen_addresses='' -c fsync=off" % folder, "-w", "start")
        yield "postgresql://postgres@/postgres?host=%s" % folder
    finally:
        if os.path.exists(folder + "/data/postmaster.pid"):
            as_postgres(bindir + "/pg_ctl", "-D", folder + "/data", "-m", "fast", "-w",
                        "stop")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def fresh_postgres(postgres_url: str) -> str:
    """The session's server with the store's tables dropped: a new, empty store."""
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for table in ("run_resources", "run_hosts", "runs", "converge_schema"):
            conn.execute("DROP TABLE IF EXISTS %s" % table)  # noqa: S608 - fixed names
    return postgres_url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store kind in turn, empty."""
    if request.param == "sqlite":
        return "sqlite:///%s" % (tmp_path / "store.db")
    return str(request.getfixturevalue("fresh_postgres"))
