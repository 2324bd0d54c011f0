"""Docs and code agree: the generated reference is fresh; every example compiles; every
converge snippet shown in docs/ is a real file that runs.

Snippets: a code block in a docs/*.md page that shows a file is preceded by a
marker naming that file, relative to the repository root::

    <!-- snippet: docs/snippets/hello.py -->
    ```python
    from converge import file
    ...
    ```

The block must be byte-identical to the file (a stale page fails), and every
``python`` block of a page that declares resources (``from converge import``) must
carry a marker. The recipes under docs/snippets/ (``*.py``, and cookbook folders
with a ``recipe.py``) must each be shown by some page, compile, and converge in a
lab node with ``converge apply`` as the pages show it (run from a scratch
directory, with the arguments in ``RUN_ARGS``), the second run all up to date.
One node serves every snippet (and examples/hello.py, run as the README shows
it), to keep the lab time small. Inventories there (``*.yml``) must load.
docs/README.md and README.md must link every page.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from converge.docs import reference_markdown

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
SNIPPETS = DOCS / "snippets"


def test_resource_reference_is_fresh() -> None:
    page = DOCS / "resources.md"
    assert page.read_text() == reference_markdown(), (
        "docs/resources.md is stale: run `python -m converge.docs > docs/resources.md`")


EXAMPLES = sorted((REPO / "examples").glob("*.py"))


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_compiles(example: Path, tmp_path: Path, monkeypatch) -> None:
    from converge.recipe import compile_recipe
    from tests.conftest import FACTS

    monkeypatch.chdir(tmp_path)
    plan = compile_recipe(example, facts=lambda: FACTS)
    assert plan.steps, example


def test_the_readme_first_recipe_is_harmless_to_apply_here(tmp_path: Path) -> None:
    """The README's first recipe is for "the machine itself": it may only make files
    and folders under the current directory, and it runs (twice) as it says."""
    import subprocess

    from converge.recipe import compile_recipe
    from tests.conftest import FACTS

    block = re.search(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    assert block, "README.md lost its recipe"
    recipe = tmp_path / "recipe.py"
    recipe.write_text(block.group(1))
    work = tmp_path / "work"
    work.mkdir()
    plan = compile_recipe(recipe, facts=lambda: FACTS)
    for step in plan.steps:
        assert step.type in ("file", "directory"), step.id
        assert not step.props["path"].startswith("/"), step.id
    runs = [subprocess.run([sys.executable, "-m", "converge", "apply", str(recipe)], cwd=work,
                           capture_output=True, text=True, stdin=subprocess.DEVNULL)
            for _ in range(2)]
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr
    assert (work / "hello/motd").read_text() == "Hello Tunnelix\n"
    assert runs[1].stdout.count("(up to date)") == len(plan.steps)


def test_the_readme_oom_recipe_is_the_example_run_in_a_lab_node() -> None:
    """The OOM recipe (panic_on_oom) is shown later, as examples/oom.py, applied in a
    lab node; the block is the file."""
    text = (REPO / "README.md").read_text()
    marker = text.index("<!-- snippet: examples/oom.py -->\n")
    fence = FENCE.match(text, marker + len("<!-- snippet: examples/oom.py -->\n"))
    assert fence and fence["body"] == (REPO / "examples/oom.py").read_text()
    assert text.index("```python") < marker  # the harmless recipe comes first
    assert 'converge apply examples/oom.py -i "$(converge lab inventory)"' in text


# -- snippets ---------------------------------------------------------------------------

MARKER = re.compile(r"<!-- snippet: (?P<path>\S+) -->\n")
FENCE = re.compile(r"```(?P<lang>[\w-]*)\n(?P<body>.*?)^```$", re.S | re.M)
RECIPE_LINE = re.compile(r"^from converge import ", re.M)
PAGES = sorted(DOCS.glob("*.md"))

# Arguments a page gives `converge apply` for a snippet (relative to docs/snippets).
RUN_ARGS = {"cookbooks/motd": ["-a", "motd.contact=ops@example.com"]}
# What a snippet's daemon needs in a lab node before the first run, as a shell line.
# chronyd sets the clock, which needs CAP_SYS_TIME that nodes lack; it then dies,
# at a moment that depends on the machine's load (a restart could pass or fail).
# With -x it leaves the clock alone and runs, so the snippet is checked whole. The
# file is chrony's conffile: apt keeps it (--force-confold) when the package comes.
NODE_SETUP = {"chrony.py": "printf 'DAEMON_OPTS=\"-F 1 -x\"\\n' > /etc/default/chrony"}


def marked_blocks(page: Path) -> list[tuple[str, str, str]]:
    """(file named by the marker, language, block body) for each marked block."""
    text = page.read_text()
    found = []
    for marker in MARKER.finditer(text):
        fence = FENCE.match(text, marker.end())
        assert fence, (f"{page.name}: the marker for {marker['path']} is not directly "
                       "followed by a fenced code block")
        found.append((marker["path"], fence["lang"], fence["body"]))
    return found


def unmarked_recipes(page: Path) -> list[str]:
    """Python blocks declaring resources that no marker ties to a file."""
    text = page.read_text()
    marked = {m.end() for m in MARKER.finditer(text)}
    return [fence["body"].splitlines()[0] for fence in FENCE.finditer(text)
            if fence["lang"] == "python" and RECIPE_LINE.search(fence["body"])
            and fence.start() not in marked]


def snippet_recipes() -> list[Path]:
    """Recipe files and cookbook folders under docs/snippets."""
    recipes = []
    for path in sorted(SNIPPETS.rglob("*.py")):
        if {"templates", "files", "resources"} & set(path.relative_to(SNIPPETS).parts[:-1]):
            continue
        recipes.append(path.parent if path.name == "recipe.py" else path)
    return recipes


def shown_files() -> set[Path]:
    return {(REPO / path).resolve() for page in PAGES for path, _, _ in marked_blocks(page)}


RECIPES = snippet_recipes()
RECIPE_IDS = [str(p.relative_to(SNIPPETS)) for p in RECIPES]


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_marked_blocks_are_the_files(page: Path) -> None:
    for path, _, body in marked_blocks(page):
        source = REPO / path
        assert source.is_file(), f"{page.name}: snippet {path} does not exist"
        assert body == source.read_text(), (
            f"{page.name}: the block marked {path} differs from the file; copy the file "
            "into the page again")
    assert not unmarked_recipes(page), (
        f"{page.name}: recipe blocks without a `<!-- snippet: FILE -->` marker (put the "
        f"code in docs/snippets/ and mark the block): {unmarked_recipes(page)}")


def test_every_snippet_recipe_is_shown() -> None:
    shown = shown_files()
    for recipe in RECIPES:
        shown_as = recipe / "recipe.py" if recipe.is_dir() else recipe
        assert shown_as.resolve() in shown, (
            f"{shown_as.relative_to(REPO)} is shown by no page in docs/")


@pytest.mark.parametrize("recipe", RECIPES, ids=RECIPE_IDS)
def test_snippet_compiles(recipe: Path, tmp_path: Path, monkeypatch) -> None:
    from converge.recipe import compile_recipe, parse_assignments
    from tests.conftest import FACTS

    monkeypatch.chdir(tmp_path)
    attrs = parse_assignments(RUN_ARGS.get(str(recipe.relative_to(SNIPPETS)), [])[1::2])
    plan = compile_recipe(recipe, facts=lambda: FACTS, attrs=attrs)
    assert plan.steps, recipe


@pytest.mark.parametrize("inventory", sorted(SNIPPETS.glob("*.yml")),
                         ids=lambda p: p.name)
def test_snippet_inventory_loads(inventory: Path) -> None:
    from converge.inventory import load

    hosts = load(str(inventory)).select()
    assert hosts, inventory


def test_ansible_inventory_snippet_says_what_the_ini_beside_it_says() -> None:
    from converge.inventory import load

    inventory = load(str(SNIPPETS / "inventory.yml"))
    prod = {host.name: host for host in inventory.select(["prod"])}
    assert sorted(prod) == ["db1", "web1", "web2"]
    assert (prod["web1"].user, prod["web1"].become) == ("deploy", True)
    assert prod["web1"].vars == {"motd": {"contact": "web-team@example.com"}}
    assert (prod["db1"].port, prod["db1"].user, prod["db1"].become) == (2222, "root", False)
    assert [h.name for h in inventory.select(["prod,!db1"])] == ["web1", "web2"]


# -- in a lab node ------------------------------------------------------------------------

WORKDIR = "/tmp/converge-snippets"


@pytest.fixture(scope="module")
def snippet_node(lab):
    """One node for every snippet, with the packages they install in the lab repository."""
    from converge.lab.idempotence import mirror_for, recipe_packages

    packages = sorted({name for recipe in RECIPES for name in recipe_packages(recipe)})
    mirror_for(lab, packages)
    node = lab.up(1)[0]
    try:
        done = node.run(["sh", "-c", f"mkdir -p {WORKDIR} && apt-get update -qq"], timeout=300)
        assert done.returncode == 0, done.stderr
        yield node
    finally:
        lab.down([node.name])


def apply_in(node, recipe: Path, args: list[str], report: str, cwd: str = WORKDIR):
    """`converge apply RECIPE ARGS` in `cwd` inside the node, with this checkout's converge."""
    import json

    from converge.lab.idempotence import ApplyRun

    argv = ["env", "-C", cwd, f"PYTHONPATH={REPO}", sys.executable, "-m", "converge",
            "apply", str(recipe), "--json", report, *args]
    done = node.run(argv, env={"PYTHONDONTWRITEBYTECODE": "1"}, timeout=600)
    try:
        data = json.loads(node.read_file(report))
    except (FileNotFoundError, ValueError):
        data = {}
    return ApplyRun(done.returncode, done.stdout, done.stderr, data)


