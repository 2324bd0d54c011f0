# error: {path}:4: AttributeError: attribute 'chrony' is not set (give it a default in attributes.yaml, an inventory var, or -a chrony=VALUE)
from converge import attrs, file

file("/etc/chrony.conf", content=" ".join(attrs.chrony.servers))
