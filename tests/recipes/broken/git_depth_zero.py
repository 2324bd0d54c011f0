# error: {path}:4: git[/srv/app]: depth '0' is out of range 1..2147483647
from converge import git

git("/srv/app", "https://git.example.com/app.git", depth=0)
