"""Composite types (issue 18): a cookbook's type whose actions declare other
resources, compiled and converged under a temporary root. The console shows the
inner resources indented under the composite, whose status is theirs taken
together; notifications go to and from it; guards, tags, plan mode, errors, the
JSON report and rollback. One cookbook serves the whole module: a type is loaded
once per process."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Dict, List

import pytest

from converge.agent.engine import Engine
from converge.errors import PropertyError, RecipeError
from converge.recipe import compile_recipe
from converge.report import Console
from tests.conftest import FACTS, Converger

TYPE = '''\
"""ctsite: a site made of a configuration file, a link that enables it and a
restart marker (a composite)."""

from converge import file, link, template
from converge.resources._base import prop
from converge.resources._composite import Composite


class Ctsite(Composite, type_name="ctsite"):
    """A site: its configuration, enabled by a link."""

    actions = ("create", "delete")
    notify_only = ("restart",)

    name: str = prop(doc="The site.", identity=True)
    port: int = prop(80, doc="Where it listens.")

    def create(self) -> None:
        template("/etc/sites/%s.conf" % self.name, source="site.conf.j2",
                 variables={"name": self.name, "port": self.port})
        link("/etc/enabled/%s" % self.name, to="/etc/sites/%s.conf" % self.name)

    def delete(self) -> None:
        link("/etc/enabled/%s" % self.name, action="delete")

    def restart(self) -> None:
        file("/run/%s.restarted" % self.name, content="restarted\\n")
'''

BROKEN = '''\
from converge import file
from converge.resources._base import prop
from converge.resources._composite import Composite


class Ctbroken(Composite, type_name="ctbroken"):
    """Broken on purpose."""

    actions = ("create", "crash")
    name: str = prop(doc="Its name.", identity=True)

    def create(self) -> None:
        file("/etc/%s" % self.name, mode="999")

    def crash(self) -> None:
        settings = {}
        print(settings["missing"])
'''

STACK = '''\
from converge import ctsite
from converge.resources._base import prop
from converge.resources._composite import Composite


class Ctstack(Composite, type_name="ctstack"):
    """Two sites: a composite made of composites."""

    actions = ("create",)
    name: str = prop(doc="Its name.", identity=True)

    def create(self) -> None:
        ctsite(self.name + "-a")
        ctsite(self.name + "-b")
'''

LOOP = '''\
from converge import ctloop
from converge.resources._base import prop
from converge.resources._composite import Composite


class Ctloop(Composite, type_name="ctloop"):
    """Declares itself."""

    actions = ("create",)
    name: str = prop(doc="Its name.", identity=True)

    def create(self) -> None:
        ctloop(self.name)
'''


SVC = '''\
"""ctsvc: a service's file that reloads it at once, and one that asks for a restart
from the recipe (a composite whose inner resources notify)."""

from converge import file
from converge.resources._base import prop
from converge.resources._composite import Composite


class Ctsvc(Composite, type_name="ctsvc"):
    """A service whose files notify its own reload marker and the recipe's restart."""

    actions = ("create",)
    name: str = prop(doc="The service.", identity=True)

    def create(self) -> None:
        marker = file("/run/%s.reloaded" % self.name, content="inner\\n", action="nothing")
        file("/run/%s.log" % self.name, content="inner\\n", action="nothing")
        file("/etc/%s.conf" % self.name, content="x\\n",
             notifies=[("create", marker, "immediately"),
                       ("create", "file[/run/restart]", "immediately")])
'''

DELAYED = '''\
"""ctdel: a file that notifies its own marker at the end of the run (delayed)."""

from converge import file
from converge.resources._base import prop
from converge.resources._composite import Composite


class Ctdel(Composite, type_name="ctdel"):
    """A service whose file asks for its own marker once the run ends."""

    actions = ("create",)
    name: str = prop(doc="The service.", identity=True)

    def create(self) -> None:
        marker = file("/run/%s.marked" % self.name, content="inner\\n", action="nothing")
        file("/etc/%s.ini" % self.name, content="x\\n", notifies=[("create", marker)])
