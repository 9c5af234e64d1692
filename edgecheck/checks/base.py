"""The one contract every check kind meets, and the registry that finds them.

A check kind (accuracy, parity, size, latency, memory, ops — or a third party's `energy_mj`) says
which spec budgets it owns, whether a target's budgets ask for it, whether it reads an artifact without
running it, how it measures and judges one planned check (through a `CheckContext`, the services of
the run: artifacts, inputs, outputs, timing runs), which of its figures a baseline keeps and how they
compare, and how a run's figures become a suggested budget. The spec schema, the plan, the executor
and the reports ask the registry instead of naming kinds (what still knows one: a check of an entry with
a latency budget shares its timing run, Executor.measured).

Checks come through the `edgecheck.checks` entry point group (edgecheck's own included), on first use.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from edgecheck.checks.result import CheckResult
from edgecheck.spec.kinds import (BudgetField, broken_checks, check_kinds, check_names, get_check_class, register_check,
                                  registry_version, reset_checks, unregister_check)

if TYPE_CHECKING:
    import numpy as np

    from edgecheck.checks.suggest import SuggestContext

    from edgecheck.backends import Backend
    from edgecheck.spec import LoadedSpec

    Outputs = dict[str, np.ndarray]


class CheckContext(Protocol):
    """What a check may ask of the run it is part of (the executor provides it). Everything is computed
    once per session and kept: the three checks of one artifact run the model once."""

    def model_info(self, path: Path) -> Any: ...  # a format's facts of a model file (inputs, size, sha256)

    # raises BackendUnavailable (a skip) when it cannot run here; for a target a board serves, the board decides
    def backend(self, name: str, target: Any = None) -> Backend: ...

    def artifact(self, loaded: LoadedSpec, entry: str) -> Any: ...  # MadeArtifact of a compress entry

    def inputs(self, loaded: LoadedSpec, kind: str) -> Any: ...  # InputSet: "parity" or "evaluation"

    # outputs, and whether they came from the cache; with a `target` a board serves, the board's outputs
    def outputs(self, loaded: LoadedSpec, artifact: Path, backend: str, threads: int,
                kind: str, target: Any = None) -> tuple[Outputs, bool]: ...

    def reference(self, loaded: LoadedSpec, kind: str) -> Outputs: ...  # the original model's outputs

    # both, the reference computed while the artifact is made where the session has a core to spare
    def artifact_with_reference(self, loaded: LoadedSpec, entry: str, kind: str) -> tuple[Any, Outputs]: ...

    def measured(self, planned: Any, backend: Backend, artifact: Path,
                 plan: Any = None) -> Any: ...  # one timing + memory run (measure.runs.TimingPlan; Measured)

    # whether a board of the target's device runs this check's artifact (its figures then are the board's)
    def measures_on_board(self, planned: Any) -> bool: ...

    def where_measured(self, planned: Any) -> str: ...  # "host", a board, a stand-in label, or CannotJudge

    def input_shapes(self, planned: Any) -> dict[str, tuple[int, ...]]: ...

    def static_ops(self, planned: Any, artifact: Path) -> CheckResult: ...  # the artifact format's authority

    # the ops check on a board's report of where each layer of what it built runs (Backend.places_on_board):
    # `reported` is Measured.extra["native"], `where` the board's label
    def placed_ops(self, planned: Any, artifact: Path, reported: Mapping[str, Any], where: str) -> CheckResult: ...

    def static_estimate(self, planned: Any, artifact: Path) -> CheckResult: ...


class Check(ABC):
    """A check kind. Subclasses set the class attributes and write `run`; the rest has defaults."""

    name: ClassVar[str]
    order: ClassVar[int] = 100  # where it runs and is listed among the kinds (built-ins 10..60)
    budgets: ClassVar[Mapping[str, BudgetField]] = {}
    # True where the check compares outputs with the reference (parity, accuracy): the reference's facts are
    # recorded, and the backend may say where a failing artifact goes wrong
    uses_outputs: ClassVar[bool] = False
    # True where the figure depends on where it was measured (a target that is not this machine gets a note)
    device_dependent: ClassVar[bool] = False
    # what a "cannot judge a device figure here" message adds as the other way out ("" for none)
    estimate_hint: ClassVar[str] = ""

    def wanted(self, budgets: Any) -> bool:
        """Whether a target's (merged) budgets ask for this check: any of its fields set."""
        return any(getattr(budgets, name, None) is not None for name in self.budgets)

    def is_static(self, budgets: Any, target: Any) -> bool:
        """True if, for this target, it judges the artifact without running it: it needs no backend that
        runs here, and no baseline comparison applies."""
        return False

    def judges_by_reading(self, budgets: Any) -> bool:
        """True if these budgets can be judged on an artifact a backend only reads without running it (the
        ONNX graph a .rknn backend would build from): the plan keeps such checks for those artifacts."""
        return False

    @abstractmethod
    def run(self, planned: Any, context: CheckContext) -> CheckResult:
        """Measure and judge one planned check; raise BackendUnavailable / CannotJudge (skips) or an
        EdgecheckError (a failure) where it cannot."""

    def inconclusive_policy(self, budgets: Any) -> tuple[str | None, str]:
        """The spec's own policy for an inconclusive verdict ('warn' / 'fail' / None for the session's),
        and the spec setting a user writes to change it ('' for none)."""
        return None, ""

    def baseline_figures(self, result: CheckResult) -> dict[str, float]:
        """The figures a stored baseline (--edge-save-baseline) keeps of this check's result: by default every
        finite measurement and the ends of its interval; `compare_with_baseline` reads them back."""
        from edgecheck.checks.result import measured_figures

        return measured_figures(result)

    def compare_with_baseline(self, result: CheckResult, before: Mapping[str, float] | None, name: str,
                              planned: Any, comparable: bool) -> None:
        """Add regression figures against a stored baseline to `result` (judged where the spec bounds them)."""

    # --edge-suggest: how each budget field it suggests is derived (a comment above the YAML), the budget
    # paths that are lower bounds (of two backends' suggestions the smaller is the looser), and whether
    # the same check's result on the original model is its noise floor (parity: the backend's own error)
    suggest_notes: ClassVar[Mapping[str, str]] = {}
    suggest_lower: ClassVar[frozenset[tuple[str, ...]]] = frozenset()
    suggest_floor: ClassVar[bool] = False

    def suggest(self, result: Mapping[str, Any], context: SuggestContext) -> dict[str, Any]:
        """Budget fields suggested from one item's result dict (`CheckResult.to_dict()`); {} for none."""
        return {}

    def spec_problems(self, spec: Any, where: tuple[str | int, ...], budgets: Any) -> list[tuple[tuple[str | int, ...], str]]:
        """Rules spanning this check's budgets and the rest of the spec, as (field path, message)."""
        return []


def get_check(name: str) -> Check:
    """An instance of check kind `name`; a SpecError naming the installed ones if there is none."""
    return get_check_class(name)()


__all__ = ["BudgetField", "Check", "CheckContext", "broken_checks", "check_kinds", "check_names", "get_check",
           "register_check", "registry_version", "reset_checks", "unregister_check"]
