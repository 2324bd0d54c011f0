# error: {path}:4: user[deploy]: groups entry 'sudo, adm' is not a valid name (a letter or '_' first, then letters, digits, '_', '.' or '-'; at most 32 characters); give several names as a list: ['sudo', 'adm']
from converge import user

user("deploy", groups="sudo, adm")
