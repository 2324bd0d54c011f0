"""remote_file in a lab node, against HTTP and HTTPS servers the test starts inside
the node: first run, second run up to date (a conditional GET, mtime kept), plan
changing nothing, a new version downloaded, a 404, a TLS error and a checksum
mismatch as failed resources that leave the old file whole while the others
run, and rollback through the CLI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from converge.lab import Node
from converge.lab.idempotence import place_recipe
from tests.e2e.node_helpers import apply, converge, serve_web, sh

pytestmark = pytest.mark.lab


V1, V2 = b"#!/bin/sh\necho v1\n", b"#!/bin/sh\necho v2\n"


def serve(node: Node) -> None:
    sh(node, "mkdir -p /opt/tools")
    serve_web(node, 8080, "/srv/web")
    serve_web(node, 8443, "/srv/web", tls=True)


def test_remote_file_in_a_node(lab_node: Node, tmp_path: Path) -> None:
    serve(lab_node)
    lab_node.write_file("/srv/web/tool", V1)
    recipe = f"""\
from converge import remote_file
remote_file("/opt/tools/tool", "http://127.0.0.1:8080/tool", mode="0755")
remote_file("/opt/tools/pinned", "http://127.0.0.1:8080/tool",
            checksum="{hashlib.sha256(V1).hexdigest()}")
"""
    first = apply(lab_node, tmp_path, recipe)
    assert first.ok and [r["status"] for r in first.resources()] == ["updated", "updated"], \
        first.stdout + first.stderr
    assert lab_node.read_file("/opt/tools/tool") == V1
    assert sh(lab_node, "/opt/tools/tool") == "v1\n"
    stamps = sh(lab_node, "stat -c '%y' /opt/tools/tool /opt/tools/pinned")
    second = apply(lab_node, tmp_path, recipe)
    assert [r["status"] for r in second.resources()] == ["up_to_date", "up_to_date"]
    assert sh(lab_node, "stat -c '%y' /opt/tools/tool /opt/tools/pinned") == stamps

    lab_node.write_file("/srv/web/tool", V2)
    sh(lab_node, "touch -d '2030-01-01' /srv/web/tool")  # a newer Last-Modified
    code, out = converge(lab_node, "plan", place_recipe(lab_node, tmp_path / "recipe.py"))
    assert code == 0, out
    assert "would update content in file /opt/tools/tool from " in out, out
    assert "* remote_file[/opt/tools/pinned] action create (up to date)" in out  # not fetched
    assert lab_node.read_file("/opt/tools/tool") == V1  # plan wrote nothing
    third = apply(lab_node, tmp_path, recipe)
    assert [r["status"] for r in third.resources()] == ["updated", "up_to_date"]
    assert lab_node.read_file("/opt/tools/tool") == V2

    failing = """\
from converge import file, remote_file
remote_file("/opt/tools/tool", "http://127.0.0.1:8080/missing")
remote_file("/opt/tools/tool", "https://127.0.0.1:8443/tool")
file("/tmp/after", content="ran\\n")
"""
    run = apply(lab_node, tmp_path, failing.replace(
        'remote_file("/opt/tools/tool", "https', 'remote_file("/opt/tools/tls", "https'),
        "failing.py")
    got = [(r["id"], r["status"], r.get("error") or "") for r in run.resources()]
    assert got[0][1:] == ("failed", "http://127.0.0.1:8080/missing answered HTTP 404 File not "
                          "found\ncheck the URL")
    assert got[1][1] == "failed" and got[1][2].startswith(
        "TLS error from https://127.0.0.1:8443/tool: the certificate was not verified"), got[1]
    assert got[2][:2] == ("file[/tmp/after]", "updated")
    assert lab_node.read_file("/opt/tools/tool") == V2
    assert lab_node.run(["test", "-e", "/opt/tools/tls"]).returncode == 1

    history = json.loads(converge(lab_node, "history", "--json")[1])
    third_id = [r["id"] for r in history if r["kind"] == "apply" and any(
        c["id"] == "remote_file[/opt/tools/tool]" for c in r["changed"])][-1]
    code, out = converge(lab_node, "rollback", third_id)  # the third run's new version
    assert code == 0, out
    assert lab_node.read_file("/opt/tools/tool") == V1

    # drift by hand: the file no longer matches the last download, so no conditional GET
    lab_node.write_file("/opt/tools/tool", b"edited by hand\n", 0o600)
    fixed = apply(lab_node, tmp_path, recipe)
    assert [r["status"] for r in fixed.resources()] == ["updated", "up_to_date"]
    assert "change mode from '0600' to '0755'" in fixed.resources()[0]["changes"]
    assert lab_node.read_file("/opt/tools/tool") == V2
    assert sh(lab_node, "stat -c %a /opt/tools/tool") == "755\n"
