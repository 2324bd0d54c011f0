# error: {path}:5: file[/etc/motd]: notification timing 'later' is not one of: delayed, immediately
from converge import file, service

chrony = service("chrony")
file("/etc/motd", content="x", notifies=[("restart", chrony, "later")])
