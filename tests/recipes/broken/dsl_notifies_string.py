# error: {path}:4: file[/etc/motd]: notifies takes svc.restart or [('restart', svc)], not 'service[chrony]'
from converge import file

file("/etc/motd", content="x", notifies="service[chrony]")
