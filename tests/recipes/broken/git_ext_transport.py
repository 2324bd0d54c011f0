# error: {path}:4: git[/srv/app]: repository 'ext::sh -c touch% /tmp/owned' uses git's ext:: transport, which runs a command; give a URL or a path
from converge import git

git("/srv/app", "ext::sh -c touch% /tmp/owned")
