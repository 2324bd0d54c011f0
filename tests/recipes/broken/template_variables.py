# error: {path}:4: template[/etc/chrony.conf]: variables must be a dict, not a list
from converge import template

template("/etc/chrony.conf", source="undefined.j2", variables=["pool"])
