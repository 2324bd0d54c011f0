# error: {path}:4: execute[ls]: shell=True takes the command as one string, not a list
from converge import execute

execute(["ls"], shell=True)
