# error: {path}:5: template[/etc/chrony.conf]: {dir}/templates/unset_attribute.j2:1: undefined in template: attribute 'chrony.pool' is not set (give it a default in attributes.yaml, an inventory var, or -a chrony.pool=VALUE)
from converge import attrs, template

attrs["chrony"] = {"servers": ["a"]}
template("/etc/chrony.conf", source="unset_attribute.j2")
