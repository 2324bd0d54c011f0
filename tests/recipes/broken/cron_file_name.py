# error: {path}:4: cron[job]: cron_file 'sys.stat' is not a valid name: cron ignores files in /etc/cron.d whose names contain anything but letters, digits, '_' and '-'
from converge import cron

cron("job", command="/bin/true", cron_file="sys.stat")
