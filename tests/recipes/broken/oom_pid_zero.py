# error: {path}:4: oom_protect[batch]: pid '0' is out of range 1..4194304
from converge import oom_protect

oom_protect("batch", pids=[0])
