# error: {path}:4: cron[job]: command is required to create a cron entry
from converge import cron

cron("job", minute=5)
