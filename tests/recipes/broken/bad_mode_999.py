# error: {path}:4: file[/etc/motd]: mode '999' is not an octal mode such as '0644'
from converge import file

file("/etc/motd", content="x", mode="999")
