# error: {path}:4: oom_protect[sshd]: score_adj '-1001' is out of range -1000..1000
from converge import oom_protect

oom_protect("sshd", pattern="sshd", score_adj=-1001)
