"""W1 "seed": the seed notes' server, as a converge recipe.

/etc/motd; 20 configuration files; three kernel parameters applied and persisted
in /etc/sysctl.d; the sysstat cron entry; one package from the lab repository;
sshd's listener shielded from the OOM killer.
"""

from converge import cron, directory, file, oom_protect, package, sysctl

# -1000 where root may lower scores (CAP_SYS_RESOURCE); lab nodes refuse negative
# values, so every tool sets 0 (the nodes start sshd at 500).
OOM_SCORE_ADJ = 0
SYSCTLS = (("net.ipv4.ip_forward", 1), ("net.core.somaxconn", 1024), ("vm.panic_on_oom", 1))

file("/etc/motd", content="Hello Tunnelix\n", mode="0644")
directory("/etc/bench", mode="0755")
for i in range(1, 21):
    file("/etc/bench/w1-%02d.conf" % i, mode="0644",
         content="# w1 config file %d\nname = item-%d\nweight = %d\n" % (i, i, i * 7))
for key, value in SYSCTLS:
    sysctl(key, value, conf_file="60-bench.conf")
cron("sysstat", minute="*/10", user="root", command="/usr/lib/sysstat/sa1 1 1",
     cron_file="sysstat")
package("bench-tool")
oom_protect("sshd", pattern="[/]usr/sbin/sshd", score_adj=OOM_SCORE_ADJ, persist=False)
