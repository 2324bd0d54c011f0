# error: {path}:4: directory[/srv/app]: mode 'abc' is not an octal mode such as '0644'
from converge import directory

directory("/srv/app", mode="abc")
