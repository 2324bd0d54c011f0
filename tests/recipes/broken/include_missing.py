# error: {path}:4: recipe 'other.py' not found (looked for {dir}/other.py)
from converge import include_recipe

include_recipe("other.py")
