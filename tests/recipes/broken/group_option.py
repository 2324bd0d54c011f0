# error: {path}:4: directory[/srv/app]: group '-x' is not a valid name (letters, digits, '_', '-', '.'; or a numeric id)
from converge import directory

directory("/srv/app", group="-x")
