"""site: a small web site, written with other resources (a composite type).

Example::

    site("blog", port=8081)

Its actions run on the controller while the recipe compiles: each declares
resources with the ordinary recipe functions, and they converge on the target
indented under ``* site[blog] action create``.
"""

from converge import directory, link, systemd_unit, template
from converge.resources._base import prop
from converge.resources._composite import Composite


class Site(Composite, type_name="site"):
    """A web site: its page, its configuration enabled by a link, its service."""

    actions = ("create", "delete")
    notify_only = ("restart",)

    name: str = prop(doc="The site's name.", identity=True)
    port: int = prop(8080, doc="The port it listens on.")

    def normalise(self) -> None:
        if not isinstance(self.port, int) or not 1024 <= self.port <= 65535:
            raise self.fail("port must be a number from 1024 to 65535, not %r" % (self.port,))

    def create(self) -> None:
        root = "/srv/sites/%s" % self.name
        directory(root, mode="0755", recursive=True)
        template(root + "/index.html", source="index.html.j2", variables={"name": self.name})
        directory("/etc/sites/enabled", mode="0755", recursive=True)
        template("/etc/sites/%s.conf" % self.name, source="site.conf.j2",
                 variables={"name": self.name, "port": self.port, "root": root})
        link("/etc/sites/enabled/%s.conf" % self.name, to="/etc/sites/%s.conf" % self.name)
        systemd_unit(self.unit, {
            "Unit": {"Description": "The %s site" % self.name},
            "Service": {"ExecStart": "/usr/bin/python3 -m http.server %d --directory %s"
                                     % (self.port, root)},
            "Install": {"WantedBy": "multi-user.target"},
        })

    def delete(self) -> None:
        systemd_unit(self.unit, action=["stop", "delete"])
        link("/etc/sites/enabled/%s.conf" % self.name, action="delete")

    def restart(self) -> None:
        systemd_unit(self.unit, action="restart")

    @property
    def unit(self) -> str:
        return "site-%s.service" % self.name
