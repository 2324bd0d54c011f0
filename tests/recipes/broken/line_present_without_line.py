# error: {path}:4: line[/etc/environment: ^http_proxy=]: line is required for action 'present'
from converge import line

line("/etc/environment", match="^http_proxy=")
