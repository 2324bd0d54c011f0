# error: {path}:4: mount[/srv/data]: unknown property 'pass_'
from converge import mount

mount("/srv/data", "/dev/sdb1", pass_=2)
