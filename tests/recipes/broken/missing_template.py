# error: {path}:4: template[/etc/chrony.conf]: source 'nope.j2' not found (looked in: {dir}/templates/nope.j2, {dir}/nope.j2)
from converge import template

template("/etc/chrony.conf", source="nope.j2")
