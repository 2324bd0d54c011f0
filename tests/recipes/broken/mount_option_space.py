# error: {path}:4: mount[/srv/data]: mount option 'size=8m mode=1777' is not valid (no spaces, commas or quotes; give several options as a list)
from converge import mount

mount("/srv/data", "tmpfs", fstype="tmpfs", options=["size=8m mode=1777"])
