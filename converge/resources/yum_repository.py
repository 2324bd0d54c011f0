"""yum_repository: a dnf/yum repository definition in /etc/yum.repos.d.

Example::

    yum_repository("nginx", "https://nginx.org/packages/rhel/$releasever/$basearch/",
                   description="nginx stable",
                   gpgkey="https://nginx.org/keys/nginx_signing.key")
    yum_repository("epel", mirrorlist="https://mirrors.example.com/epel?arch=$basearch",
                   options={"skip_if_unavailable": True, "priority": 10})
    yum_repository("old", action="delete")

``create`` writes /etc/yum.repos.d/<repo_name>.repo, a file converge owns whole
(mode 0644): one ``[repo_name]`` section with name, baseurl, mirrorlist or
metalink, enabled, gpgcheck, gpgkey, then ``options`` (extra keys such as
priority, sslverify, module_hotfixes) sorted by name. Several URLs or keys
(a list) are written one per line, indented, as dnf reads them. dnf's own
variables ($releasever, $basearch) are written as given. ``delete`` removes
the file. Rollback restores the previous file.

No ``dnf makecache`` runs: dnf keeps a repository's metadata under a name made
from its URLs, so a new or changed repository is fetched by the next dnf
command that needs it (a ``package`` resource included), and a mirror that is
down fails that command, not the definition.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Union
from urllib.parse import urlsplit

from ..agent import managed
from . import _repo_files as files
from . import _validate as v
from ._base import Change, Resource, prop

DIR = "/etc/yum.repos.d"
REPO_ID = re.compile(r"[A-Za-z0-9_:-][A-Za-z0-9_.:-]*")
OPTION = re.compile(r"[a-z][a-z0-9_]*")
SCHEMES = ("http", "https", "ftp", "file")
MANAGED = ("name", "baseurl", "mirrorlist", "metalink", "enabled", "gpgcheck", "gpgkey")


class YumRepository(Resource, type_name="yum_repository"):
    """Create or delete a dnf/yum repository (.repo file)."""

    actions = ("create", "delete")

    repo_name: str = prop(doc="The repository id: [repo_name] in /etc/yum.repos.d/"
                          "<repo_name>.repo (letters, digits, '_', '-', '.', ':').",
                          identity=True)
    baseurl: Union[str, List[str], None] = prop(None, doc="URL of the repository (the "
                                                "folder holding repodata/), or a list of "
                                                "mirrors of it.")
    description: Optional[str] = prop(None, doc="The human name (name=). Unset: repo_name.")
    gpgkey: Union[str, List[str], None] = prop(None, doc="URL of the signing key, or a list "
                                               "of them (file:///etc/pki/rpm-gpg/... or "
                                               "https://...).")
    gpgcheck: bool = prop(True, doc="Check the packages' signatures.")
    enabled: bool = prop(True, doc="Use the repository (enabled=1).")
    mirrorlist: Optional[str] = prop(None, doc="URL of a list of mirrors, instead of baseurl.")
    metalink: Optional[str] = prop(None, doc="URL of a metalink document, instead of baseurl.")
    options: Optional[Dict[str, Any]] = prop(None, doc="Other keys of the section, such as "
                                             "{'priority': 10, 'sslverify': False}, written "
                                             "sorted by name (True/False become 1/0).")

    def normalise(self) -> None:
        name = self.repo_name
        if not REPO_ID.fullmatch(name) or len(name) > 200:
            raise self.fail("repo_name %s is not a repository id (letters, digits, '_', '-', "
                            "'.', ':'; no '/', spaces, and not starting with '.')"
                            % v.quoted(name))
        self.baseurl = self._urls(self.baseurl, "baseurl")
        self.gpgkey = self._urls(self.gpgkey, "gpgkey")
        for what in ("mirrorlist", "metalink"):
            value = getattr(self, what)
            if value is not None:
                setattr(self, what, self._urls(value, what)[0])
        if self.description is not None:
            self.description = v.text(self.description, "description", one_line=True).strip()
        self.options = self._checked_options(self.options)

    def _urls(self, value: Any, what: str) -> List[str]:
        urls = [] if value is None else [value] if isinstance(value, str) else value
        if not isinstance(urls, (list, tuple)):
            raise self.fail("%s must be a URL or a list of URLs, not %r" % (what, value))
        for url in urls:
            parts = urlsplit(url) if isinstance(url, str) else None
            if parts is None or parts.scheme not in SCHEMES or \
                    any(c.isspace() or c == "\0" for c in url) or \
                    (parts.scheme != "file" and not parts.netloc):
                raise self.fail("%s %s is not an http://, https://, ftp:// or file:/// URL"
                                % (what, v.quoted(url)))
        return list(urls)

    def _checked_options(self, options: Any) -> Dict[str, str]:
        if options is None:
            return {}
        if not isinstance(options, dict):
            raise self.fail("options must be a dict such as {'priority': 10}, not %r"
                            % (options,))
        out = {}
        for key, value in options.items():
            if not isinstance(key, str) or not OPTION.fullmatch(key):
                raise self.fail("option name %s is not a repository option such as "
                                "'priority'" % v.quoted(key))
            if key in MANAGED:
                raise self.fail("option %r is a property of yum_repository: give it as %s="
                                % (key, "description" if key == "name" else key))
            if isinstance(value, bool):
                value = "1" if value else "0"
            elif isinstance(value, (int, float)):
                value = str(value)
            elif not isinstance(value, str):
                raise self.fail("option %s: %r is not a string, number or bool" % (key, value))
            out[key] = v.text(value, "option %s" % key, one_line=True)
        return out

    def check_action(self) -> None:
        if self.action == "create" and not (self.baseurl or self.mirrorlist or self.metalink):
            raise self.fail("create needs baseurl, mirrorlist or metalink")

    @property
    def path(self) -> str:
        return "%s/%s.repo" % (DIR, self.repo_name)

    def writes(self) -> List[str]:
        return [self.path]

    def text(self) -> str:
        lines = ["# Managed by converge: %s" % self.identity, "[%s]" % self.repo_name,
                 "name=%s" % (self.description or self.repo_name)]
        for key, value in (("baseurl", self.baseurl), ("mirrorlist", self.mirrorlist),
                           ("metalink", self.metalink)):
            if value:
                lines.append("%s=%s" % (key, _joined(value)))
        lines += ["enabled=%d" % self.enabled, "gpgcheck=%d" % self.gpgcheck]
        if self.gpgkey:
            lines.append("gpgkey=%s" % _joined(self.gpgkey))
        lines += ["%s=%s" % (key, value) for key, value in sorted((self.options or {}).items())]
        return "\n".join(lines) + "\n"

    # -- target ----------------------------------------------------------------------

    def current(self, system: Any) -> Dict[str, Any]:
        return files.state(system, self.path)

    def changes(self, current: Dict[str, Any]) -> List[Change]:
        old, me = current["data"], self.path
        if self.action == "delete":
            present = old is not None or current["other"]
            return [Change("delete %s" % me, data=files.target(me, None))] if present else []
        want = self.text().encode("utf-8")
        if old != want:
            verb = "create" if old is None else "update content in"
            return [managed.change(self, "%s %s" % (verb, me), files.target(me, want), old)]
        if current["mode"] != "0644":
            return [Change("change mode of %s from '%s' to '0644'" % (me, current["mode"]),
                           data=files.target(me, want))]
        return []

    def before(self, system: Any, current: Any, changes: List[Change]) -> Dict[str, Any]:
        """Journal hook: the .repo file as it was (a rollback puts it back)."""
        return managed.journal_files(system, self.path)

    def apply(self, system: Any, changes: List[Change]) -> None:
        for change in changes:
            managed.write(system, change.data)


def _joined(value: Union[str, List[str]]) -> str:
    """One URL, or several one per line, continued by indentation (as dnf reads)."""
    urls = [value] if isinstance(value, str) else value
    return "\n        ".join(urls)
