# error: {path}:4: group[app]: gid 'twenty' is not a number such as 1500
from converge import group

group("app", gid="twenty")
