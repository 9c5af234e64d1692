"""The artifact stage: a compress entry's steps applied to the model, each step cached by content.

A chain's steps are keyed one by one (each by the bytes of the artifact before it), so
`[prune, int8-static]` reuses a cached `prune` and a changed `int8-static` parameter rebuilds only
the last step.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import edgecheck
from edgecheck import progress
from edgecheck.cache import ArtifactCache, content_key, tool_versions
from edgecheck.compress import (ORIGINAL, Artifact, Recipe, RecipeContext, RecipeNotApplicable, get_recipe,
                                tool_message)
from edgecheck.formats import inspect_model
from edgecheck.model import file_sha256
from edgecheck.errors import RecipeError
from edgecheck.spec import RecipeStep
from edgecheck.spec.schema import CANDIDATE


@dataclass(frozen=True)
class MadeArtifact:
    """The final artifact of an entry, what each step did, and how many steps came from the cache."""

    artifact: Artifact
    notes: dict[str, str]
    cached_steps: int
    steps: int


def model_sha256(path: Path) -> str:
    """SHA-256 of a model file and its external data."""
    return inspect_model(path).sha256


def step_key(model: Path, step: RecipeStep, calibration: Path | None,
             sha256_of: Callable[[Path], str] = model_sha256) -> str:
    """Everything that decides a step's output: input bytes, recipe, parameters, data, tool versions."""
    recipe = get_recipe(step.recipe)
    params = recipe.parse_params(step.params)
    return content_key(
        kind="artifact",
        model=sha256_of(model),  # the file and its external data
        recipe=recipe.name,
        recipe_version=recipe.version,
        params=params.model_dump(mode="json"),
        calibration=file_sha256([calibration]) if recipe.uses_calibration and calibration else None,
        tools=tool_versions(recipe.tools),
        edgecheck=edgecheck.__version__,
        code=_code_digest(recipe.apply, recipe.sources),
    )


@functools.lru_cache(maxsize=None)
def _code_digest(apply: object, sources: tuple[Path, ...] = ()) -> str:
    """SHA-256 of the source that makes an artifact (the recipe's module, the registry, the data
    loading, and the other files the recipe names: a converter's driver), so an edited recipe never
    reuses what an older version built, whatever the version says."""
    import edgecheck.analysis.constants
    import edgecheck.compress
    import edgecheck.data

    compress = Path(inspect.getfile(edgecheck.compress)).parent
    files = {inspect.getfile(apply), inspect.getfile(edgecheck.compress), inspect.getfile(edgecheck.data),  # type: ignore[arg-type]
             *(str(compress / name) for name in ("verify.py", "diff.py")),  # every step's check
             inspect.getfile(edgecheck.analysis.constants),
             *map(str, sources)}
    return file_sha256([Path(f) for f in sorted(files)])


def apply_here(recipe: Recipe, params: dict[str, Any] | None, source: Path, context: RecipeContext) -> Artifact:
    """Apply a recipe step in this process (library use; a pytest session applies them in workers)."""
    try:
        return recipe.make(source, recipe.parse_params(params), context)
    except RecipeError:
        raise
    except Exception as exc:  # a third-party recipe's bug or a tool's error: a named failure
        raise RecipeError(f"recipe {recipe.name!r} failed on {source.name}: {tool_message(exc)}") from exc


ApplyStep = Callable[[Recipe, "dict[str, Any] | None", Path, RecipeContext], Artifact]


def make_artifact(model: Path, steps: tuple[RecipeStep, ...], calibration: Path | None,
                  cache: ArtifactCache, candidate: Path | None = None,
                  sha256_of: Callable[[Path], str] = model_sha256, apply_step: ApplyStep = apply_here,
                  label: str = "") -> MadeArtifact:
    """Apply the steps in order; raises `RecipeError` (or `RecipeNotApplicable`) naming the step.

    A first step `candidate` starts from the spec's candidate model instead of `model`. `sha256_of`
    lets a caller that already knows models' digests (the executor) spare loading them again;
    `apply_step` is where a step runs (the executor's runs it in a worker process). `label` names the
    entry in progress lines (default: its recipes).
    """
    if steps and steps[0].recipe == CANDIDATE:
        if candidate is None:
            raise RecipeError("the step 'candidate' needs a candidate model in the spec")
        model, steps = candidate, steps[1:]
    if not steps:
        return MadeArtifact(Artifact(model, ORIGINAL, {"did": "nothing (the model as given)"}), {}, 0, 0)
    current = model
    notes: dict[str, str] = {}
    cached = 0
    artifact = None
    repeated = len({s.recipe for s in steps}) < len(steps)
    for index, step in enumerate(steps, start=1):
        recipe = get_recipe(step.recipe)
        recipe.parse_params(step.params)  # a bad parameter fails here, before any worker starts
        source = current

        title = f"making {label or '+'.join(s.recipe for s in steps)} from {model.name}" + (
            f", step {index}/{len(steps)} {recipe.name}" if len(steps) > 1 else "")

        def build(folder: Path, recipe=recipe, params=step.params, source=source, title=title) -> Artifact:
            with progress.step(title):  # only a step the cache does not have is made, and said
                return apply_step(recipe, params, source, RecipeContext(calibration=calibration, out_dir=folder))

        try:
            artifact, hit = cache.artifact(step_key(source, step, calibration, sha256_of), build)
        except RecipeNotApplicable as exc:  # in a chain, say which step: [int8-dynamic, int8-dynamic]
            if len(steps) == 1:
                raise
            chain = ", ".join(s.recipe for s in steps)
            raise RecipeNotApplicable(f"step {index} of [{chain}]: {exc}") from None
        cached += hit
        prefix = "" if len(steps) == 1 else f"{index}.{step.recipe}." if repeated else f"{step.recipe}."
        notes.update({f"{prefix}{k}": v for k, v in artifact.notes.items()})
        current = artifact.path
    assert artifact is not None
    return MadeArtifact(artifact, notes, cached, len(steps))
