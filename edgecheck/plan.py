"""From a spec, the device profiles and the user's selection, the list of checks to run.

This is where a spec meets the world: its targets must be known devices, its backends known
backends, its recipes known recipes and its input names the model's. Each problem is a
`SpecError` pointing at the spec's line, raised while collecting, before anything runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecheck.backends import backend_reads, backend_suffixes, known_backends
from edgecheck.backends.registry import reference_backend_of, running_backends
from edgecheck.checks.base import get_check
from edgecheck.compress import ORIGINAL, get_recipe, known_recipes
from edgecheck.synthetic import synthetic_shape
from edgecheck.datacheck import validate_data, validate_layout
from edgecheck.devices import DeviceProfile, load_profiles
from edgecheck.model import ModelInfo
from edgecheck.errors import RecipeError, SpecError, did_you_mean
from edgecheck.spec import LoadedSpec
from edgecheck.spec.schema import CANDIDATE


@dataclass(frozen=True)
class PlannedCheck:
    """One test: a check of one recipe's artifact on one backend, for one target device."""

    spec: LoadedSpec
    target: DeviceProfile
    backend: str
    recipe: str  # the compress entry's name; "none" for the model itself
    check: str
    budgets: Any  # the target's Budgets, with the entry's overrides applied
    steps_text: str = "none"
    threads: int = 1  # the spec's for this backend, else the device profile's

    @property
    def id(self) -> str:
        return f"{self.target.name}-{self.backend}-{self.recipe}-{self.check}"

    @property
    def line(self) -> int | None:
        return self.spec.line_of(("targets", self.target.name))

    def budget_line(self, fields: tuple[str, ...] = ()) -> int | None:
        """The spec line that sets this check's budget: the entry's override of one of `fields` (default: the
        check kind's budget fields), else the target's, else the target itself — where a warning points."""
        fields = fields or tuple(get_check(self.check).budgets)
        target = ("targets", self.target.name)
        for where in ((*target, "recipes", self.recipe), (*target, "budgets")):
            for name in fields:
                if (line := self.spec.lines.get((*where, name))) is not None:
                    return line
        return self.line


def _checks_for(budgets: Any) -> list[str]:
    """The check kinds these budgets ask for, in run order."""
    return budgets.checks()


def _static_checks(checks: list[str], budgets: Any) -> list[str]:
    """The checks that can judge an artifact a backend only reads (ops; latency judged on the estimate)."""
    return [c for c in checks if get_check(c).judges_by_reading(budgets)]


def validate_against_model(loaded: LoadedSpec, model: ModelInfo) -> None:
    """Input and output names the spec uses must exist; synthetic inputs must be makeable; every data
    file must fit the model (read and laid out as the run will: a `SpecError` at its line if not)."""
    spec = loaded.spec
    names = ", ".join(t.name for t in model.inputs) or "none"
    for name, declared in spec.inputs.items():
        tensor = model.input(name)
        if tensor is None:
            raise loaded.error(("inputs", name), f"the model has no input named {name!r} (inputs: {names})")
        if declared.dtype and declared.dtype != tensor.dtype:
            raise loaded.error(("inputs", name, "dtype"), f"model input {name!r} is {tensor.dtype}, not {declared.dtype}")
    evaluation = spec.data.evaluation
    if evaluation and evaluation.output and model.output(evaluation.output) is None:
        outputs = ", ".join(t.name for t in model.outputs)
        raise loaded.error(("data", "evaluation", "output"),
                           f"the model has no output named {evaluation.output!r} (outputs: {outputs})")
    validate_layout(loaded, model)
    if evaluation is None and spec.data.parity is None and spec.data.calibration is None:  # synthetic inputs
        for tensor in model.inputs:
            declared = spec.inputs.get(tensor.name)
            if declared is not None and declared.fixed is not None:
                continue
            axis = declared.batch_axis if declared is not None else 0
            shape = synthetic_shape(tensor, declared.shape if declared else None, axis)
            if isinstance(shape, str):
                raise loaded.error(("inputs", tensor.name), f"model input {tensor.name!r} {shape}")
    validate_data(loaded, model, _calibrating_steps(loaded))


def _calibrating_steps(loaded: LoadedSpec) -> list[tuple[int, str]]:
    """(compress index, recipe) of every step that cannot run without data.calibration."""
    found = []
    for index, entry in enumerate(loaded.spec.compress):
        for step in entry.steps:
            if step.recipe in known_recipes():
                recipe = get_recipe(step.recipe)
                if recipe.uses_calibration and not recipe.calibration_optional:
                    found.append((index, step.recipe))
    return found


