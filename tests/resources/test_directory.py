"""directory: create (recursive), mode, owner, delete."""

from __future__ import annotations

import stat

import pytest

from tests.conftest import Converger, statuses


@pytest.mark.parametrize(
    "recipe, lines, status",
    [
        pytest.param('directory("/srv/a", mode="0700")',
                     ["create new directory /srv/a", "change mode from none to '0700'"],
                     "updated", id="create"),
        pytest.param('directory("/srv/a/b/c", recursive=True)',
                     ["create new directory /srv/a/b/c"], "updated", id="recursive"),
        pytest.param('directory("/srv/a/b/c")', ["create new directory /srv/a/b/c"], "failed",
                     id="missing-parent-fails"),
        pytest.param('directory("/srv/none", action="delete")', [], "up_to_date",
                     id="delete-absent"),
    ],
)
def test_directory_table(converger: Converger, recipe: str, lines, status) -> None:
    (converger.root / "srv").mkdir()
    events = converger.run("from converge import directory\n" + recipe + "\n")
    assert events[0]["changes"] == lines
    assert events[0]["status"] == status


def test_directory_mode_change_then_up_to_date(converger: Converger) -> None:
    target = converger.path("/srv/d")
    target.mkdir(parents=True)
    target.chmod(0o777)
    recipe = 'from converge import directory\ndirectory("/srv/d", mode="0755", owner="www-data")\n'
    first = converger.run(recipe)
    assert first[0]["changes"] == ["change mode from '0777' to '0755'",
                                   "change owner from 'root' to 'www-data'"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o755
    assert statuses(converger.run(recipe)) == ["up_to_date"]


def test_directory_delete_recursive(converger: Converger) -> None:
    (converger.path("/srv/d/sub")).mkdir(parents=True)
    (converger.path("/srv/d/sub/f")).write_text("x")
    events = converger.run('from converge import directory\n'
                           'directory("/srv/d", action="delete")\n')
    assert events[0]["status"] == "failed"
    assert "use recursive=True" in events[0]["error"]
    events = converger.run('from converge import directory\n'
                           'directory("/srv/d", action="delete", recursive=True)\n')
    assert events[0]["changes"] == ["delete directory /srv/d"]
    assert not converger.path("/srv/d").exists()
