# error: {path}:4: timezone[../../etc/shadow]: timezone '../../etc/shadow' is not a zone name such as 'Europe/Paris' or 'UTC'
from converge import timezone

timezone("../../etc/shadow")
