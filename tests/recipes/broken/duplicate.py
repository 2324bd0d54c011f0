# error: {path}:5: file[/etc/motd]: declared again with different properties (first declared at {path}:4)
from converge import file

file("/etc/motd", content="one")
file("/etc/motd", content="two")
