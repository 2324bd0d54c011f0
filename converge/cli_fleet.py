"""The options that choose what a run converges and in what order: ``--tags``,
``--skip-tags``, ``--serial``, ``--max-fail`` (and ``--list-tags`` on plan), declared
once and handed to a command as one :class:`Selection`; and ``--limit @failed``."""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, List, Optional, Sequence, Tuple

import typer

TagsOpt = typer.Option([], "--tags", "-t", metavar="TAG[,TAG]", help="Only resources with "
                       "one of these tags (and those tagged 'always'); repeatable.")
SkipTagsOpt = typer.Option([], "--skip-tags", metavar="TAG[,TAG]", help="Leave out resources "
                           "with one of these tags; repeatable.")
SerialOpt = typer.Option(None, "--serial", metavar="N|N%|LIST", help="Converge the hosts in "
                         "batches of N hosts (or N%% of them; '1,5,25%%' grows them), in "
                         "inventory order, each batch finished before the next starts.")
MaxFailOpt = typer.Option(None, "--max-fail", metavar="N|N%", help="Start no further batch "
                          "once more than N hosts (or N%% of them) failed or were "
                          "unreachable; the run exits 3 (aborted).")
ListTagsOpt = typer.Option(False, "--list-tags", help="Print the tags the recipe uses, and "
                           "nothing else.")


class Selection:
    """What the selection options say (all empty: everything, all hosts at once)."""

    def __init__(self, tags: Sequence[str] = (), skip_tags: Sequence[str] = (),
                 serial: Optional[str] = None, max_fail: Optional[str] = None,
                 list_tags: bool = False) -> None:
        self.tags = _split(tags)
        self.skip_tags = _split(skip_tags)
        self.serial = serial
        self.max_fail = max_fail
        self.list_tags = list_tags

    def run_options(self) -> dict[str, Any]:
        """Keyword arguments for runner.run."""
        return {"tags": self.tags, "skip_tags": self.skip_tags, "serial": self.serial,
                "max_fail": self.max_fail}


def _split(values: Sequence[str]) -> List[str]:
    return [t.strip() for value in values for t in value.split(",") if t.strip()]


def with_selection(*, batches: bool = True, list_tags: bool = False
                   ) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Give a command --tags and --skip-tags (and --serial, --max-fail where it runs
    hosts; --list-tags on plan), handed to it as ``selection``."""
    options: List[Tuple[str, Any, Any]] = [("tags", List[str], TagsOpt),
                                           ("skip_tags", List[str], SkipTagsOpt)]
    if batches:
        options += [("serial", Optional[str], SerialOpt), ("max_fail", Optional[str],
                                                           MaxFailOpt)]
    if list_tags:
        options.append(("list_tags", bool, ListTagsOpt))

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        signature = inspect.signature(command)
        own = [p for p in signature.parameters.values() if p.name != "selection"]
        added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option,
                                   annotation=kind) for name, kind, option in options]

        @functools.wraps(command)
        def wrapper(**values: Any) -> None:
            chosen = {name: values.pop(name) for name, _, _ in options}
            command(selection=Selection(**chosen), **values)

        wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=own + added)
        return wrapper

    return decorate


def resolve_failed(limit: Sequence[str]) -> List[str]:
    """``--limit @failed`` (the last recorded run's failed, unreachable and never
    started hosts) or ``@failed:RUN_ID``, as host names; other patterns unchanged."""
    out: List[str] = []
    for item in limit:
        for pattern in item.split(","):
            pattern = pattern.strip()
            if pattern == "@failed" or pattern.startswith("@failed:"):
                from .store import connect

                store = connect(None)
                try:
                    run_id = store.resolve(pattern.partition(":")[2] or None)
                    hosts = store.failed_hosts(run_id)
                finally:
                    store.close()
                if not hosts:
                    from .errors import InventoryError

                    raise InventoryError("--limit %s: run %s had no failed, unreachable or "
                                         "never started host" % (pattern, run_id))
                out.extend(hosts)
            elif pattern:
                out.append(pattern)
    return out
