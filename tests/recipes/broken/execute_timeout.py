# error: {path}:4: execute[update-grub]: timeout must be a positive number of seconds, not -1
from converge import execute

execute(["update-grub"], timeout=-1)
