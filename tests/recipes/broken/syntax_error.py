# error: {path}:4: syntax error: '(' was never closed
from converge import file

file("/etc/motd", content="x"
