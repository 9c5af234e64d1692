"""Compression recipes: each turns the original model into an artifact to check.

Shipped: `none` (the original itself, always checked), `int8-dynamic` and `int8-static`
(quantize.py). FP16, pruning and low-rank recipes register here the same way; an unknown name is
refused when the spec is collected.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edgecheck.errors import RecipeError

ORIGINAL = "none"


@dataclass(frozen=True)
class Artifact:
    """A model file produced by a recipe, with what the recipe did to it."""

    path: Path
    recipe: str
    notes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RecipeContext:
    """What a recipe may use besides the model: the spec's calibration data and a scratch folder."""

    calibration: Path | None
    work_dir: Callable[[], Path]  # called only by recipes that write files, so `none` creates nothing


Recipe = Callable[[Path, RecipeContext], Artifact]
_recipes: dict[str, Recipe] = {}


def register_recipe(name: str) -> Callable[[Recipe], Recipe]:
    def add(function: Recipe) -> Recipe:
        _recipes[name] = function
        return function

    return add


def known_recipes() -> list[str]:
    return sorted(_recipes)


@register_recipe(ORIGINAL)
def keep_original(model: Path, context: RecipeContext) -> Artifact:
    """The original model, unchanged: the baseline every recipe is compared with."""
    return Artifact(path=model, recipe=ORIGINAL, notes={"did": "nothing (the original model)"})


def apply_recipe(name: str, model: Path, context: RecipeContext) -> Artifact:
    recipe = _recipes.get(name)
    if recipe is None:
        raise RecipeError(f"unknown recipe {name!r} (known: {', '.join(known_recipes())})")
    return recipe(model, context)


from edgecheck.compress import quantize  # noqa: E402,F401  (registers the INT8 recipes)
