# error: {path}:4: cron[job]: command is required for action 'create'
from converge import cron

cron("job", minute=5)
