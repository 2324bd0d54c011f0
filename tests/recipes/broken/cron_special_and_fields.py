# error: {path}:4: cron[job]: give either special or the minute/hour/day/month/weekday fields, not both
from converge import cron

cron("job", special="@daily", minute=5, command="/bin/true")
