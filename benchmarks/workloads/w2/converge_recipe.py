"""W2 "many files": 200 files from one template, each with its own variable."""

from converge import directory, template

directory("/etc/bench-w2", mode="0755")
for i in range(1, 201):
    template("/etc/bench-w2/worker-%03d.conf" % i, source="file.conf.j2",
             variables={"index": i}, mode="0644")
