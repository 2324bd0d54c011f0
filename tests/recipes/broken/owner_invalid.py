# error: {path}:4: file[/etc/motd]: owner 'bad user' is not a valid name (letters, digits, '_', '-', '.'; or a numeric id)
from converge import file

file("/etc/motd", content="x", owner="bad user")
