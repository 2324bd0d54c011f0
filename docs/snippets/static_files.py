from converge import file

file("/etc/issue.net", source="issue.net", mode="0644", owner="root", group="root")
file("/etc/motd", content="Authorized access only.\n", mode="0644")
