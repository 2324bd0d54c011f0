# error: {path}:4: cron[job]: command contains a newline; a cron entry is one line (put several commands in a script)
from converge import cron

cron("job", command="/bin/true\nreboot")
