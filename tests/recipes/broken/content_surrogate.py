# error: {path}:4: file[/etc/motd]: content is not valid UTF-8 text (it holds a lone surrogate); give bytes for binary content
from converge import file

file("/etc/motd", content="caf\udce9")
