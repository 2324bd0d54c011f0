# error: {path}:4: oom_protect[ssh d]: name 'ssh d' may only hold letters, digits, '_' and '-' (it names the file /etc/cron.d/converge-oom-NAME)
from converge import oom_protect

oom_protect("ssh d", pattern="sshd")
