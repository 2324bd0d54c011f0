# error: {path}:4: group[docker]: members entry 'deploy ci' is not a valid name (a letter or '_' first, then letters, digits, '_', '.' or '-'; at most 32 characters); give several names as a list: ['deploy', 'ci']
from converge import group

group("docker", members="deploy ci")
