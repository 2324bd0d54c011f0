# error: {path}:4: file[/etc/motd]: give either content or source, not both
from converge import file

file("/etc/motd", content="x", source="motd.txt")
