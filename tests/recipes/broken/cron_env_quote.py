# error: {path}:4: cron[job]: environment MAILTO contains a newline or a double quote
from converge import cron

cron("job", command="/bin/true", environment={"MAILTO": 'a"b'})
