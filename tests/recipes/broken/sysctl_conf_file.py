# error: {path}:4: sysctl[vm.swappiness]: conf_file 'memory' must end in .conf (only *.conf files in /etc/sysctl.d are read at boot)
from converge import sysctl

sysctl("vm.swappiness", 10, conf_file="memory")
