"""The seed's OOM-killer notes, step by step, as one recipe.

    converge apply examples/oom.py
    converge apply examples/oom.py -a score_adj=0     # where root lacks CAP_SYS_RESOURCE

Step 1: vm.panic_on_oom (0 here: the OOM killer acts; 1 panics the kernel so that
kdump can capture a vmcore, never to be tried in production). Steps 4-5: protect
sshd's listener from the OOM killer (-1000 is immune; old kernels get the legacy
oom_adj -17). Step 6: a cron entry re-applies it every minute. Step 8: dstat, to
watch OOM scores with `dstat --top-oom`.
"""

from converge import attrs, oom_protect, package, sysctl

score_adj = attrs.get("score_adj", -1000)

# Step 1: what the kernel does when memory runs out.
sysctl("vm.panic_on_oom", attrs.get("panic_on_oom", 0))

# Steps 4-6: protect sshd's listener (not the login sessions), re-applied every
# minute from /etc/cron.d by persist=True.
oom_protect("sshd", pattern=r"^(sshd: )?/usr/sbin/sshd( |$)", score_adj=score_adj,
            persist=True)

# Step 8: dstat, to watch how the OOM killer scores processes.
package("dstat")
