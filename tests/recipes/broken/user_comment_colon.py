# error: {path}:4: user[deploy]: comment 'Deploy: CI' contains ':', a line break or NUL, which /etc/passwd cannot hold
from converge import user

user("deploy", comment="Deploy: CI")
