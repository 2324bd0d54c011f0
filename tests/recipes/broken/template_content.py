# error: {path}:4: template[/etc/chrony.conf]: a template takes source= (the template file), not content=
from converge import template

template("/etc/chrony.conf", content="pool x\n")
