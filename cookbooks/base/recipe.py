"""base: what every new server gets first: name, time zone, administrators with
their SSH keys and sudo, package sources with their keys, a scratch tmpfs, and a
heartbeat service (see README.md)."""

from converge import (
    apt_repository,
    attrs,
    authorized_key,
    directory,
    group,
    hostname,
    mount,
    node,
    systemd_unit,
    timezone,
    user,
)

conf = attrs.base

hostname(conf.hostname or node.hostname)
timezone(conf.timezone)

# -- administrators ------------------------------------------------------------------
group(conf.admin_group)
for admin in conf.users:
    user(admin["name"], comment=admin.get("comment"), shell="/bin/bash",  # noqa: S604 - a login shell
         manage_home=True, groups=[conf.admin_group])
    for key in admin.get("keys") or []:
        authorized_key(admin["name"], key)

# -- package sources -------------------------------------------------------------------
for source in conf.apt_repositories:
    apt_repository(source["name"], source["uri"], distribution=source.get("distribution"),
                   components=source.get("components", ["main"]), key=source.get("key"))

# -- scratch space -----------------------------------------------------------------------
directory(conf.scratch.path, mode="1777")
mount(conf.scratch.path, "tmpfs", fstype="tmpfs",
      options=["size=%s" % conf.scratch.size, "mode=1777", "nosuid", "nodev"],
      action=["mount", "enable"] if conf.scratch.mount_now else "enable")

# -- a small service ----------------------------------------------------------------------
if conf.heartbeat.enabled:
    systemd_unit(conf.heartbeat.unit, {
        "Unit": {"Description": "Say in the system log that this machine is up",
                 "After": "network-online.target"},
        "Service": {"Type": "oneshot",
                    "ExecStart": "/usr/bin/logger -t base-heartbeat \"%H is up\""},
        "Install": {"WantedBy": "multi-user.target"},
    }, action=["create", "enable"])
