from converge import include_recipe

include_recipe("motd")          # cookbooks/motd/recipe.py, with its attributes.yaml
include_recipe("sysstat")
