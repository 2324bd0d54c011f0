"""chrony: install chrony, configure its servers, restart it on change (README.md)."""

from converge import node, package, service, template

if node.platform_family == "debian":
    config, driftfile, unit = "/etc/chrony/chrony.conf", "/var/lib/chrony/chrony.drift", "chrony"
else:
    config, driftfile, unit = "/etc/chrony.conf", "/var/lib/chrony/drift", "chronyd"

package("chrony")
chronyd = service(unit, action="enable")
template(config, source="chrony.conf.j2", variables={"driftfile": driftfile}, mode="0644",
         notifies=chronyd.restart)