def validate_candidate(loaded: LoadedSpec, model: ModelInfo, candidate: ModelInfo) -> None:
    """A candidate takes the same inputs as the model and has the output the metric reads."""
    for tensor in model.inputs:
        theirs = candidate.input(tensor.name)
        if theirs is None:
            names = ", ".join(t.name for t in candidate.inputs) or "none"
            raise loaded.error(("candidate", "path"), f"the candidate has no input {tensor.name!r} like the model's "
                               f"(candidate inputs: {names}); both must take the same inputs")
        if theirs.dtype != tensor.dtype:
            raise loaded.error(("candidate", "path"), f"candidate input {tensor.name!r} is {theirs.dtype}, the "
                               f"model's is {tensor.dtype}")
        fixed = [(a, b) for a, b in zip(tensor.shape, theirs.shape)
                 if isinstance(a, int) and a >= 1 and isinstance(b, int) and b >= 1]
        if len(tensor.shape) != len(theirs.shape) or any(a != b for a, b in fixed):
            raise loaded.error(("candidate", "path"), f"candidate input {tensor.name!r} has shape "
                               f"{theirs.shape_text()}, the model's {tensor.shape_text()}: both get the same feeds")
    evaluation = loaded.spec.data.evaluation
    output = (evaluation.output or model.outputs[0].name) if evaluation and model.outputs else None
    if output and candidate.output(output) is None:
        names = ", ".join(t.name for t in candidate.outputs)
        raise loaded.error(("candidate", "path"), f"the candidate has no output {output!r}, which the metric reads "
                           f"(candidate outputs: {names})")


def plan_checks(
    loaded: LoadedSpec,
    model: ModelInfo,
    profiles: dict[str, DeviceProfile],
    targets: list[str] | None = None,
    backends: list[str] | None = None,
) -> list[PlannedCheck]:
    """The checks to run: the spec's targets (or those of them selected) × backends × recipes × budgets.

    Parity of the model itself ('none') is not planned for the host target on the model's reference
    backend (ONNX Runtime for an ONNX model): it would compare the reference with a rerun of itself at
    another thread count, which says nothing of any compression and runs the model a second time. A
    device target keeps it: a board of the device may run it, and that is the device's own error."""
    spec = loaded.spec
    validate_against_model(loaded, model)
    for name in spec.targets:
        if name not in profiles:
            raise loaded.error(("targets", name), f"unknown device {name!r} (known: {', '.join(sorted(profiles))})"
                               + did_you_mean(name, profiles))
    serving = {b for p in profiles.values() for b in p.backends} | set(known_backends())
    for name, section in spec.targets.items():
        for index, backend in enumerate(section.backends or ()):
            if backend not in serving:
                raise loaded.error(("targets", name, "backends", index),
                                   f"unknown backend {backend!r} (known: {', '.join(sorted(serving))})")
    entries = validate_recipes(loaded)
    formats = artifact_formats(loaded)
    platforms = artifact_platforms(loaded)
    reference = reference_backend_of(spec.model.path)
    planned = []
    for target, section in spec.targets.items():
        if targets is not None and target not in targets:
            continue
        profile = profiles[target]
        before, unrunnable, self_parity = len(planned), False, False
        used = section.backends or list(profile.backends)
        for backend in used:
            if backends and backend not in backends:
                continue
            threads = section.threads_for(backend) or profile.threads_for(backend)
            runs, reads = backend_suffixes(backend), backend_reads(backend)
            chip = profile.backends[backend].platform if backend in profile.backends else None
            other_chips = []
            for name, steps_text in entries:
                budgets = section.budgets_for(name)
                checks = _checks_for(budgets)
                if formats[name] not in runs:  # a .tflite artifact on onnxruntime, an .onnx one on tflite
                    checks = _static_checks(checks, budgets) if formats[name] in reads else []
                    if not checks:  # (an ONNX model on rknn: its table and cost model still judge the graph)
                        unrunnable = True
                        continue
                if chip and platforms.get(name) and platforms[name] != chip:  # a .rknn built for another chip
                    other_chips.append(f"{name} ({platforms[name]})")
                    continue
                for check in checks:
                    if name == ORIGINAL and check == "parity" and backend == reference and profile.is_host:
                        self_parity = True  # the reference against itself: says nothing of any compression
                        continue
                    planned.append(PlannedCheck(loaded, profile, backend, name, check, budgets, steps_text, threads))
            built_here = any(p.backend == backend and formats[p.recipe] in runs for p in planned[before:])
            if other_chips and not built_here:  # (ONNX graphs judged on rknn do not count: none of its own runs)
                raise loaded.error(("targets", target), f"{backend} on {target} runs artifacts built for {chip}, and "
                                   f"every {backend} entry is built for another chip: {', '.join(other_chips)}; add "
                                   f"an entry with platform: {chip}")
        if self_parity and not any(p.check == "parity" for p in planned[before:]):
            _no_parity_to_judge(loaded, target, reference, nothing_else=len(planned) == before)
        if len(planned) == before and unrunnable:  # a gate that checks nothing would pass: say why instead
            made = ", ".join(sorted(set(formats.values())))
            runners = ", ".join(f"{name}: {', '.join(runs)}" for name, runs in running_backends().items())
            raise loaded.error(("targets", target), f"none of the backends {', '.join(used)} runs this spec's "
                               f"artifacts ({made} files), so target {target!r} would check nothing: name a "
                               f"backend that runs them ({runners})")
    _warn_entries_not_run(loaded, profiles, formats, platforms)
    return planned


