"""The compile context: the one ContextVar through which resource calls find the
recipe being compiled. Standard library only (resources import it)."""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING, Optional

from .errors import RecipeError

if TYPE_CHECKING:
    from .recipe import RecipeContext

CURRENT: contextvars.ContextVar[Optional["RecipeContext"]] = contextvars.ContextVar(
    "converge_recipe", default=None
)


def current() -> "RecipeContext":
    """The recipe being compiled, or a clear error outside of one."""
    ctx = CURRENT.get()
    if ctx is None:
        raise RecipeError(
            "resources can only be declared while a recipe is compiled",
            hint="run the recipe with `converge apply recipe.py`, or compile it with "
            "converge.recipe.compile_recipe()",
        )
    return ctx


def active() -> Optional["RecipeContext"]:
    return CURRENT.get()
