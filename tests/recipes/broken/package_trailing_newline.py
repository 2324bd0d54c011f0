# error: {path}:4: package[dstat\n]: 'dstat\n' is not a valid package name (letters, digits and '+', '-', '.', '_', starting with a letter or digit)
from converge import package

package("dstat\n")
