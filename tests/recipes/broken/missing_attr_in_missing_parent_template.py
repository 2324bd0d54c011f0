# error: {path}:4: template[/etc/motd]: {dir}/templates/motd_contact.j2:2: undefined in template: attribute 'motd.contact' is not set (give it a default in attributes.yaml, an inventory var, or -a motd.contact=VALUE)
from converge import template

template("/etc/motd", source="motd_contact.j2")
