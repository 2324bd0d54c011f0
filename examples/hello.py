"""The seed's Chef example: a file named file.txt that says Hello Tunnelix.

    converge apply examples/hello.py

The first run creates file.txt in the current directory; the second reports
`(up to date)` and leaves it alone, mtime included.
"""

from converge import file

file("file.txt", content="Hello Tunnelix")
