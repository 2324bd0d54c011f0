"""Bootstrap pull mode on nodes that have python3 and no package index.

On the controller, make the wheels (converge and what it needs), then push this
recipe once to the fleet:

    python3 -m converge.wheels build wheels --extra postgresql
    converge apply bootstrap.py -i inventory.yaml -a wheels=wheels \\
        -a repo=ssh://git@git.example.com/ops.git -a signers=allowed_signers \\
        -a "pull_options=--inventory inventory.yaml --every 30m --splay 5m"

Each node gets git, the wheels and the allowed-signers file, installs converge for
its python3 from the wheels (converge.wheels run from the converge wheel itself:
no pip), then installs the pull timer. A second push changes nothing; new wheels
are installed by the next push.
"""

import shlex
from pathlib import Path

from converge import attrs, directory, execute, file, package

WHEELS = "/var/lib/converge/wheels"
SIGNERS = "/etc/converge/allowed-signers"

wheels = sorted(Path(attrs["wheels"]).glob("*.whl"))
[own] = [w.name for w in wheels if w.name.startswith("converge_ops-")]
from_wheel = ["env", "PYTHONPATH=%s/%s" % (WHEELS, own), "python3", "-m", "converge.wheels"]

package("git")
directory(WHEELS, mode="0755")
for wheel in wheels:
    file("%s/%s" % (WHEELS, wheel.name), content=wheel.read_bytes(), mode="0644", backup=0)
execute(from_wheel + ["install", WHEELS], not_if=from_wheel + ["check", WHEELS])
directory("/etc/converge", mode="0755")
file(SIGNERS, content=Path(attrs["signers"]).read_text(), mode="0644")
execute(["python3", "-m", "converge", "pull", attrs["repo"], "--allowed-signers", SIGNERS,
         *shlex.split(attrs.get("pull_options", "")), "--install"],
        creates="/etc/converge/pull.json")
