# error: {path}:4: systemd_unit[hello.service]: [Service] ExecStart '/bin/true\nExecStartPost=/bin/evil' contains a line break; it must be one line
from converge import systemd_unit

systemd_unit("hello.service", {"Service": {"ExecStart": "/bin/true\nExecStartPost=/bin/evil"}})
