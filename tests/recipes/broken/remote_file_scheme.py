# error: {path}:4: remote_file[/opt/tool]: source 'ftp://files.example.com/tool' is not an http://, https:// or file:// URL
from converge import remote_file

remote_file("/opt/tool", "ftp://files.example.com/tool")
