# error: {path}:4: cron[stamp]: command contains an unescaped '%': cron turns % into a newline and passes what follows as standard input; write \% to keep a literal %
from converge import cron

cron("stamp", command="date +%s > /tmp/stamp")
