# error: {path}:4: user[deploy]: action 'delete' is not one of: create, remove, lock, unlock, modify, nothing
from converge import user

user("deploy", action="delete")
