# error: {path}:4: sysctl[vm.panic_on_oom]: value 'high' is not an integer
from converge import sysctl

sysctl("vm.panic_on_oom", "high")
