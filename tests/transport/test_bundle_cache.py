"""The controller's cache of the built agent bundle: the bytes, the tree digest and the
loader's text a fresh build gives; an entry per state of the sources; only an entry
of this user's alone, undamaged, is read."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from converge.transport import bundle

ROOT = Path(__file__).resolve().parent.parent.parent


def fresh() -> dict:
    files = bundle._files()
    return {"zip": bundle._zip(files), "tree": bundle._tree_digest(files),
            "loader": bundle._make_loader_text()}


def test_what_a_run_uses_is_what_a_fresh_build_gives() -> None:
    built = fresh()
    assert bundle.build()[0] == built["zip"]
    assert bundle.tree_digest() == built["tree"]
    assert bundle._loader_text() == built["loader"]


def test_a_run_reads_the_bundle_from_the_cache_a_first_run_wrote() -> None:
    """The second process neither deflates nor parses the loader's source (both made
    impossible in it); it ships the same bytes."""
    try:
        if bundle._cache_dir() is None:
            pytest.skip("this user's cache folder is not private: no cache")
    except OSError as exc:
        pytest.skip("no cache folder: %s" % exc)
    code = ("import sys\nfrom converge.transport import bundle\n"
            "if sys.argv[1] == 'second':\n"
            "    bundle._zip = bundle._make_loader_text = bundle._files = None\n"
            "data, digest = bundle.build()\nbundle.loader_source(digest)\n"
            "print(digest, bundle.tree_digest())\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("COVERAGE_PROCESS_CONFIG", None)
    runs = [subprocess.run([sys.executable, "-c", code, which], capture_output=True,
                           text=True, env=env, cwd="/", timeout=60)
            for which in ("first", "second")]
    assert [r.returncode for r in runs] == [0, 0], runs
    assert runs[1].stdout == runs[0].stdout
    assert runs[0].stdout == "%s %s\n" % (bundle.build()[1], bundle.tree_digest())


def test_the_key_names_the_state_of_every_source_file(tmp_path: Path) -> None:
    package = tmp_path / "converge"
    shutil.copytree(ROOT / "converge", package, ignore=shutil.ignore_patterns("__pycache__"))
    key = bundle._cache_key(str(package))
    assert bundle._cache_key(str(package)) == key
    engine = package / "agent" / "engine.py"
    engine.write_bytes(engine.read_bytes())  # the same bytes, written again
    assert bundle._cache_key(str(package)) != key
    key = bundle._cache_key(str(package))
    (package / "resources" / "motd.py").write_text("")  # a type added
    assert bundle._cache_key(str(package)) != key
    (package / "resources" / "motd.py").unlink()
    assert bundle._cache_key(str(package)) == key
    (package / "cli.py").write_text("")  # not in the bundle
    assert bundle._cache_key(str(package)) == key


def entry(folder: Path) -> Path:
    bundle._cache_write(str(folder), "k" * 64, fresh())
    return folder / ("k" * 64 + ".bundle")


def test_an_entry_is_read_back_whole(tmp_path: Path) -> None:
    path = entry(tmp_path)
    assert bundle._cache_read(str(path)) == fresh()
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left
    assert path.stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("damage", [
    pytest.param(lambda p: p.write_bytes(p.read_bytes()[:-1] + bytes([p.read_bytes()[-1] ^ 1])),
                 id="zip-changed"),
    pytest.param(lambda p: p.write_bytes(p.read_bytes()[:1000]), id="truncated"),
    pytest.param(lambda p: p.write_bytes(b"{}\n" + p.read_bytes().split(b"\n", 1)[1]),
                 id="header-emptied"),
    pytest.param(lambda p: p.write_bytes(b"not json\n"), id="header-garbled"),
    pytest.param(lambda p: p.chmod(0o662), id="group-writable"),
    pytest.param(lambda p: (p.rename(p.with_name("x")), p.symlink_to(p.with_name("x"))),
                 id="symlink"),
])
def test_a_damaged_or_exposed_entry_is_not_read(tmp_path: Path, damage: object) -> None:
    path = entry(tmp_path)
    damage(path)  # type: ignore[operator]
    assert bundle._cache_read(str(path)) is None


def test_old_entries_are_dropped(tmp_path: Path) -> None:
    for index in range(bundle.CACHE_KEEP + 3):
        name = tmp_path / ("%064d.bundle" % index)
        name.write_bytes(b"")
        os.utime(name, ns=(index * 10**9, index * 10**9))
    kept = entry(tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == bundle.CACHE_KEEP and kept.name in names
    assert "%064d.bundle" % 0 not in names  # the oldest went first


def test_the_cache_folder_is_private_or_not_used(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    folder = bundle._cache_dir(str(home))
    assert folder == str(home / ".cache/converge/bundle")
    assert os.stat(folder).st_mode & 0o777 == 0o700
    assert bundle._cache_dir(str(home)) == folder
    (home / ".cache").chmod(0o775)  # a folder above it that others may write
    assert bundle._cache_dir(str(home)) is None
    (home / ".cache").chmod(0o755)
    os.chmod(folder, 0o757)
    assert bundle._cache_dir(str(home)) is None
