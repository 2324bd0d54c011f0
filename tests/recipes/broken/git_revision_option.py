# error: {path}:4: git[/srv/app]: revision '--upload-pack=touch /tmp/owned' is not a branch, tag or commit id git accepts (no leading '-', spaces, '..', '~', '^', ':' or control characters)
from converge import git

git("/srv/app", "https://git.example.com/app.git", revision="--upload-pack=touch /tmp/owned")
