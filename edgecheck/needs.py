"""What a run of some spec files needs before it starts: the device targets they name and, per target, the
tool environments (`edgecheck env create NAME`) its planned entries use. A CI workflow asks this instead of
hard-coding a matrix, so the same workflow file serves any project: the specs decide."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from edgecheck.compress import get_recipe, known_recipes
from edgecheck.devices import DeviceProfile
from edgecheck.formats import inspect_model
from edgecheck.plan import plan_checks
from edgecheck.spec import load_spec

ENV_TOOL = "env:"


@dataclass
class RunNeeds:
    """Targets (sorted) and, for each, the tool environments and the spec files that plan work for it."""

    envs: dict[str, set[str]] = field(default_factory=dict)
    specs: dict[str, set[str]] = field(default_factory=dict)

    @property
    def targets(self) -> list[str]:
        return sorted(self.specs)

    def as_data(self) -> dict[str, object]:
        return {"targets": self.targets,
                "envs": {t: sorted(self.envs.get(t, ())) for t in self.targets},
                "specs": {t: sorted(self.specs[t]) for t in self.targets}}


def spec_files(paths: Iterable[Path]) -> list[Path]:
    """The spec files among these paths: a file as given, a folder's *.yaml/*.yml files that declare
    `edgecheck:` (the spec format's version key) at their top level."""
    found = []
    for path in paths:
        if path.is_dir():
            for candidate in sorted([*path.rglob("*.yaml"), *path.rglob("*.yml")]):
                if _declares_spec(candidate):
                    found.append(candidate)
        else:
            found.append(path)
    return found


def _declares_spec(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            return any(line.startswith("edgecheck:") for line in handle)
    except OSError:
        return False


def run_needs(paths: Iterable[Path], profiles: dict[str, DeviceProfile], targets: list[str] | None = None,
              project_root: Path | None = None) -> RunNeeds:
    """Plan each spec as a run would (same targets, backends and formats), and collect the environments of
    the recipes whose entries end up planned: an rknn-* entry under a Raspberry Pi target needs nothing.
    A broken spec raises its SpecError (file, line, field) as a run would."""
    needs = RunNeeds()
    for path in spec_files(paths):
        loaded = load_spec(path, project_root)
        planned = plan_checks(loaded, inspect_model(loaded.spec.model.path), profiles, targets)
        steps = {entry.name: entry.steps for entry in loaded.spec.compress}
        for check in planned:
            target = check.target.name
            needs.specs.setdefault(target, set()).add(str(path))
            envs = needs.envs.setdefault(target, set())
            for step in steps.get(check.recipe, ()):
                if step.recipe not in known_recipes():  # 'candidate': the spec's other model, no recipe
                    continue
                envs.update(tool[len(ENV_TOOL):] for tool in get_recipe(step.recipe).tools if tool.startswith(ENV_TOOL))
    return needs
