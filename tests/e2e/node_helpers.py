"""What the end-to-end tests of one resource type do in a lab node: run a shell
line there, run converge there, apply a recipe there and read its JSON report,
serve a folder over HTTP or HTTPS there."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Tuple

from converge.lab import Node
from converge.lab.idempotence import WORKDIR, ApplyRun, apply_in_node, place_recipe


def sh(node: Node, script: str) -> str:
    done = node.run(["sh", "-c", script])
    assert done.returncode == 0, done.stderr
    return done.stdout


def converge(node: Node, *args: str) -> Tuple[int, str]:
    done = node.run([sys.executable, "-m", "converge", *args],
                    env={"PYTHONDONTWRITEBYTECODE": "1", "COLUMNS": "200"}, timeout=300)
    return done.returncode, done.stdout + done.stderr


def apply(node: Node, tmp_path: Path, text: str, name: str = "recipe.py") -> ApplyRun:
    recipe = tmp_path / name
    recipe.write_text(text)
    node.run(["mkdir", "-p", WORKDIR])
    return apply_in_node(node, place_recipe(node, recipe), f"{WORKDIR}/{name}.json")


# Binds, then forks the server and exits: listening once the command returns.
WEB_SERVER = """\
import functools, http.server, os, ssl, sys
port, folder = int(sys.argv[1]), sys.argv[2]
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=folder)
httpd = http.server.HTTPServer(("127.0.0.1", port), handler)
if len(sys.argv) > 3:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(sys.argv[3], sys.argv[4])
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
if os.fork():
    os._exit(0)
os.setsid()
null = os.open(os.devnull, os.O_RDWR)
for fd in (0, 1, 2):
    os.dup2(null, fd)
httpd.serve_forever()
"""
CERT, KEY = "/srv/cert.pem", "/srv/key.pem"


def serve_web(node: Node, port: int, folder: str, tls: bool = False) -> None:
    """Serve FOLDER in the node on 127.0.0.1:PORT, over HTTPS with a self-signed
    certificate for 127.0.0.1 (CERT, made once) when asked."""
    node.write_file("/srv/serve.py", WEB_SERVER.encode())
    sh(node, f"mkdir -p {folder}")
    if tls and node.run(["test", "-e", CERT]).returncode != 0:
        sh(node, f"openssl req -x509 -newkey rsa:2048 -nodes -keyout {KEY} -out {CERT} "
                 "-days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 2>/dev/null")
    sh(node, f"{sys.executable} /srv/serve.py {port} {folder}"
             + (f" {CERT} {KEY}" if tls else ""))
