# error: {path}:4: cron[job]: minute '61' is out of range 0-59
from converge import cron

cron("job", minute=61, command="/bin/true")
