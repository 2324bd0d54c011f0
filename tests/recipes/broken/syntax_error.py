# error: {path}:6: syntax error: '(' was never closed
#|   file("/etc/motd", content="x"
#|       ^
from converge import file

file("/etc/motd", content="x"
