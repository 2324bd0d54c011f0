# error: {path}:4: sysctl[vm.swappiness]: value is required for action 'apply'
from converge import sysctl

sysctl("vm.swappiness")
