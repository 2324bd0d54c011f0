"""apt_repository in lab nodes, with the real apt-get: a flat repository built in
the node (dpkg-deb, dpkg-scanpackages), signed with a key gpg makes there
(InRelease and Release.gpg), added by a recipe whose next resource installs a
package from it in the same run; second run up to date (no mtime changes),
drift by hand corrected, plan changing nothing, rollback, a wrong key failing
with apt's own NO_PUBKEY message (and the source put back), remove.

Peers' reported bugs covered: keyrings apt cannot read as user _apt under a
tight umask (DataDog/datadog-agent#8609, kubermatic/kubeone#3940: the key is
written 0644 whatever the umask, and a mode drift is corrected); the same
repository configured twice with different keys, which makes apt refuse every
command ("Conflicting values set for option Signed-By", ansible/ansible#86243,
REMnux/salt-states#329): a warning names the other file; and an update that
fails leaving a broken source behind (Ansible's apt_repository reverts it too).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from converge.lab import Lab, Node
from converge.lab.idempotence import WORKDIR, ApplyRun, place_recipe
from tests.e2e.node_helpers import CERT, apply, converge, serve_web, sh

pytestmark = pytest.mark.lab

SOURCES = "/etc/apt/sources.list.d/local.sources"
KEYRING = "/etc/apt/keyrings/local.gpg"
WANT = ("# Managed by converge: apt_repository[local]\nTypes: deb\nURIs: file:///srv/repo\n"
        "Suites: ./\nSigned-By: /etc/apt/keyrings/local.gpg\n")

# A signed flat repository of one package, and two keys: the one that signs it
# (/srv/good.asc) and another (/srv/wrong.asc). The node's /tmp is made 1777:
# apt verifies signatures as user _apt, who writes temporary files there.
BUILD = r"""
set -e
chmod 1777 /tmp
for who in good wrong; do
    export GNUPGHOME=/root/gnupg-$who
    mkdir -p -m 0700 $GNUPGHOME
    gpg --batch -q --passphrase '' --quick-gen-key "converge $who <$who@example.invalid>" \
        ed25519 sign never 2>/dev/null
    gpg --armor --export > /srv/$who.asc
done
export GNUPGHOME=/root/gnupg-good
mkdir -p /srv/repo /root/pkg/DEBIAN /root/pkg/usr/share/tinypkg
printf 'Package: tinypkg\nVersion: 1.0\nArchitecture: all\n' > /root/pkg/DEBIAN/control
printf 'Maintainer: t <t@example.invalid>\nDescription: tiny\n' >> /root/pkg/DEBIAN/control
echo hello > /root/pkg/usr/share/tinypkg/hello
dpkg-deb --root-owner-group -Zgzip --build /root/pkg /srv/repo/tinypkg_1.0_all.deb >/dev/null
cd /srv/repo
dpkg-scanpackages -m . > Packages 2>/dev/null
{ echo "Origin: converge-test"; echo "Label: converge-test"; echo "Date: $(date -Ru)"
  echo "SHA256:"; echo " $(sha256sum Packages | cut -d' ' -f1) $(stat -c %s Packages) Packages"
} > Release
gpg --batch --yes --clearsign -o InRelease Release
gpg --batch --yes -abs -o Release.gpg Release
"""


def recipe(key: str, name: str = "local", then: str = "package([\"tinypkg\", \"cvg-aptrepo\"])"
           ) -> str:
    return ("from converge import apt_repository, package\n"
            "apt_repository(%r, 'file:///srv/repo', distribution='./', components=(),\n"
            "               key='''%s''')\n%s\n" % (name, key, then))


@pytest.fixture(scope="module")
def lab_deb(lab: Lab) -> None:
    """A package of the lab's own repository: installing it after the one-source
    update proves the other sources' lists were kept (no list cleanup)."""
    lab.repo.ensure()
    lab.repo.build_deb("cvg-aptrepo", "1.0", files={"/usr/share/cvg/aptrepo": b"lab\n"})


def built(node: Node) -> str:
    sh(node, BUILD)
    sh(node, "apt-get update -qq")  # the lab's own source, as a machine has its lists
    return node.read_file("/srv/good.asc").decode()


