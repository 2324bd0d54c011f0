# error: {path}:4: systemd_unit[hello.service]: content is required to create hello.service
from converge import systemd_unit

systemd_unit("hello.service", action=["create", "enable"])
