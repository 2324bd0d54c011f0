# error: {path}:4: user[deploy]: password is not a crypt hash (its value is not shown); give a crypt hash such as '$6$salt$...' or '$y$...': make one with `openssl passwd -6` or `mkpasswd -m yescrypt` (a clear-text password is never accepted)
from converge import user

user("deploy", password="correct horse battery staple")
