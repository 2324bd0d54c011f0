# error: {path}:4: file[/srv/app/../../etc/shadow]: path '/srv/app/../../etc/shadow' has a '..' component; give the path it means without '..'
from converge import file

file("/srv/app/../../etc/shadow", content="x")