def test_add_then_install_in_one_run(lab_node: Node, lab_deb: None, tmp_path: Path) -> None:
    key = built(lab_node)
    first = apply(lab_node, tmp_path, recipe(key))
    assert first.ok, first.stdout + first.stderr
    got = [(r["id"], r["status"], r["changes"]) for r in first.resources()]
    assert got[0][:2] == ("apt_repository[local]", "updated"), got
    assert got[0][2][0].startswith("install key /etc/apt/keyrings/local.gpg ("), got
    assert got[0][2][1:] == ["create " + SOURCES], got
    assert got[1][:2] == ("package[tinypkg,cvg-aptrepo]", "updated"), first.stdout
    assert sh(lab_node, "dpkg-query -W -f='${Version} ' tinypkg cvg-aptrepo") == "1.0 1.0 "
    assert lab_node.read_file(SOURCES).decode() == WANT
    assert sh(lab_node, f"stat -c %a {SOURCES} {KEYRING} /etc/apt/keyrings") == "644\n644\n755\n"
    assert sh(lab_node, f"gpg --show-keys --with-colons {KEYRING} | grep -c ^pub") == "1\n"

    stamps = sh(lab_node, f"stat -c %Y.%y {SOURCES} {KEYRING}")
    second = apply(lab_node, tmp_path, recipe(key))
    assert [r["status"] for r in second.resources()] == ["up_to_date"] * 2, second.stdout
    assert sh(lab_node, f"stat -c %Y.%y {SOURCES} {KEYRING}") == stamps

    # a keyring _apt cannot read (a tight umask, a chmod) is made 0644 again
    sh(lab_node, f"chmod 600 {KEYRING}")
    fixed = apply(lab_node, tmp_path, recipe(key))
    assert [r["changes"] for r in fixed.resources()] == [
        [f"change mode of {KEYRING} from '0600' to '0644'"], []], fixed.stdout
    assert sh(lab_node, f"stat -c %a {KEYRING}") == "644\n"

    # drift by hand: the source edited, the key deleted; plan shows it and changes nothing
    sh(lab_node, f"sed -i 's|Suites: ./|Suites: stable|' {SOURCES} && rm {KEYRING}")
    code, out = converge(lab_node, "plan", place_recipe(lab_node, tmp_path / "recipe.py"))
    assert code == 0, out
    assert "- would install key /etc/apt/keyrings/local.gpg" in out, out
    assert "-Suites: stable" in out and "+Suites: ./" in out, out
    assert lab_node.run(["test", "-e", KEYRING]).returncode == 1
    third = apply(lab_node, tmp_path, recipe(key))
    assert [r["status"] for r in third.resources()] == ["updated", "up_to_date"], third.stdout
    assert lab_node.read_file(SOURCES).decode() == WANT

    # rollback of that run: the hand-edited source and no key, as before it
    code, out = converge(lab_node, "rollback")
    assert code == 0, out
    assert "Suites: stable" in lab_node.read_file(SOURCES).decode()
    assert lab_node.run(["test", "-e", KEYRING]).returncode == 1

    # remove: both files go; again: up to date
    gone = recipe(key, then="").replace("components=(),", "components=(), action='remove',")
    removed = apply(lab_node, tmp_path, gone, "gone.py")
    assert [r["changes"] for r in removed.resources()] == [
        ["delete " + SOURCES]], removed.stdout  # the key was gone already
    assert lab_node.run(["test", "-e", SOURCES]).returncode == 1
    again = apply(lab_node, tmp_path, gone, "gone.py")
    assert [r["status"] for r in again.resources()] == ["up_to_date"]


def test_wrong_key_fails_with_apts_message(lab_node: Node, lab_deb: None,
                                           tmp_path: Path) -> None:
    built(lab_node)
    wrong = lab_node.read_file("/srv/wrong.asc").decode()
    run = apply(lab_node, tmp_path, recipe(wrong, then="package('tinypkg')"))
    assert run.returncode == 1
    got = [(r["id"], r["status"], r.get("error") or "") for r in run.resources()]
    assert got[0][:2] == ("apt_repository[local]", "failed"), got
    assert got[0][2].startswith("apt-get update of local failed, so "
                                "/etc/apt/sources.list.d/local.sources was put back"), got
    assert "NO_PUBKEY " in got[0][2], got[0][2]
    assert "E: The repository 'file:/srv/repo ./ InRelease' is not signed." in got[0][2]
    assert got[1] == ("package[tinypkg]", "failed", "package tinypkg is not available from "
                      "any configured repository\ncheck the name; if it is right, run "
                      "apt-get update"), got
    # put back: nothing was there, so nothing is; apt's own update still works
    assert lab_node.run(["test", "-e", SOURCES]).returncode == 1
    assert lab_node.run(["test", "-e", KEYRING]).returncode == 1
    sh(lab_node, "apt-get update -qq")


