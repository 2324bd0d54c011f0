"""`converge test` takes what apply takes beyond the recipe options: tags and vault
passwords, handed to both runs in the node."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from converge import vault

pytestmark = pytest.mark.lab

RECIPE = """\
from converge import file
file("/srv/a.txt", content=attrs.secret + "\\n", tags="a")
file("/srv/b.txt", content="b\\n", tags="b")
"""


def test_converge_test_takes_tags_and_vault_passwords(lab: object, tmp_path: Path) -> None:
    book = tmp_path / "book"
    book.mkdir()
    (book / "recipe.py").write_text(RECIPE)
    (tmp_path / "pw").write_text("pw\n")
    secret = "s3cret-%s" % os.urandom(4).hex()
    (book / "attributes.yaml").write_text(vault.encrypt(("secret: %s\n" % secret).encode(),
                                                        b"pw"))
    done = subprocess.run([sys.executable, "-m", "converge", "test", "book", "--tags", "a",
                           "--vault-password-file", "pw"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "file[/srv/a.txt]" in done.stdout and "file[/srv/b.txt]" not in done.stdout
    assert secret not in done.stdout + done.stderr
    refused = subprocess.run([sys.executable, "-m", "converge", "test", "book"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=300,
                             stdin=subprocess.DEVNULL,
                             env={**os.environ, "CONVERGE_VAULT_PASSWORD_FILE": ""})
    assert refused.returncode != 0
    assert "no vault password was given" in refused.stdout + refused.stderr
