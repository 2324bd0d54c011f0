from converge import directory, file, node, template

directory("/srv/app", mode="0750", owner="root", recursive=True)
file("/etc/motd", content="Welcome to %s\n" % node.hostname, mode="0644")
template("/etc/app.conf", source="app.conf.j2", variables={"workers": node.cpu_count})
