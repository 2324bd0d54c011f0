# error: {path}:4: package[curl;reboot]: 'curl;reboot' is not a valid package name (letters, digits and '+', '-', '.', '_', starting with a letter or digit)
from converge import package

package("curl;reboot")
