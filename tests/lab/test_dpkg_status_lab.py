"""The apt backend's state, read from dpkg's status file in place, against the real
dpkg-query on a lab node's real database: every package it holds, each of them
also qualified by its architecture, the virtual packages they provide, one held
and one whose removal left its configuration files."""

from __future__ import annotations

import json
import sys

import pytest

from converge.lab import Node

pytestmark = pytest.mark.lab

# Runs in the node: the state of every name by converge's reader and by dpkg-query
# (one call for the plain names, one per architecture-qualified name), as JSON.
COMPARE = r"""
import json, subprocess
from converge.agent.system import System
from converge.resources import _dpkg_status
from converge.resources._pkg_backends import Apt

status, updates = _dpkg_status.read(System("/"))
stanzas = list(_dpkg_status._all_stanzas(status))
names = sorted({s["package"] for s in stanzas})
qualified = sorted({"%s:%s" % (s["package"], s["architecture"]) for s in stanzas
                    if s.get("architecture")})
virtual = sorted({p.split()[0] for s in stanzas for p in s.get("provides", "").split(",")
                  if p.strip()} - set(names))
specs = names + qualified + virtual + ["no-such-package-here"]
ours = Apt().state(System("/"), specs, False)


def query(spec_list):
    done = subprocess.run(["dpkg-query", "-W", "-f=${Package}\\t${db:Status-Abbrev}\\t"
                           "${Version}\\n", "--"] + spec_list, capture_output=True, text=True)
    assert done.returncode in (0, 1), done.stderr
    return [line.split("\t") for line in done.stdout.splitlines()]


def reduce(rows):
    state = {"installed": None, "broken": None, "config_files": False}
    for _, abbrev, version in rows:
        letter = abbrev[1:2]
        if letter in "iWt":
            state["installed"] = version
        elif letter in "UFH":
            state["broken"] = version
        elif letter == "c":
            state["config_files"] = True
    return state


plain = query(names + virtual + ["no-such-package-here"])
theirs = {n: reduce([r for r in plain if r[0] == n]) for n in names + virtual
          + ["no-such-package-here"]}
for spec in qualified:
    theirs[spec] = reduce(query([spec]))
keys = ("installed", "broken", "config_files")
print(json.dumps({"specs": len(specs), "names": len(names), "qualified": len(qualified),
                  "virtual": len(virtual),
                  "ours": {s: [ours[s][k] for k in keys] for s in specs},
                  "theirs": {s: [theirs[s][k] for k in keys] for s in specs}}))
"""


def test_every_package_of_a_node_reads_as_dpkg_query_reports_it(lab_node: Node) -> None:
    node = lab_node
    # a held package, and one whose removal kept its configuration files
    held = node.run(["sh", "-c", "echo 'bash hold' | dpkg --set-selections"])
    assert held.returncode == 0, held.stderr
    removed = node.run(["dpkg", "--remove", "--force-depends", "cron"])
    assert removed.returncode == 0, removed.stderr
    done = node.run([sys.executable, "-c", COMPARE], env={"LC_ALL": "C"}, timeout=600)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["names"] > 100 and found["qualified"] >= found["names"]
    assert found["virtual"] > 0
    assert found["ours"] == found["theirs"]
    assert found["ours"]["bash"][0] and found["ours"]["cron"] == [None, None, True]
