"""sysstat: install sysstat, collect every N minutes, keep N days (see README.md)."""

from converge import attrs, cron, line, node, package

conf = attrs.sysstat
debian = node.platform_family == "debian"

package("sysstat")

if debian:
    line("/etc/default/sysstat", 'ENABLED="%s"' % ("true" if conf.enabled else "false"),
         match=r"^ENABLED=")
    history_file, collector = "/etc/sysstat/sysstat", "/usr/lib/sysstat/debian-sa1"
else:
    history_file, collector = "/etc/sysconfig/sysstat", "/usr/lib64/sa/sa1"

line(history_file, "HISTORY=%d" % int(conf.history), match=r"^HISTORY=")

# The collection cron the seed describes; on systemd machines the package's
# sysstat-collect.timer runs too, so sample files just get an extra point.
cron("sysstat-collect", command="%s 1 1" % collector, minute="*/%d" % int(conf.interval),
     user="root", cron_file="sysstat-converge",
     action="create" if conf.enabled else "delete")

if conf.alias_24h:
    line("/root/.bashrc", 'alias sar="LANG=C sar"')
