"""What a run of some spec files needs before it starts: the device targets they name and, per target, the
tool environments (`edgecheck env create NAME`) its planned entries use. A CI workflow asks this instead of
hard-coding a matrix, so the same workflow file serves any project: the specs decide.

It is answered by collecting the specs in a pytest session (`--collect-only`), so the project's ini options
(edge_spec_patterns, edge_devices_dir, edge_targets, ...) and every plug-in count exactly as in a run."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from edgecheck.compress import get_recipe
from edgecheck.spec.schema import CANDIDATE

ENV_TOOL = "env:"


@dataclass
class RunNeeds:
    """Targets (sorted) and, for each, the tool environments and the spec files that plan work for it; the
    problems found on the way (a broken spec, a collection error), each naming its file."""

    envs: dict[str, set[str]] = field(default_factory=dict)
    specs: dict[str, set[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def targets(self) -> list[str]:
        return sorted(self.specs)

    def as_data(self) -> dict[str, object]:
        return {"targets": self.targets,
                "envs": {t: sorted(self.envs.get(t, ())) for t in self.targets},
                "specs": {t: sorted(self.specs[t]) for t in self.targets}}


class NeedsCollector:
    """A pytest plug-in for a collect-only session: reads what each collected item plans."""

    def __init__(self) -> None:
        self.needs = RunNeeds()

    def pytest_collectreport(self, report: Any) -> None:
        if report.failed:
            self.needs.problems.append(f"{report.nodeid or 'collection'}: {report.longreprtext.strip()}")

    def pytest_collection_finish(self, session: Any) -> None:
        for item in session.items:
            planned = getattr(item, "planned", None)
            if planned is None:  # a broken spec is an item that fails with its error (file, line, field)
                error = getattr(item, "error", None)
                if error is not None:
                    self.needs.problems.append(f"invalid spec: {error}")
                continue
            target = planned.target.name
            self.needs.specs.setdefault(target, set()).add(str(item.path.relative_to(session.config.rootpath)
                                                              if item.path.is_relative_to(session.config.rootpath)
                                                              else item.path))
            envs = self.needs.envs.setdefault(target, set())
            for step in _steps(planned):
                if step.recipe == CANDIDATE:  # the spec's other model: no recipe
                    continue
                envs.update(t[len(ENV_TOOL):] for t in get_recipe(step.recipe).tools if t.startswith(ENV_TOOL))


def _steps(planned: Any) -> tuple[Any, ...]:
    for entry in planned.spec.spec.compress:
        if entry.name == planned.recipe:
            return entry.steps
    return ()


def run_needs(paths: Sequence[str], targets: Sequence[str] = (), pytest_args: Sequence[str] = ()) -> RunNeeds:
    """Collect these spec files or folders as `pytest PATHS --edge-target T --collect-only` would, with pytest's
    own output sent to stderr (stdout is the caller's), and return what the planned items need."""
    import pytest

    collector = NeedsCollector()
    args = ["--collect-only", "-qq", "-p", "no:cacheprovider", "-o", "addopts=",
            *(f"--edge-target={t}" for t in targets), *pytest_args, *paths]
    with contextlib.redirect_stdout(sys.stderr):
        code = pytest.main(args, plugins=[collector])
    if code not in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED) and not collector.needs.problems:
        collector.needs.problems.append(f"pytest {' '.join(args)} ended with exit status {int(code)} (see above)")
    return collector.needs
