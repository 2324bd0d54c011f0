# error: {path}:4: user[-o]: username '-o' is not a valid name (a letter or '_' first, then letters, digits, '_', '.' or '-'; at most 32 characters)
from converge import user

user("-o")
