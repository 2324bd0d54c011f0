# error: {path}:4: file[/etc/motd]: mode 644 is a decimal number; write it as 0o644 or '0644'
from converge import file

file("/etc/motd", content="x", mode=644)
