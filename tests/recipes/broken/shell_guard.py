# error: {path}:4: file[/etc/motd]: only_if must be an argument list such as ['test', '-f', '/etc/x'] or a callable; a string is never run by a shell (write ['sh', '-c', 'test -f /x'] to say so)
from converge import file

file("/etc/motd", content="x", only_if="test -f /x")
