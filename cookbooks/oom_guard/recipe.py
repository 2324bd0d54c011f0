"""oom_guard: the seed's OOM-killer procedure (see README.md)."""

from converge import attrs, oom_protect, package, sysctl

guard = attrs.oom_guard

sysctl("vm.panic_on_oom", guard.panic_on_oom,
       comment="1 panics on OOM (for kdump); 0 lets the OOM killer act")

# sshd's listener only: "/usr/sbin/sshd -D" (OpenSSH 9 retitles it "sshd:
# /usr/sbin/sshd -D [listener] ..."). Sessions ("sshd: root@pts/0") do not match,
# so logins stay killable; see README.md for why that matters.
oom_protect("sshd", pattern=r"^(sshd: )?/usr/sbin/sshd( |$)",
            score_adj=guard.sshd_score_adj, persist=guard.persist)

for entry in guard.services:
    oom_protect(entry["name"], pattern=entry["pattern"], user=entry.get("user"),
                score_adj=entry.get("score_adj", -1000), persist=guard.persist)

if guard.install_dstat:
    package("dstat")
