"""Compression recipes: each turns a model file into an artifact to check.

A recipe is a named entry in a registry with a pydantic model of its parameters, so a spec's
`compress:` entries are validated (unknown recipe, unknown or mistyped parameter) when the spec is
collected. A module of recipes registers them with `register_recipe` when imported; the modules come
through the `edgecheck.recipes` entry point group (the vendors' own: edgecheck/vendors/tflite/recipes.py,
edgecheck/vendors/rknn/recipes.py). Here: `none` (the model itself), `fp16`, `int8-dynamic`,
`int8-static`, `prune` and `lowrank`. A chain applies steps in order, each
to the previous step's artifact (edgecheck/artifacts.py). Recipes know nothing of caching: they write into the
folder they are given, and the cache (edgecheck.cache) decides whether they run at all.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from edgecheck import progress
from edgecheck.errors import RecipeError, did_you_mean
from edgecheck.strict import StrictModel

# The no-network guard loaded into every converter a recipe starts (a folder on PYTHONPATH, not a package).
OFFLINE_GUARD = Path(__file__).resolve().with_name("offline")

ORIGINAL = "none"


class RecipeNotApplicable(RecipeError):
    """The recipe has nothing to do on this model (e.g. no weight that low-rank factors would shrink).

    Its checks are skipped with the reason (failed under --edge-strict); other recipes still run.
    """


class RecipeUnavailable(RecipeNotApplicable):
    """The recipe's tool is not installed here (a converter environment not created): skipped with the
    command that installs it, like a backend that cannot run here (failed under --edge-strict)."""


class RecipeParams(StrictModel):
    """Base of every recipe's parameters: unknown names, NaN and booleans for numbers are refused."""


class NoParams(RecipeParams):
    pass


@dataclass(frozen=True)
class Artifact:
    """A model file produced by a recipe, with what the recipe did to it (shown in reports)."""

    path: Path
    recipe: str
    notes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RecipeContext:
    """What a recipe may use besides the model: the spec's calibration data and its output folder.

    `out_dir` exists and is empty; the recipe writes its artifact (and any external data) there.
    """

    calibration: Path | None
    out_dir: Path
    time_limit_s: float | None = None  # the worker's limit for this step (edge_worker_timeout), when known
    # CPU threads a runtime session the recipe runs itself may use (int8-static's calibration): the session's share
    # of the host's cores under pytest-xdist; None: the runtime's default (one per physical core)
    threads: int | None = None
    started: float = field(default_factory=time.monotonic)  # when the step's limit began to count

    def tool_timeout_s(self, default: float = 240.0) -> float:
        """How long an external tool started now may run: what is left of the worker's limit for this
        step less a margin, so a hung tool still fails with its own log and step whatever the recipe's
        own work took before it (slow on a loaded machine); the limit grows with edge_worker_timeout."""
        if self.time_limit_s is None:
            return default
        left = self.time_limit_s - (time.monotonic() - self.started)
        return round(max(left - min(30.0, self.time_limit_s * 0.2), 1.0), 1)


ApplyFunction = Callable[[Path, Any, RecipeContext], Artifact]


@dataclass(frozen=True)
class Recipe:
    """A registered recipe. `tools` are the distributions whose versions change its output (they go
    into the cache key with `version`, which a recipe bumps when its own code changes its output).
    `takes` are the artifact formats it accepts, by name ("onnx"; "*" for any); `makes` the one it writes
    (None: the format it was given). A suffix (".onnx") is taken for its format, as before formats had names."""

    name: str
    apply: ApplyFunction
    params: type[RecipeParams] = NoParams
    summary: str = ""
    tools: tuple[str, ...] = ()
    uses_calibration: bool = False
    version: int = 1
    takes: tuple[str, ...] = ("onnx",)
    makes: str | None = None
    sources: tuple[Path, ...] = ()  # code besides its module that decides its output (cache key)
    calibration_optional: bool = False  # reads data.calibration when the spec has it (shapes), runs without

    def make(self, source: Path, params: RecipeParams, context: RecipeContext) -> Artifact:
        """Apply the recipe, then verify its artifact (edgecheck.compress.verify): its runtime loads it
        (else `RecipeError` with the runtime's words), and the notes say what the files show it did
        (`RecipeNotApplicable` where it changed nothing). Run where the recipe runs: in a worker."""
        artifact = self.apply(source, params, context)
        if self.name == ORIGINAL:
            return artifact
        from edgecheck.compress.verify import verify_artifact

        with progress.step(f"checking {artifact.path.name}"):  # its runtime loads it: an .rknn builds again
            return verify_artifact(self.name, source, artifact)

    def takes_suffixes(self) -> tuple[str, ...]:
        """The file suffixes of the formats it takes (declared by format name, or by suffix as before)."""
        return tuple(_suffix(f) for f in self.takes)

    def accepts(self, suffix: str) -> bool:
        return ANY_FORMAT in self.takes or suffix in self.takes_suffixes()

    def output_format(self, given: str) -> str:
        """The suffix of what it writes from a `given` suffix."""
        return _suffix(self.makes) if self.makes else given

    def parse_params(self, raw: dict[str, Any] | None) -> RecipeParams:
        """Validated parameters; a `RecipeError` lists what is wrong and the parameters that exist."""
        try:
            return self.params.model_validate(raw or {})
        except ValidationError as exc:
            problems = []
            for error in exc.errors():
                where = ".".join(str(p) for p in error["loc"]) or "parameters"
                message = error["msg"].removeprefix("Value error, ")
                if error["type"] == "extra_forbidden":
                    message = f"unknown parameter (known: {', '.join(self.params.model_fields) or 'none'})"
                    close = difflib.get_close_matches(where, list(self.params.model_fields), n=1)
                    message += f"; did you mean {close[0]}?" if close else ""
                problems.append(f"{where}: {message}")
            raise RecipeError(f"recipe {self.name!r}: " + "; ".join(problems)) from None


