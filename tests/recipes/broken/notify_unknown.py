# error: {path}:4: file[/etc/motd]: notifies file[/etc/other], which no recipe declares
from converge import file

file("/etc/motd", content="x", notifies=("create", "file[/etc/other]"))
