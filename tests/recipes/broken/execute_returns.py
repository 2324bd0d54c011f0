# error: {path}:4: execute[update-grub]: returns '256' is out of range 0..255
from converge import execute

execute(["update-grub"], returns=[256])
