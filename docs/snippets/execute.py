from converge import directory, execute, file

# creates: skipped once the path exists
directory("/root/.ssh", mode="0700")
execute(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", "/root/.ssh/id_backup"],
        creates="/root/.ssh/id_backup")

# not_if: a command run on the target; exit status 0 means skip
execute(["useradd", "--system", "--shell", "/usr/sbin/nologin", "sa-reader"],
        not_if=["id", "-u", "sa-reader"])

# action "nothing": runs only when notified, once, at the end of the run
ldconfig = execute(["ldconfig"], action="nothing")
file("/etc/ld.so.conf.d/app.conf", content="/opt/app/lib\n", notifies=ldconfig.run)
