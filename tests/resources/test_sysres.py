"""Unit tables for mount (options as the kernel reports them, fstab edits),
hostname (/etc/hosts edits), systemd_unit (rendering) and timezone (link
targets), and their file halves converged under a temporary root."""

from __future__ import annotations

from typing import List, Optional

import pytest

from converge.resources._mounts import fstab_edit, live, missing_options, unescape
from converge.resources.hostname import hosts_edit
from converge.resources.systemd_unit import render
from converge.resources.timezone import zone_of
from tests.conftest import Converger, statuses


@pytest.mark.parametrize("desired, have, missing", [
    pytest.param(["size=8m"], ["rw", "size=8192k"], [], id="size-units"),
    pytest.param(["size=8m"], ["rw", "size=16384k"], ["size=8m"], id="size-differs"),
    pytest.param(["mode=1777"], ["rw", "size=8192k"], [], id="default-not-shown"),
    pytest.param(["mode=0755"], ["rw", "mode=1777"], ["mode=0755"], id="mode-differs"),
    pytest.param(["noexec", "exec"], ["rw"], ["noexec"], id="flag-missing"),
    pytest.param(["exec", "rw"], ["rw", "noexec"], ["exec"], id="negation-present"),
    pytest.param(["defaults", "nofail", "x-systemd.automount"], ["rw"], [], id="fstab-only"),
])
def test_options_compared_as_the_kernel_reports_them(desired: List[str], have: List[str],
                                                     missing: List[str]) -> None:
    assert missing_options(desired, have) == missing


FSTAB = "# comment\nUUID=1 / ext4 defaults 0 1\ntmpfs /mnt/a tmpfs size=1m 0 0\n" \
        "tmpfs /mnt/a tmpfs size=2m 0 0\n"


@pytest.mark.parametrize("text, point, new, expected", [
    pytest.param(FSTAB, "/mnt/a", "tmpfs /mnt/a tmpfs size=8m 0 0",
                 "# comment\nUUID=1 / ext4 defaults 0 1\ntmpfs /mnt/a tmpfs size=8m 0 0\n",
                 id="stale-replaced-duplicate-dropped"),
    pytest.param(FSTAB, "/mnt/a", None, "# comment\nUUID=1 / ext4 defaults 0 1\n",
                 id="removed"),
    pytest.param(None, "/mnt/b", "x /mnt/b tmpfs defaults 0 0", "x /mnt/b tmpfs defaults 0 0\n",
                 id="no-fstab"),
    pytest.param("a /my\\040data tmpfs defaults 0 0\n", "/my data", None, "", id="escaped"),
])
def test_fstab_edit(text: Optional[str], point: str, new: Optional[str], expected: str) -> None:
    assert fstab_edit(text, point, new) == expected


def test_mountinfo_top_mount_and_escapes(converger: Converger) -> None:
    converger.path("/proc/self").mkdir(parents=True)
    converger.path("/proc/self/mountinfo").write_text(
        "22 1 0:21 / /mnt/my\\040data rw,nosuid - tmpfs one rw,size=1024k\n"
        "23 22 0:22 / /mnt/my\\040data rw - tmpfs two rw,size=2048k\n")
    assert live(converger.system, "/mnt/my data") == {
        "source": "two", "fstype": "tmpfs", "options": ["rw", "rw", "size=2048k"]}
    assert unescape("a\\011b\\134") == "a\tb\\"


@pytest.mark.parametrize("text, address, line, expected", [
    pytest.param("127.0.0.1 localhost\n127.0.1.1 old\n# c\n127.0.1.1 dup\n", "127.0.1.1",
                 "127.0.1.1\tnew", "127.0.0.1 localhost\n127.0.1.1\tnew\n# c\n", id="replaced"),
    pytest.param("127.0.0.1 localhost\n::1 localhost\n", "10.0.0.1", "10.0.0.1\tdb",
                 "127.0.0.1 localhost\n10.0.0.1\tdb\n::1 localhost\n", id="after-localhost"),
    pytest.param(None, "127.0.1.1", "127.0.1.1\tx", "127.0.1.1\tx\n", id="no-file"),
    pytest.param("# 127.0.1.1 commented\n", "127.0.1.1", "127.0.1.1\tx",
                 "# 127.0.1.1 commented\n127.0.1.1\tx\n", id="comment-kept"),
])
def test_hosts_edit(text: Optional[str], address: str, line: str, expected: str) -> None:
    assert hosts_edit(text, address, line) == expected


def test_unit_rendered_in_order_with_repeated_keys() -> None:
    assert render({"Unit": {"Description": "x"}, "Service": {
        "Environment": ["A=1", "B=2"], "RemainAfterExit": True}}) == (
        "[Unit]\nDescription=x\n\n[Service]\nEnvironment=A=1\nEnvironment=B=2\n"
        "RemainAfterExit=yes\n")


@pytest.mark.parametrize("link, zone", [
    pytest.param("/usr/share/zoneinfo/Europe/Paris", "Europe/Paris", id="absolute"),
    pytest.param("../usr/share/zoneinfo/Europe/Paris", "Europe/Paris", id="relative"),
    pytest.param("/etc/other", None, id="elsewhere"),
    pytest.param(None, None, id="not-a-link"),
])
def test_zone_of_link(link: Optional[str], zone: Optional[str]) -> None:
    assert zone_of(link) == zone


def test_file_halves_under_a_root_are_idempotent(converger: Converger) -> None:
    (converger.root / "usr/share/zoneinfo/Europe").mkdir(parents=True)
    (converger.root / "usr/share/zoneinfo/Europe/Paris").write_bytes(b"TZif")
    recipe = """\
from converge import mount, systemd_unit, timezone
mount("/mnt/a", "tmpfs", fstype="tmpfs", options=["size=8m"], action="enable")
systemd_unit("a.service", {"Service": {"ExecStart": "/bin/true"}}, triggers_reload=False)
timezone("Europe/Paris")
"""
    (converger.root / "etc/systemd/system").mkdir(parents=True)
    first = converger.run(recipe)
    assert statuses(first) == ["updated"] * 3, first
    assert converger.path("/etc/fstab").read_text() == "tmpfs /mnt/a tmpfs size=8m 0 0\n"
    assert converger.path("/etc/timezone").read_text() == "Europe/Paris\n"
    assert statuses(converger.run(recipe)) == ["up_to_date"] * 3
