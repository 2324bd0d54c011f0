# error: {path}:4: sysctl[vm panic_on_oom]: key 'vm panic_on_oom' is not a kernel parameter name such as 'vm.panic_on_oom'
from converge import sysctl

sysctl("vm panic_on_oom", 1)
