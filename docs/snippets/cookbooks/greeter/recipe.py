"""greeter: a cookbook with a resource type of its own (resources/greeting.py)."""

from converge import attrs, directory, greeting

directory(attrs.greeter.folder, mode="0755")
greeting(attrs.greeter.folder + "/greeting.txt", text="Hello from %s" % attrs.greeter.team)
