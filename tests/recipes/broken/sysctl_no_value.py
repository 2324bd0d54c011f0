# error: {path}:4: sysctl[vm.swappiness]: value is required to apply vm.swappiness (or use action='remove')
from converge import sysctl

sysctl("vm.swappiness")
