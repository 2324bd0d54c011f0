# error: {path}:4: attribute 'chrony.servers' is not set (give it a default in attributes.yaml, an inventory var, or -a chrony.servers=VALUE)
from converge import attrs, file

file("/etc/chrony.conf", content=" ".join(attrs.chrony.servers))
