# error: {path}:4: sysctl[vm.panic_on_oom]: value True is ambiguous for a kernel parameter; write 1 or 0
from converge import sysctl

sysctl("vm.panic_on_oom", True)
