# error: {path}:4: directory[/srv/app]: recursive must be True or False, not 'yes'
from converge import directory

directory("/srv/app", recursive="yes")
