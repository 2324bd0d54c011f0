# error: {path}:4: package[Curl]: 'Curl' is not a valid package name (letters, digits and '+', '-', '.', '_', starting with a letter or digit)
from converge import package

package("Curl", provider="apt")
