# error: {path}:4: cron[job]: hour '5-1' is a backwards range (write 1-5)
from converge import cron

cron("job", hour="5-1", command="/bin/true")