def _no_parity_to_judge(loaded: LoadedSpec, target: str, reference: str, nothing_else: bool) -> None:
    """A host target asks for parity, and the only entry it would judge is the model itself on its reference
    backend (not planned: the reference against itself). A target left with nothing to check is a spec error
    (a gate that checks nothing would pass); beside other checks, a warning at the parity budget."""
    from edgecheck.errors import EntryNotRunWarning, warn_at

    why = (f"target {target!r} budgets parity, but the only entry it would compare is the original model on "
           f"{reference}, its own reference backend: that compares the reference with itself and is not checked")
    fix = "add a compress entry (e.g. int8-dynamic) or a candidate to compare, or a backend other than the reference"
    field = ("targets", target, "budgets", "parity")
    if nothing_else:
        raise loaded.error(field, f"{why}, so the target would check nothing; {fix}")
    warn_at(EntryNotRunWarning(f"{loaded.path.name}: {why}; {fix}"), loaded.path,
            loaded.line_of(field) or loaded.line_of(("targets", target)) or 1)


def _runs_on(name: str, backend: str, chip: str | None, budgets: Any, formats: dict[str, str],
             platforms: dict[str, str]) -> bool:
    """Whether the plan gives entry `name` any check on this backend (as plan_checks decides)."""
    checks = _checks_for(budgets)
    if formats[name] not in backend_suffixes(backend):
        checks = _static_checks(checks, budgets) if formats[name] in backend_reads(backend) else []
    return bool(checks) and not (chip and platforms.get(name) and platforms[name] != chip)


def _warn_entries_not_run(loaded: LoadedSpec, profiles: dict[str, DeviceProfile], formats: dict[str, str],
                          platforms: dict[str, str]) -> None:
    """A compress entry that none of the spec's targets runs (whatever this run selects) would vanish from
    the run: say so at its line, with the targets, the format it makes and the backends that serve them."""
    from edgecheck.errors import EntryNotRunWarning, warn_at

    spec = loaded.spec
    for index, entry in enumerate(spec.compress):
        if entry.name == ORIGINAL or entry.name not in formats:
            continue
        served: list[str] = []
        runs = False
        for target, section in spec.targets.items():
            profile = profiles[target]
            used = section.backends or list(profile.backends)
            for backend in used:
                chip = profile.backends[backend].platform if backend in profile.backends else None
                runs = runs or _runs_on(entry.name, backend, chip, section.budgets_for(entry.name), formats,
                                        platforms)
            served.append(f"{target}: " + ", ".join(_serves(backend, profile) for backend in used))
        if runs:
            continue
        where = loaded.line_of(("compress", index)) or 1
        if not any(_checks_for(section.budgets_for(entry.name)) for section in spec.targets.values()):
            warn_at(EntryNotRunWarning(
                f"{loaded.path.name}: compress[{index}] {entry.name}: no target of this spec budgets anything for it "
                "(its overrides drop every budget): it is neither built nor checked; give it a budget, or remove "
                "the entry"), loaded.path, where)
            continue
        made, chip = formats[entry.name], platforms.get(entry.name)
        built = f" built for {chip}" if chip else ""
        devices = sorted({name for name, p in profiles.items() for b in p.backends
                          if made in backend_suffixes(b) and (chip is None or p.backends[b].platform in (None, chip))})
        fix = f"add a target that runs them ({', '.join(devices)})" if devices else "add a target that runs them"
        warn_at(EntryNotRunWarning(
            f"{loaded.path.name}: compress[{index}] {entry.name} makes {made} files{built}, which none of this spec's "
            f"targets runs ({'; '.join(served)}): it is neither built nor checked; {fix}, or remove the entry"),
            loaded.path, where)


def _serves(backend: str, profile: DeviceProfile) -> str:
    """'rknn runs .rknn (built for rk3588)': what a backend of a target takes."""
    chip = profile.backends[backend].platform if backend in profile.backends else None
    return f"{backend} runs {', '.join(backend_suffixes(backend))}" + (f" built for {chip}" if chip else "")