def test_same_repository_twice_is_named(lab_node: Node, lab_deb: None, tmp_path: Path) -> None:
    key = built(lab_node)
    sh(lab_node, "echo 'deb [trusted=yes] file:///srv/repo/ ./' > "
                 "/etc/apt/sources.list.d/local.list")
    run = apply(lab_node, tmp_path, recipe(key, then=""))
    assert run.ok, run.stdout
    warnings = run.resources()[0]["warnings"]
    assert warnings == ["/etc/apt/sources.list.d/local.list also lists file:///srv/repo ./: "
                        "apt then warns that it is configured multiple times, or refuses to "
                        "run when the two name different keys (Signed-By); remove one of "
                        "them"], warnings
    assert lab_node.run(["test", "-e", "/etc/apt/sources.list.d/local.list"]).returncode == 0




def apply_trusting(node: Node, tmp_path: Path, text: str, name: str) -> ApplyRun:
    """apply, with the test's own certificate authority trusted by the agent."""
    (tmp_path / name).write_text(text)
    inside = place_recipe(node, tmp_path / name)
    report = f"{WORKDIR}/{name}.json"
    done = node.run([sys.executable, "-m", "converge", "apply", inside, "--json", report],
                    env={"PYTHONDONTWRITEBYTECODE": "1", "SSL_CERT_FILE": CERT},
                    timeout=300)
    return ApplyRun(done.returncode, done.stdout, done.stderr,
                    json.loads(node.read_file(report)))


def test_key_from_an_https_url(lab_node: Node, lab_deb: None, tmp_path: Path) -> None:
    built(lab_node)
    sh(lab_node, "mkdir -p /srv/web && cp /srv/good.asc /srv/web/key.asc && "
                 "echo 'not a key' > /srv/web/bad.asc")
    serve_web(lab_node, 8443, "/srv/web", tls=True)
    lab_node.run(["mkdir", "-p", WORKDIR])
    text = recipe("https://127.0.0.1:8443/key.asc", then="package('tinypkg')")
    text = text.replace("key='''https://127.0.0.1:8443/key.asc'''",
                        "key='https://127.0.0.1:8443/key.asc'")
    first = apply_trusting(lab_node, tmp_path, text, "url.py")
    assert [r["status"] for r in first.resources()] == ["updated", "updated"], first.stdout
    good = lab_node.read_file(KEYRING)
    assert sh(lab_node, f"gpg --show-keys --with-colons {KEYRING} | grep -c ^pub") == "1\n"
    again = apply_trusting(lab_node, tmp_path, text, "url.py")
    assert [r["status"] for r in again.resources()] == ["up_to_date"] * 2, again.stdout

    # the key at the URL rotated to one that did not sign the repository: the update
    # fails with apt's message, and the old key and source are put back
    sh(lab_node, "cp /srv/wrong.asc /srv/web/key.asc")
    rotated = apply_trusting(lab_node, tmp_path, text, "url.py")
    event = rotated.resources()[0]
    assert event["status"] == "failed" and event["changes"][0].startswith(
        "update key /etc/apt/keyrings/local.gpg to "), event
    assert "NO_PUBKEY " in event["error"], event["error"]
    assert lab_node.read_file(KEYRING) == good
    assert lab_node.read_file(SOURCES).decode() == WANT

    bad = apply_trusting(lab_node, tmp_path, text.replace("key.asc", "bad.asc"), "bad.py")
    assert bad.resources()[0]["error"] == (
        "https://127.0.0.1:8443/bad.asc is not an OpenPGP public key: it is not OpenPGP data "
        "(byte 0 is not a packet header)"), bad.resources()[0]
    assert lab_node.read_file(KEYRING) == good
