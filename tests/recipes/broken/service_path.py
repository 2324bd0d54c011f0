# error: {path}:4: service[../../etc/passwd]: '../../etc/passwd' is not a valid service name (letters, digits and ':', '_', '.', '@', '-', starting with a letter or digit)
from converge import service

service("../../etc/passwd")
