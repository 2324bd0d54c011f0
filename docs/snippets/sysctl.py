from converge import sysctl

sysctl("vm.panic_on_oom", 0)
sysctl("vm.swappiness", 10, conf_file="60-memory.conf")
