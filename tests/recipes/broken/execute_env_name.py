# error: {path}:4: execute[env]: environment name 'A=B' is not a variable name
from converge import execute

execute(["env"], environment={"A=B": "x"})