@pytest.mark.lab
@pytest.mark.parametrize("recipe", RECIPES, ids=RECIPE_IDS)
def test_snippet_converges_then_is_up_to_date(recipe: Path, snippet_node) -> None:
    from converge.lab.idempotence import IdempotenceResult

    args = RUN_ARGS.get(str(recipe.relative_to(SNIPPETS)), [])
    setup = NODE_SETUP.get(str(recipe.relative_to(SNIPPETS)))
    if setup:
        done = snippet_node.run(["sh", "-c", setup])
        assert done.returncode == 0, done.stderr
    first = apply_in(snippet_node, recipe, args, f"{WORKDIR}/first.json")
    second = apply_in(snippet_node, recipe, args, f"{WORKDIR}/second.json")
    result = IdempotenceResult(snippet_node.name, str(recipe), first, second)
    assert result.ok, result.describe()



def test_docs_index_links_every_page() -> None:
    index = (DOCS / "README.md").read_text()
    readme = (REPO / "README.md").read_text()
    for page in PAGES:
        if page.name != "README.md":
            assert f"]({page.name})" in index, f"docs/README.md does not link {page.name}"
            assert f"](docs/{page.name})" in readme, f"README.md does not link docs/{page.name}"


@pytest.mark.lab
def test_hello_example_runs_as_the_readme_shows(snippet_node) -> None:
    """`converge apply examples/hello.py`, twice, makes file.txt in the current directory."""
    from converge.lab.idempotence import IdempotenceResult

    cwd = f"{WORKDIR}/hello-example"
    assert snippet_node.run(["mkdir", "-p", cwd]).returncode == 0
    example = REPO / "examples" / "hello.py"
    first = apply_in(snippet_node, example, [], f"{WORKDIR}/first.json", cwd=cwd)
    second = apply_in(snippet_node, example, [], f"{WORKDIR}/second.json", cwd=cwd)
    result = IdempotenceResult(snippet_node.name, str(example), first, second)
    assert result.ok and first.with_status("updated"), result.describe()
    assert snippet_node.read_file(f"{cwd}/file.txt") == b"Hello Tunnelix"


