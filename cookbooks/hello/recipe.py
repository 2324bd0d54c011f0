"""hello: the seed's Chef example as a cookbook (see README.md)."""

from converge import attrs, file

file(attrs.hello.path, content=attrs.hello.content, mode=attrs.hello.mode)
