# error: {path}:4: file[/etc/motd]: backup '-1' is out of range 0..1000
from converge import file

file("/etc/motd", content="x", backup=-1)
