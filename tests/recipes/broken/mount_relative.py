# error: {path}:4: mount[srv/data]: mount_point 'srv/data' must be an absolute path
from converge import mount

mount("srv/data", "/dev/sdb1")
