# error: {path}:5: ZeroDivisionError: division by zero
from converge import file

file("/etc/motd", content="x")
ratio = 1 / 0
