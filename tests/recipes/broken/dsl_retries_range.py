# error: {path}:4: file[/etc/motd]: retries '101' is out of range 0..100
from converge import file

file("/etc/motd", content="x", retries=101)
