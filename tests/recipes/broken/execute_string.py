# error: {path}:4: execute[rm -rf /tmp/cache]: command is a string, and strings are never run by a shell unless asked: give an argument list such as ['rm', '-rf', '/tmp/cache'], or shell=True
from converge import execute

execute("rm -rf /tmp/cache")
