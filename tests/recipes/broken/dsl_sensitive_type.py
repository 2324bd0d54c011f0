# error: {path}:4: file[/etc/motd]: sensitive must be True or False, not 'yes'
from converge import file

file("/etc/motd", content="x", sensitive="yes")
