# error: {path}:4: file[/etc/motd]: unknown property 'contnet' (did you mean 'content'?)
from converge import file

file("/etc/motd", contnet="Hello Tunnelix\n")
