# error: {path}:4: file[/etc/mo\x00td]: path '/etc/mo\x00td' contains a NUL or line break character
from converge import file

file("/etc/mo\0td", content="x")
