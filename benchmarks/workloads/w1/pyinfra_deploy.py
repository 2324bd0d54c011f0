"""W1 "seed" for pyinfra: `pyinfra INVENTORY pyinfra_deploy.py -y`."""

from io import StringIO

from pyinfra import host
from pyinfra.facts.server import Command
from pyinfra.operations import apt, files, server

# -1000 where root may lower scores; lab nodes refuse negative values.
OOM_SCORE_ADJ = 0
SYSCTLS = (("net.ipv4.ip_forward", 1), ("net.core.somaxconn", 1024), ("vm.panic_on_oom", 1))

files.put(name="motd", src=StringIO("Hello Tunnelix\n"), dest="/etc/motd", mode="644")
files.directory(name="config directory", path="/etc/bench", mode="755")
for i in range(1, 21):
    files.put(name="config file %d" % i, dest="/etc/bench/w1-%02d.conf" % i, mode="644",
              src=StringIO("# w1 config file %d\nname = item-%d\nweight = %d\n" % (i, i, i * 7)))
for key, value in SYSCTLS:
    server.sysctl(name="sysctl %s" % key, key=key, value=value, persist=True,
                  persist_file="/etc/sysctl.d/60-bench.conf")
# server.crontab edits a user's crontab; /etc/cron.d is a plain file.
files.put(name="sysstat cron entry", dest="/etc/cron.d/sysstat", mode="644",
          src=StringIO("*/10 * * * * root /usr/lib/sysstat/sa1 1 1\n"))
apt.packages(name="package from the lab repository", packages=["bench-tool"])

# No operation for oom_score_adj: a fact says which processes differ, then set those.
CHECK = ("for pid in $(pgrep -f '[/]usr/sbin/sshd'); do "
         "[ \"$(cat /proc/$pid/oom_score_adj)\" = %d ] || echo $pid; done; true" % OOM_SCORE_ADJ)
pids = (host.get_fact(Command, CHECK) or "").split()
if pids:
    server.shell(name="sshd shielded from the OOM killer",
                 commands=["echo %d > /proc/%s/oom_score_adj" % (OOM_SCORE_ADJ, pid)
                           for pid in pids])
