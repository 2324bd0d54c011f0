# error: {path}:4: file[/etc/motd]: content must be a string or bytes, not an int
from converge import file

file("/etc/motd", content=42)
