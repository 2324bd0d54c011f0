from converge import template

template("/etc/motd", source="motd.j2", mode="0644")
