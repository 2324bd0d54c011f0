# error: {path}:4: line[/etc/ssh/sshd_config: PermitRootLogin no]: match '(PermitRootLogin' is not a valid regular expression: missing ), unterminated subpattern at position 0
from converge import line

line("/etc/ssh/sshd_config", "PermitRootLogin no", match="(PermitRootLogin")
