"""From a spec, the device profiles and the user's selection, the list of checks to run.

This is where a spec meets the world: its targets must be known devices, its backends known
backends, its recipes known recipes and its input names the model's. Each problem is a
`SpecError` pointing at the spec's line, raised while collecting, before anything runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgecheck.backends import known_backends
from edgecheck.checks import CHECKS
from edgecheck.compress import ORIGINAL, known_recipes
from edgecheck.data import synthetic_shape
from edgecheck.devices import DeviceProfile
from edgecheck.model import ModelInfo
from edgecheck.spec import Budgets, LoadedSpec


@dataclass(frozen=True)
class PlannedCheck:
    """One test: a check of one recipe's artifact on one backend, for one target device."""

    spec: LoadedSpec
    target: DeviceProfile
    backend: str
    recipe: str
    check: str
    budgets: Budgets

    @property
    def id(self) -> str:
        return f"{self.target.name}-{self.backend}-{self.recipe}-{self.check}"

    @property
    def line(self) -> int | None:
        return self.spec.line_of(("targets", self.target.name))


def _checks_for(budgets: Budgets) -> list[str]:
    wanted = {
        "accuracy": any(getattr(budgets, n) is not None for n in ("accuracy_drop", "accuracy_min", "accuracy_max")),
        "parity": budgets.parity is not None,
        "size": budgets.size_mb is not None,
    }
    return [check for check in CHECKS if wanted[check]]


def validate_against_model(loaded: LoadedSpec, model: ModelInfo) -> None:
    """Input and output names the spec uses must exist; synthetic inputs must be makeable."""
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
    if evaluation is None:
        for tensor in model.inputs:
            declared = spec.inputs.get(tensor.name)
            shape = synthetic_shape(tensor, declared.shape if declared else None)
            if isinstance(shape, str):
                raise loaded.error(("inputs", tensor.name), f"model input {tensor.name!r} {shape}")


def plan_checks(
    loaded: LoadedSpec,
    model: ModelInfo,
    profiles: dict[str, DeviceProfile],
    targets: list[str] | None = None,
    backends: list[str] | None = None,
) -> list[PlannedCheck]:
    """The checks to run: the spec's targets (or those of them selected) × backends × recipes × budgets."""
    spec = loaded.spec
    validate_against_model(loaded, model)
    for name in spec.targets:
        if name not in profiles:
            raise loaded.error(("targets", name), f"unknown device {name!r} (known: {', '.join(sorted(profiles))})")
    serving = {b for p in profiles.values() for b in p.backends} | set(known_backends())
    for name, section in spec.targets.items():
        for index, backend in enumerate(section.backends or ()):
            if backend not in serving:
                raise loaded.error(("targets", name, "backends", index),
                                   f"unknown backend {backend!r} (known: {', '.join(sorted(serving))})")
    recipes = [ORIGINAL] + [r for r in dict.fromkeys(spec.compress) if r != ORIGINAL]
    for index, recipe in enumerate(spec.compress):
        if recipe not in known_recipes():
            raise loaded.error(("compress", index), f"unknown recipe {recipe!r} (known: {', '.join(known_recipes())})")
    planned = []
    for name, section in spec.targets.items():
        if targets is not None and name not in targets:
            continue
        profile = profiles[name]
        for backend in section.backends or list(profile.backends):
            if backends and backend not in backends:
                continue
            for recipe in recipes:
                for check in _checks_for(section.budgets):
                    planned.append(PlannedCheck(loaded, profile, backend, recipe, check, section.budgets))
    return planned
