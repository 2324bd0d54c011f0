# error: {path}:4: sysctl[vm.swappiness]: value '10\n20' contains a newline or NUL character
from converge import sysctl

sysctl("vm.swappiness", "10\n20")
