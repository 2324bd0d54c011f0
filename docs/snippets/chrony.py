from converge import package, service, template

package("chrony")
chrony = service("chrony", action="enable")
template("/etc/chrony/chrony.conf", source="chrony.conf.j2", mode="0644",
         variables={"servers": ["0.debian.pool.ntp.org", "1.debian.pool.ntp.org"]},
         notifies=chrony.restart)