'''


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("composite") / "book"
    (folder / "resources").mkdir(parents=True)
    (folder / "templates").mkdir()
    (folder / "resources/ctsite.py").write_text(TYPE)
    (folder / "resources/ctbroken.py").write_text(BROKEN)
    (folder / "resources/ctstack.py").write_text(STACK)
    (folder / "resources/ctloop.py").write_text(LOOP)
    (folder / "resources/ctsvc.py").write_text(SVC)
    (folder / "resources/ctdel.py").write_text(DELAYED)
    (folder / "templates/site.conf.j2").write_text("site {{ name }} listens on {{ port }}\n")
    return folder


@pytest.fixture
def site(book: Path, converger: Converger) -> Converger:
    for folder in ("etc/sites", "etc/enabled", "run"):
        converger.path("/" + folder).mkdir(parents=True)
    return converger


def run(book: Path, converger: Converger, recipe: str, mode: str = "apply",
        **kwargs: Any) -> List[Dict[str, Any]]:
    (book / "recipe.py").write_text(textwrap.dedent(recipe))
    plan = compile_recipe(book, facts=lambda: FACTS, **kwargs)
    return Engine(converger.system, mode=mode).run(plan)


def sha8(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:8]


def shown(events: List[Dict[str, Any]], plan: bool = False) -> List[str]:
    out = io.StringIO()
    console = Console(out, plan=plan, color=False)
    for event in events:
        console.event(event)
    return out.getvalue().splitlines()


RECIPE = """\
from converge import ctsite
ctsite("blog", port=8080)
"""


def test_inner_resources_indented_under_the_composite_then_up_to_date(
        book: Path, site: Converger) -> None:
    first = shown(run(book, site, RECIPE))
    assert first == [
        "* ctsite[blog] action create",
        "  * template[/etc/sites/blog.conf] action create",
        "    - create new file /etc/sites/blog.conf",
        "    - update content in file /etc/sites/blog.conf from none to d2b1b6fc",
        "  * link[/etc/enabled/blog] action create",
        "    - create symbolic link /etc/enabled/blog to /etc/sites/blog.conf",
    ]
    assert site.path("/etc/sites/blog.conf").read_text() == "site blog listens on 8080\n"
    second = run(book, site, RECIPE)
    assert [(e["id"], e["status"]) for e in second] == [
        ("template[/etc/sites/blog.conf]", "up_to_date"), ("link[/etc/enabled/blog]", "up_to_date"),
        ("ctsite[blog]", "up_to_date")]
    assert shown(second) == [
        "* ctsite[blog] action create (up to date)",
        "  * template[/etc/sites/blog.conf] action create (up to date)",
        "  * link[/etc/enabled/blog] action create (up to date)",
    ]


def test_updated_when_one_inner_resource_is(book: Path, site: Converger) -> None:
    run(book, site, RECIPE)
    site.path("/etc/enabled/blog").unlink()
    events = run(book, site, RECIPE)
    assert [(e["id"], e["status"]) for e in events] == [
        ("template[/etc/sites/blog.conf]", "up_to_date"), ("link[/etc/enabled/blog]", "updated"),
        ("ctsite[blog]", "updated")]
    assert [e.get("parent") for e in events] == ["ctsite[blog]", "ctsite[blog]", None]


def test_plan_mode_changes_nothing(book: Path, site: Converger) -> None:
    events = run(book, site, RECIPE, mode="plan")
    assert shown(events, plan=True)[:3] == [
        "* ctsite[blog] action create",
        "  * template[/etc/sites/blog.conf] action create",
        "    - would create new file /etc/sites/blog.conf"]
    assert events[-1]["status"] == "updated"
    assert not site.path("/etc/sites/blog.conf").exists()


def test_its_notifications_fire_when_it_is_updated_only(book: Path, site: Converger) -> None:
    recipe = """\
    from converge import ctsite, file
    reload = file("/run/reloaded", content="yes\\n", action="nothing")
    ctsite("blog", notifies=reload.create)
    """
    events = run(book, site, recipe)
    assert [(e["id"], e["status"], e.get("notified_by")) for e in events][-2:] == [
        ("ctsite[blog]", "updated", None), ("file[/run/reloaded]", "updated", "ctsite[blog]")]
    site.path("/run/reloaded").unlink()
    again = run(book, site, recipe)
    assert [e["id"] for e in again if e.get("notified_by")] == []
    assert not site.path("/run/reloaded").exists()


def test_notifying_it_runs_that_action_only_when_notified(book: Path, site: Converger) -> None:
    recipe = """\
    from converge import ctsite, file
    blog = ctsite("blog")
    file("/etc/blog.env", content="A=1\\n", notifies=blog.restart)
    """
    events = run(book, site, recipe)
    assert [(e["id"], e["action"], e["status"]) for e in events][-2:] == [
        ("file[/run/blog.restarted]", "create", "updated"),
        ("ctsite[blog]", "restart", "updated")]
    assert events[-1]["notified_by"] == "file[/etc/blog.env]"
    assert shown(events)[-4:-1] == [
        "* ctsite[blog] action restart (notified by file[/etc/blog.env])",
        "  * file[/run/blog.restarted] action create",
        "    - create new file /run/blog.restarted"]
    site.path("/run/blog.restarted").unlink()
    again = run(book, site, recipe)  # the notifier is up to date: no restart
    assert [e["id"] for e in again] == ["template[/etc/sites/blog.conf]",
                                        "link[/etc/enabled/blog]", "ctsite[blog]",
                                        "file[/etc/blog.env]"]
    assert not site.path("/run/blog.restarted").exists()


def test_subscribes_to_it_and_immediately(book: Path, site: Converger) -> None:
    recipe = """\
    from converge import ctsite, file
    blog = ctsite("blog")
    file("/run/seen", content="1\\n", action="nothing", subscribes=[("create", blog)])
    file("/etc/blog.env", content="A=1\\n", notifies=[("restart", blog, "immediately")])
    file("/etc/after", content="1\\n")
    """
    events = run(book, site, recipe)
    assert [(e["id"], e["action"]) for e in events][-5:] == [
        ("file[/etc/blog.env]", "create"), ("file[/run/blog.restarted]", "create"),
        ("ctsite[blog]", "restart"), ("file[/etc/after]", "create"),
        ("file[/run/seen]", "create")]


def test_guards_apply_to_the_whole_composite(book: Path, site: Converger) -> None:
    events = run(book, site, """\
    from converge import ctsite
    ctsite("blog", only_if=["false"])
    ctsite("shop", not_if=lambda: True)
    ctsite("wiki", only_if=["true"])
    """)
    assert [(e["id"], e["status"], e.get("skip_reason")) for e in events] == [
        ("ctsite[blog]", "skipped", "only_if"), ("ctsite[shop]", "skipped", "not_if"),
        ("template[/etc/sites/wiki.conf]", "updated", None),
        ("link[/etc/enabled/wiki]", "updated", None), ("ctsite[wiki]", "updated", None)]
    assert not site.path("/etc/sites/blog.conf").exists()


def test_a_failed_inner_resource_fails_the_composite(book: Path, site: Converger,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(book.parent)
    site.path("/etc/enabled/blog").mkdir()  # a directory where the link goes
    events = run(book, site, RECIPE)
    assert [(e["id"], e["status"]) for e in events] == [
        ("template[/etc/sites/blog.conf]", "updated"), ("link[/etc/enabled/blog]", "failed"),
        ("ctsite[blog]", "failed")]
    assert shown(events)[:2] == ["* ctsite[blog] action create (failed)",
                                 "  ! book/recipe.py:2: link[/etc/enabled/blog] failed"]


def test_each_action_has_its_own_scope(book: Path, site: Converger) -> None:
    """The recipe may declare a resource a composite declares too (each converges
    it, as in Chef); it cannot notify a resource inside a composite."""
    events = run(book, site, """\
    from converge import ctsite, link
    ctsite("blog")
    link("/etc/enabled/blog", to="/etc/sites/blog.conf")
    """)
    assert [(e["id"], e["status"]) for e in events][1:] == [
        ("link[/etc/enabled/blog]", "updated"), ("ctsite[blog]", "updated"),
        ("link[/etc/enabled/blog]", "up_to_date")]
    with pytest.raises(PropertyError, match="notifies link\\[/etc/enabled/blog\\], which no "
                                            "recipe declares"):
        run(book, site, """\
        from converge import ctsite, file
        ctsite("blog")
        file("/etc/x", content="", notifies=[("create", "link[/etc/enabled/blog]")])
        """)


def test_a_notification_names_its_own_composites_resource_first(book: Path,
                                                                site: Converger) -> None:
    """The same name inside a composite and in the recipe: an inner resource's
    notification reaches the composite's own, the recipe's reaches the recipe's;
    one the composite does not declare is looked for around it."""
    events = run(book, site, """\
    from converge import ctsvc, file
    file("/run/restart", content="restarted\\n", action="nothing")
    log = file("/run/app.log", content="outer\\n", action="nothing")
    ctsvc("app")
    outer = file("/run/app.reloaded", content="outer\\n", action="nothing")
    file("/etc/top", content="z\\n", notifies=[("create", outer, "immediately"),
                                               ("create", log, "immediately")])
    """)
    notified = [(e["id"], e.get("parent"), e["notified_by"], e["changes"][-1:])
                for e in events if e.get("notified_by")]
    assert notified == [
        ("file[/run/app.reloaded]", "ctsvc[app]", "file[/etc/app.conf]",
         ["update content in file /run/app.reloaded from none to %s" % sha8(b"inner\n")]),
        ("file[/run/restart]", None, "file[/etc/app.conf]",
         ["update content in file /run/restart from none to %s" % sha8(b"restarted\n")]),
        ("file[/run/app.reloaded]", None, "file[/etc/top]",
         ["update content in file /run/app.reloaded from %s to %s"
          % (sha8(b"inner\n"), sha8(b"outer\n"))]),
        ("file[/run/app.log]", None, "file[/etc/top]",
         ["update content in file /run/app.log from none to %s" % sha8(b"outer\n")])]


def test_delayed_notifications_of_two_resources_of_one_name_both_run(
        book: Path, site: Converger) -> None:
    """A composite's resource and the recipe's share a name; each is notified,
    delayed, by a resource of its own scope: both run at the end, each once."""
    events = run(book, site, """\
    from converge import ctdel, file
    ctdel("app")
    outer = file("/run/app.marked", content="outer\\n", action="nothing")
    file("/etc/top", content="z\\n", notifies=[("create", outer)])
    """)
    notified = [(e["id"], e["notified_by"], e["changes"][-1:])
                for e in events if e.get("notified_by")]
    assert notified == [
        ("file[/run/app.marked]", "file[/etc/app.ini]",
         ["update content in file /run/app.marked from none to %s" % sha8(b"inner\n")]),
        ("file[/run/app.marked]", "file[/etc/top]",
         ["update content in file /run/app.marked from %s to %s"
          % (sha8(b"inner\n"), sha8(b"outer\n"))])]
    assert site.path("/run/app.marked").read_text() == "outer\n"


def test_tags_given_to_it_select_its_inner_resources(book: Path, site: Converger) -> None:
    events = run(book, site, """\
    from converge import ctsite, file
    ctsite("blog", tags="web")
    file("/etc/other", content="")
    """, tags=["web"])
    assert [e["id"] for e in events] == ["template[/etc/sites/blog.conf]",
                                         "link[/etc/enabled/blog]", "ctsite[blog]"]


def test_an_error_in_an_action_names_the_recipe_line_and_the_type_line(
        book: Path, site: Converger, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(book.parent)
    with pytest.raises(PropertyError) as caught:
        run(book, site, 'from converge import ctbroken\n\nctbroken("x")\n')
    assert str(caught.value) == (
        "book/recipe.py:3: ctbroken[x]: action create: book/resources/ctbroken.py:13: "
        "file[/etc/x]: mode '999' is not an octal mode such as '0644'")
    with pytest.raises(RecipeError) as crashed:
        run(book, site, 'from converge import ctbroken\nctbroken("x", action="crash")\n')
    assert str(crashed.value) == ("book/recipe.py:2: ctbroken[x]: action crash: "
                                  "book/resources/ctbroken.py:17: KeyError: 'missing'")


def test_composites_of_composites_nest(book: Path, site: Converger) -> None:
    events = run(book, site, 'from converge import ctstack\nctstack("web")\n')
    assert [(e["id"], e.get("parent"), e["status"]) for e in events] == [
        ("template[/etc/sites/web-a.conf]", "ctsite[web-a]", "updated"),
        ("link[/etc/enabled/web-a]", "ctsite[web-a]", "updated"),
        ("ctsite[web-a]", "ctstack[web]", "updated"),
        ("template[/etc/sites/web-b.conf]", "ctsite[web-b]", "updated"),
        ("link[/etc/enabled/web-b]", "ctsite[web-b]", "updated"),
        ("ctsite[web-b]", "ctstack[web]", "updated"),
        ("ctstack[web]", None, "updated")]
    assert shown(events)[:3] == ["* ctstack[web] action create",
                                 "  * ctsite[web-a] action create",
                                 "    * template[/etc/sites/web-a.conf] action create"]
    again = run(book, site, 'from converge import ctstack\nctstack("web")\n')
    assert {e["status"] for e in again} == {"up_to_date"}


def test_a_composite_that_declares_itself_is_an_error(book: Path, site: Converger) -> None:
    with pytest.raises(RecipeError, match="ctloop\\[x\\] declares itself"):
        run(book, site, 'from converge import ctloop\nctloop("x")\n')


def test_a_composite_type_needs_a_method_per_action() -> None:
    from converge.resources._composite import Composite

    with pytest.raises(TypeError, match="action 'stop' has no method"):
        class Ctnomethod(Composite, type_name="ctnomethod"):
            """No stop."""

            actions = ("create",)
            notify_only = ("stop",)

            def create(self) -> None:
                pass
    from converge.resources._base import REGISTRY

    assert "ctnomethod" not in dict.keys(REGISTRY)  # refused before it registered


def test_its_typed_signature(book: Path, site: Converger) -> None:
    from converge.resources._base import REGISTRY
    from converge.stubs import signature

    run(book, site, RECIPE, mode="plan")  # loads the cookbook's types
    assert signature(REGISTRY["ctsite"]).startswith(
        "def ctsite(name: str, port: int = ..., *, action: Union[str, Sequence[str], None]")


# -- as a user runs it ----------------------------------------------------------------------


def converge(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "converge", *args], cwd=cwd,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)


def test_json_report_and_rollback_through_the_cli(book: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    for folder in ("etc/sites", "etc/enabled", "run"):
        (root / folder).mkdir(parents=True)
    (root / "etc/sites/blog.conf").write_text("old\n")
    (book / "recipe.py").write_text(RECIPE)
    done = converge("apply", "--root", str(root), str(book), "--json", "report.json",
                    cwd=book.parent)
    assert done.returncode == 0, done.stderr
    assert "* ctsite[blog] action create\n  * template[/etc/sites/blog.conf] action create\n" \
        in done.stdout
    report = json.loads((book.parent / "report.json").read_text())
    resources = report["hosts"]["localhost"]["resources"]
    assert [(r["id"], r.get("parent"), r.get("composite")) for r in resources] == [
        ("template[/etc/sites/blog.conf]", "ctsite[blog]", None),
        ("link[/etc/enabled/blog]", "ctsite[blog]", None), ("ctsite[blog]", None, True)]
    back = converge("rollback", "--yes", "--root", str(root), cwd=book.parent)
    assert back.returncode == 0, back.stdout + back.stderr
    assert (root / "etc/sites/blog.conf").read_text() == "old\n"
    assert not (root / "etc/enabled/blog").is_symlink()


def test_the_html_report_says_what_an_inner_resource_is_part_of(book: Path,
                                                                 site: Converger) -> None:
    from converge.html_report import _resource

    events = run(book, site, RECIPE)
    assert '<p class="meta">part of ctsite[blog]</p>' in _resource(events[0])
    assert not any("part of" in line for line in _resource(events[-1]))


def test_a_sensitive_composite_hides_its_inner_resources_content(book: Path,
                                                                 site: Converger) -> None:
    events = run(book, site, 'from converge import ctsite\nctsite("vault", port=4242, '
                             'sensitive=True)\n', mode="plan")
    template = events[0]
    assert template["id"] == "template[/etc/sites/vault.conf]"
    assert template["diffs"] == []
    assert template["changes"][-1].endswith("(sensitive)")
    assert "4242" not in json.dumps(events)