def artifact_formats(loaded: LoadedSpec) -> dict[str, str]:
    """Each entry's artifact format, as the suffix its files have (backend_suffixes answers in the same
    terms): the model's, changed by the steps that convert."""
    spec = loaded.spec
    formats = {ORIGINAL: spec.model.path.suffix}
    if spec.candidate is not None:
        formats[CANDIDATE] = spec.candidate.path.suffix
    for entry in spec.compress:
        formats[entry.name] = _format_before(loaded, entry.steps)
    return formats


def artifact_platforms(loaded: LoadedSpec) -> dict[str, str]:
    """The chip each entry's artifact is built for, where its converting step names one (platform:)."""
    found = {}
    for entry in loaded.spec.compress:
        for step in entry.steps:
            if step.recipe in known_recipes():
                recipe = get_recipe(step.recipe)
                chip = getattr(recipe.parse_params(step.params), "platform", None) if recipe.makes else None
                if recipe.makes:
                    found.pop(entry.name, None)
                if chip:
                    found[entry.name] = chip
    return found


def validate_recipes(loaded: LoadedSpec) -> list[tuple[str, str]]:
    """Every step names a known recipe with valid parameters; returns (entry name, description) to
    plan, the model itself ('none') first."""
    entries = [(ORIGINAL, ORIGINAL)]
    if loaded.spec.candidate is not None:
        entries.append((CANDIDATE, f"{CANDIDATE} ({loaded.spec.candidate.path.name})"))
    for index, entry in enumerate(loaded.spec.compress):
        if entry.name == ORIGINAL and [s.recipe for s in entry.steps] != [ORIGINAL]:
            raise loaded.error(("compress", index), f"the name {ORIGINAL!r} means the model itself; name this "
                               "entry otherwise")
        for number, step in enumerate(entry.steps):
            where = ("compress", index) if len(entry.steps) == 1 else ("compress", index, number)
            if step.recipe == CANDIDATE:  # the schema allows it only as a chain's first step
                continue
            if step.recipe not in known_recipes():
                raise loaded.error(where, f"unknown recipe {step.recipe!r} (known: {', '.join(known_recipes())})"
                                   + did_you_mean(step.recipe, known_recipes()))
            recipe = get_recipe(step.recipe)
            try:
                recipe.parse_params(step.params)
            except RecipeError as exc:
                wrong = [name for name in step.params if name not in recipe.params.model_fields]
                line = _parameter_line(loaded, index, number, step.recipe, wrong[0]) if wrong else None
                error = loaded.error(where, str(exc))
                raise SpecError(error.path, error.reason, line=line or error.line, field=error.field) from None
            given = _format_before(loaded, entry.steps[:number])
            if not recipe.accepts(given):
                after = f" (after {' -> '.join(str(s) for s in entry.steps[:number])})" if number else ""
                raise loaded.error(where, f"recipe {recipe.name!r} takes {', '.join(recipe.takes_suffixes())} models, and its "
                                   f"input here is a {given} model{after}")
        if [s.recipe for s in entry.steps] != [ORIGINAL]:
            entries.append((entry.name, str(entry)))
    return entries


def _parameter_line(loaded: LoadedSpec, index: int, number: int, recipe: str, parameter: Any) -> int | None:
    """The line of a step's parameter, however the entry is written (a step, a chain, {name, steps})."""
    for step in (("compress", index), ("compress", index, number), ("compress", index, "steps"),
                 ("compress", index, "steps", number)):
        if (line := loaded.lines.get((*step, recipe, parameter))) is not None:
            return line
    return None


def _format_before(loaded: LoadedSpec, steps) -> str:
    """The format of what `steps` make from the model (the model's own when there are none)."""
    spec = loaded.spec
    current = spec.model.path.suffix
    for step in steps:
        if step.recipe == CANDIDATE and spec.candidate is not None:
            current = spec.candidate.path.suffix
        elif step.recipe in known_recipes():
            current = get_recipe(step.recipe).output_format(current)
    return current


def spec_json_schema(devices_dirs: Sequence[Path] = ()) -> dict[str, Any]:
    """The spec's JSON Schema as this installation checks specs: the recipes installed (edgecheck's and
    plug-ins'), each with its parameters; the device profiles (built-in and `devices_dirs`'); the backends."""
    from edgecheck.spec import json_schema

    profiles = load_profiles(list(devices_dirs))
    recipes = {name: (get_recipe(name).params, get_recipe(name).summary) for name in known_recipes()}
    backends = {b for p in profiles.values() for b in p.backends} | set(known_backends())
    return json_schema(recipes=recipes, devices=sorted(profiles), backends=sorted(backends))
