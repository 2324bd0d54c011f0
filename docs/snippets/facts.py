from converge import file, node, package, sysctl

# when: ansible_facts['os_family'] == "Debian"
if node.platform_family == "debian":
    package("sysstat")

# when: ansible_facts['memtotal_mb'] >= 4096, as a guard: reported as skipped
sysctl("vm.min_free_kbytes", 65536, only_if=lambda: node.memory_mb >= 4096)

file("/etc/motd", content="%s (%s %s, %d CPUs)\n"
     % (node.hostname, node.platform, node.platform_version, node.cpu_count))
