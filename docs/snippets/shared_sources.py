from converge import allow_sources, file

allow_sources("../../examples")   # relative: to this recipe
file("/srv/hello-example.py", source="../../examples/hello.py")
