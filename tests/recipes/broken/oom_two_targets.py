# error: {path}:4: oom_protect[sshd]: give exactly one of pattern, pids or service (got pattern and pids)
from converge import oom_protect

oom_protect("sshd", pattern="sshd", pids=[1])
