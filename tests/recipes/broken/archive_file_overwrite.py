# error: {path}:4: archive_file[/srv/app.tgz]: overwrite 'always' is not one of: False, True, 'auto'
from converge import archive_file

archive_file("/srv/app.tgz", "/opt/app", overwrite="always")
