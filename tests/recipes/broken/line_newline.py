# error: {path}:4: line[/root/.bashrc: alias a=b\nalias c=d]: line contains a newline; declare one line resource per line
from converge import line

line("/root/.bashrc", "alias a=b\nalias c=d")
