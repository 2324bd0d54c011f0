"""The argument lists of useradd and usermod for a ``user`` resource (no shell:
each value is one argument, after the options come ``--`` and the name)."""

from __future__ import annotations

from typing import Any, Dict, List

from . import _accounts as acc


def useradd(self: Any) -> List[str]:
    """useradd for a new user: every declared field; -m or -M always said."""
    argv = ["useradd"]
    for flag, value in (("-u", self.uid), ("-g", self.gid), ("-d", self.home),
                        ("-s", self.shell), ("-c", self.comment)):
        if value is not None:
            argv += [flag, str(value)]
    argv += ["-m"] if self.manage_home else ["-M"]
    if self.system:
        argv.append("-r")
    if self.groups:
        argv += ["-G", ",".join(self.groups)]
    if self.expire_date is not None:
        argv += ["-e", acc.expire_arg(self.expire_date)]
    return argv + ["--", self.username]


def usermod(self: Any, kinds: Any, current: Dict[str, Any]) -> List[str]:
    """usermod for the fields that differ (the caller adds -- and the name)."""
    argv = ["usermod"]
    if "uid" in kinds:
        argv += ["-u", str(self.uid)]
    if "gid" in kinds:
        argv += ["-g", str(current["want_gid"])]
    if "home" in kinds:
        argv += ["-d", str(self.home)] + (["-m"] if self.manage_home and
                                            current["home_exists"] else [])
    for flag, field in (("-s", "shell"), ("-c", "comment")):
        if field in kinds:
            argv += [flag, str(getattr(self, field))]
    if "expire_date" in kinds:
        argv += ["-e", acc.expire_arg(str(self.expire_date))]
    if "groups" in kinds and self.groups is not None:
        if self.append:
            argv += ["-a", "-G", ",".join(g for g in self.groups
                                          if g not in current["groups"])]
        else:
            argv += ["-G", ",".join(self.groups)]
    return argv
