# error: {path}:4: attribute 'motd.contact' is not set (give it a default in attributes.yaml, an inventory var, or -a motd.contact=VALUE)
from converge import attrs, file

file("/etc/motd", content="Questions: %s\n" % attrs["motd"]["contact"])
