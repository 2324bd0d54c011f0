# error: {path}:4: template[/etc/chrony.conf]: {dir}/templates/undefined.j2:2: undefined in template: 'pool' is undefined
from converge import template

template("/etc/chrony.conf", source="undefined.j2", variables={"server": "a"})
