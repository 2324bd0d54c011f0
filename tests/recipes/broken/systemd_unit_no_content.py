# error: {path}:4: systemd_unit[hello.service]: content is required for action 'create'
from converge import systemd_unit

systemd_unit("hello.service", action=["create", "enable"])
