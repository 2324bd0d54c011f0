# error: {path}:4: cron[job]: weekday 'monday' is not a number 0-7 or one of the names sun, mon, tue, wed, thu, fri, sat
from converge import cron

cron("job", weekday="monday", command="/bin/true")
