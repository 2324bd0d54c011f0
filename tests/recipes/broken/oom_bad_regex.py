# error: {path}:4: oom_protect[sshd]: pattern '(sshd' is not a valid regular expression: missing ), unterminated subpattern at position 0
from converge import oom_protect

oom_protect("sshd", pattern="(sshd")