# Issue 17: each peer's resource or module has a row of the page's table naming ours.
PEER_ROWS = [("coming-from-chef.md", peer, peer)
             for peer in ("systemd_unit", "mount", "git", "hostname", "timezone")] + [
    ("coming-from-ansible.md", peer, ours) for peer, ours in [
        ("ansible.builtin.systemd_service", "systemd_unit"),
        ("ansible.builtin.systemd", "systemd_unit"), ("ansible.posix.mount", "mount"),
        ("mount", "mount"), ("ansible.builtin.git", "git"),
        ("ansible.builtin.hostname", "hostname"), ("hostname", "hostname"),
        ("community.general.timezone", "timezone"), ("timezone", "timezone")]]


@pytest.mark.parametrize("page, peer, ours", PEER_ROWS,
                         ids=["%s-%s" % (p.split("-")[-1][:-3], peer) for p, peer, _ in PEER_ROWS])
def test_peer_resource_is_mapped_to_ours(page: str, peer: str, ours: str) -> None:
    rows = [line.split(" | ", 1) for line in (DOCS / page).read_text().splitlines()
            if line.startswith("| ") and " | " in line]
    assert any("`%s`" % peer in theirs and "`%s" % ours in mine for theirs, mine in rows), (
        f"{page}: no table row maps `{peer}` to `{ours}`")
