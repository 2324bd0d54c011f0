# error: {path}:4: apt_repository[../evil]: repo_name '../evil' is not a file name apt reads (letters, digits, '_', '-', '.'; no '/', spaces or '..')
from converge import apt_repository

apt_repository("../evil", "https://apt.example.com/debian")
