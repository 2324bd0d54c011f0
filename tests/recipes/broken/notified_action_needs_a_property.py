# error: {path}:4: sysctl[vm.swappiness]: value is required for action 'apply', which file[/etc/motd] notifies
from converge import file, sysctl

swappiness = sysctl("vm.swappiness", action="nothing")
file("/etc/motd", content="hi\n", notifies=swappiness.apply)
