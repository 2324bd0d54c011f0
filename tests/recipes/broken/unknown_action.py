# error: {path}:4: file[/etc/motd]: action 'remove' is not one of: create, create_if_missing, delete, nothing
from converge import file

file("/etc/motd", action="remove")
