"""An unchanged Ansible inventory script (ansible_host, ansible_user,
ansible_ssh_private_key_file, ansible_python_interpreter) pushes to a lab node; the
host key comes from the user's own known_hosts, as for any host."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from converge.lab import Lab, Node

pytestmark = pytest.mark.lab


def test_an_ansible_inventory_script_over_ssh(lab: Lab, lab_node: Node,
                                              tmp_path: Path) -> None:
    data = {"web": {"hosts": [lab_node.name], "vars": {"motd": "from a script"}},
            "_meta": {"hostvars": {lab_node.name: {
                "ansible_host": lab_node.address, "ansible_user": "root",
                "ansible_ssh_private_key_file": str(lab.key_path),
                "ansible_python_interpreter": "/usr/bin/python3"}}}}
    script = tmp_path / "cloud.py"
    script.write_text("#!/usr/bin/env python3\nimport json, sys\nassert sys.argv[1:] == "
                      "['--list']\nprint(json.dumps(%r))\n" % (data,))
    script.chmod(0o755)
    (tmp_path / "recipe.py").write_text(
        'from converge import file\nfile("/etc/motd", content=attrs.motd + "\\n")\n')
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    shutil.copy(lab.known_hosts_path, home / ".ssh/known_hosts")
    done = subprocess.run([sys.executable, "-m", "converge", "apply", "recipe.py", "-i",
                           "cloud.py", "-l", "web"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL,
                          env={**os.environ, "HOME": str(home)})
    assert done.returncode == 0, done.stdout + done.stderr
    assert lab_node.read_file("/etc/motd") == b"from a script\n"
