"""W2 "many files" for pyinfra: 200 files from one template (templates/file.conf.j2)."""

import os

from pyinfra.operations import files

TEMPLATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates", "file.conf.j2")

files.directory(name="directory", path="/etc/bench-w2", mode="755")
for i in range(1, 201):
    files.template(name="worker %d" % i, src=TEMPLATE, dest="/etc/bench-w2/worker-%03d.conf" % i,
                   mode="644", index=i)
