# error: {path}:4: file[/etc/motd]: content must be str or bytes, not int
from converge import file

file("/etc/motd", content=42)
