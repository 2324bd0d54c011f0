# error: {path}:4: package[sysstat,chrony]: version pins one package; declare each pinned package as its own resource
from converge import package

package(["sysstat", "chrony"], version="1.0")
