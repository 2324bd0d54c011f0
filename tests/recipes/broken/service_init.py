# error: {path}:4: service[chrony]: init 'upstart' is not one of: systemd, sysvinit
from converge import service

service("chrony", init="upstart")