ANY_FORMAT = "*"  # a recipe that takes a model in any format (`none`)


def _suffix(name: str) -> str:
    """A format by name ('tflite') as its files' suffix ('.tflite'); a suffix stays one."""
    if name.startswith("."):
        return name
    from edgecheck.formats import suffix_text

    return suffix_text(name)


_recipes: dict[str, Recipe] = {}


def register_recipe(
    name: str,
    params: type[RecipeParams] = NoParams,
    *,
    summary: str = "",
    tools: tuple[str, ...] = (),
    uses_calibration: bool = False,
    version: int = 1,
    takes: tuple[str, ...] = ("onnx",),
    makes: str | None = None,
    sources: tuple[Path, ...] = (),
    calibration_optional: bool = False,
) -> Callable[[ApplyFunction], ApplyFunction]:
    """Decorator: register `apply(model, params, context) -> Artifact` under `name`. `uses_calibration`: the
    calibration file is an input of the artifact (cache key); `calibration_optional`: the recipe also runs
    without one, so a spec without `data.calibration` is not an error for it."""

    def add(function: ApplyFunction) -> ApplyFunction:
        text = summary or ((function.__doc__ or "").strip().splitlines() or [""])[0]
        _recipes[name] = Recipe(name, function, params, text, tools, uses_calibration, version, takes, makes,
                                tuple(sources), calibration_optional)
        return function

    return add


def unregister_recipe(name: str) -> None:
    """Forget a recipe (a conftest's, at the end of its session, so it does not leak into the next)."""
    _recipes.pop(name, None)


_plugins: dict[str, str] | None = None  # entry point → why it failed to import ("" when it loaded)


def _discover() -> None:
    """Import every module of the `edgecheck.recipes` entry point group once: each registers its recipes
    (the vendors' own come this way too)."""
    global _plugins
    if _plugins is not None:
        return
    from edgecheck.entrypoints import RECIPES, load_group

    _plugins = {loaded.name: loaded.error for loaded in load_group(RECIPES)}


def broken_recipe_plugins() -> dict[str, str]:
    """Recipe plug-ins (entry point name) that failed to import, with why: their recipes are missing."""
    _discover()
    return {plugin: error for plugin, error in (_plugins or {}).items() if error}


def known_recipes() -> list[str]:
    _discover()
    return sorted(_recipes)


def get_recipe(name: str) -> Recipe:
    _discover()
    recipe = _recipes.get(name)
    if recipe is None:
        broken = "; ".join(f"{plugin}: {error}" for plugin, error in (_plugins or {}).items() if error)
        raise RecipeError(f"unknown recipe {name!r} (known: {', '.join(known_recipes())})"
                          + did_you_mean(name, known_recipes())
                          + (f"; recipe plugins that failed to load: {broken}" if broken else ""))
    return recipe


def artifact_path(model: Path, recipe: str, context: RecipeContext, suffix: str = ".onnx") -> Path:
    """Where a recipe writes: `<model stem>.<recipe>.onnx` in its folder, so messages name the step."""
    return context.out_dir / f"{model.stem}.{recipe}{suffix}"


def copy_model(model: Path, folder: Path) -> Path:
    """A copy of an ONNX model and its external data (under the names the model gives them) in
    `folder`, for a tool that may write to its input or beside it: the user's files are never handed over."""
    import shutil

    from edgecheck.model import external_data_files

    copy = folder / model.name
    shutil.copyfile(model, copy)
    for data in external_data_files(model):
        target = folder / data.relative_to(model.parent.resolve())
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data, target)
    return copy


def tool_message(exc: BaseException) -> str:
    """A tool's error as one readable line for a failure message: its type and its whole message (a
    node's name is often on a later line), shortened in the middle only past 2000 characters."""
    from edgecheck.model import one_line

    return f"{type(exc).__name__}: {one_line(str(exc))}"


def load_model_for_editing(path: Path) -> Any:
    """A fresh, checked parse of the model with any external data read into memory: the copy a
    recipe edits (the user's file is never touched)."""
    from onnx.external_data_helper import load_external_data_for_model, uses_external_data

    from edgecheck.model import load_onnx

    model = load_onnx(path)
    if any(uses_external_data(t) for t in model.graph.initializer):
        load_external_data_for_model(model, str(path.parent))
    return model


def save_model(model: Any, path: Path) -> Path:
    """Check and write an ONNX model; over 1.8 GB the weights go to `<name>.data` beside it."""
    import onnx

    onnx.checker.check_model(model)
    large = model.ByteSize() > 1_800_000_000
    onnx.save_model(model, str(path), save_as_external_data=large, all_tensors_to_one_file=True,
                    location=f"{path.name}.data" if large else None)
    return path


@register_recipe(ORIGINAL, summary="the model itself, unchanged: the baseline every recipe is compared with",
                 takes=(ANY_FORMAT,))
def keep_original(model: Path, params: NoParams, context: RecipeContext) -> Artifact:
    return Artifact(path=model, recipe=ORIGINAL, notes={"did": "nothing (the model as given)"})


from edgecheck.compress import fp16, lowrank, prune, quantize  # noqa: E402,F401  (they register recipes)
