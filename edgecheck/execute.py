"""Runs planned checks: artifact → outputs on a backend → metrics → verdict.

One `Executor` lives for a pytest session (per xdist worker) and remembers what it already
computed — model facts, inputs, the reference outputs, each artifact's outputs — so the three
checks of one artifact run the model once. The reference is the original model on ONNX Runtime
FP32 with one thread.
"""

from __future__ import annotations

import hashlib
import platform
import shutil
import tempfile
from pathlib import Path

import numpy as np

from edgecheck.backends import Backend, RunOptions, check_available
from edgecheck.checks.accuracy import judge_accuracy, metric_function
from edgecheck.checks.parity import compare_outputs, judge_parity
from edgecheck.checks.result import CheckResult
from edgecheck.checks.size import judge_size
from edgecheck.compress import ORIGINAL, Artifact, RecipeContext, apply_recipe
from edgecheck.devices import cpu_model
from edgecheck.data import InputSet, evaluation_set, parity_set
from edgecheck.errors import BackendUnavailable, RecipeError
from edgecheck.model import ModelInfo, inspect_onnx
from edgecheck.plan import PlannedCheck
from edgecheck.spec import LoadedSpec

REFERENCE_BACKEND = "onnxruntime"
REFERENCE_THREADS = 1
Outputs = dict[str, np.ndarray]


def concat_outputs(per_feed: list[Outputs]) -> Outputs:
    """Join per-batch outputs along the sample axis (stacking outputs that have none)."""
    if not per_feed:
        return {}
    joined = {}
    for name in per_feed[0]:
        parts = [outputs[name] for outputs in per_feed]
        joined[name] = np.concatenate(parts) if all(p.ndim for p in parts) else np.stack(parts)
    return joined


def run_feeds(backend: Backend, artifact: Path, threads: int, inputs: InputSet) -> Outputs:
    """Load once, run every feed, return the outputs joined over samples."""
    with backend.load(artifact, RunOptions(threads=threads)) as runner:
        return concat_outputs([runner.infer(feed) for feed in inputs.feeds])


def host_description() -> str:
    return f"{platform.machine()} {cpu_model() or ''}".strip()


class Executor:
    def __init__(self, work_dir: Path | None = None):
        self._work_dir = work_dir
        self._owns_work_dir = work_dir is None
        self._models: dict[Path, ModelInfo] = {}
        self._inputs: dict[tuple[Path, str], InputSet] = {}
        self._outputs: dict[tuple, Outputs] = {}
        self._artifacts: dict[tuple[Path, str], Artifact | RecipeError] = {}
        self._backends: dict[str, Backend | BackendUnavailable] = {}

    def close(self) -> None:
        """Remove the scratch folder this executor made (never one it was given)."""
        if self._work_dir is not None and self._owns_work_dir:
            shutil.rmtree(self._work_dir, ignore_errors=True)
            self._work_dir = None

    @property
    def work_dir(self) -> Path:
        """Scratch folder for artifacts, made on first use (the original model needs none)."""
        if self._work_dir is None:
            self._work_dir = Path(tempfile.mkdtemp(prefix="edgecheck-"))
        return self._work_dir

    def model_info(self, path: Path) -> ModelInfo:
        if path not in self._models:
            self._models[path] = inspect_onnx(path)
        return self._models[path]

    def backend(self, name: str) -> Backend:
        """The backend if it can run here; raises `BackendUnavailable` (remembered) if not."""
        if name not in self._backends:
            try:
                self._backends[name] = check_available(name)
            except BackendUnavailable as exc:
                self._backends[name] = exc
        found = self._backends[name]
        if isinstance(found, BackendUnavailable):
            raise found
        return found

    def inputs(self, loaded: LoadedSpec, kind: str) -> InputSet:
        key = (loaded.path, kind)
        if key not in self._inputs:
            model = self.model_info(loaded.spec.model.path)
            self._inputs[key] = evaluation_set(loaded, model) if kind == "evaluation" else parity_set(loaded, model)
        return self._inputs[key]

    def artifact(self, loaded: LoadedSpec, recipe: str) -> Artifact:
        key = (loaded.path, recipe)
        if key not in self._artifacts:
            data = loaded.spec.data
            # one folder per spec file (by its path), so specs with equal names or model names never share
            folder = hashlib.sha256(str(loaded.path.resolve()).encode()).hexdigest()[:16]
            context = RecipeContext(calibration=data.calibration, work_dir=lambda: self.work_dir / folder / recipe)
            try:
                self._artifacts[key] = apply_recipe(recipe, loaded.spec.model.path, context)
            except RecipeError as exc:  # remembered: the recipe's other checks fail the same way, fast
                self._artifacts[key] = exc
        found = self._artifacts[key]
        if isinstance(found, RecipeError):
            raise found
        return found

    def outputs(self, loaded: LoadedSpec, artifact: Path, backend: str, threads: int, kind: str) -> Outputs:
        key = (loaded.path, self.model_info(artifact).sha256, backend, threads, kind)
        if key not in self._outputs:
            self._outputs[key] = run_feeds(self.backend(backend), artifact, threads, self.inputs(loaded, kind))
        return self._outputs[key]

    def reference(self, loaded: LoadedSpec, kind: str) -> Outputs:
        return self.outputs(loaded, loaded.spec.model.path, REFERENCE_BACKEND, REFERENCE_THREADS, kind)

    def run(self, planned: PlannedCheck) -> CheckResult:
        """Measure and judge one planned check. Raises `BackendUnavailable` when it cannot run here."""
        backend = self.backend(planned.backend)
        threads = planned.target.threads_for(planned.backend)
        artifact = self.artifact(planned.spec, planned.recipe)
        if planned.check == "size":
            original = self.model_info(planned.spec.spec.model.path)
            result = judge_size(self.model_info(artifact.path), original, planned.budgets)
        elif planned.check == "parity":
            reference = self.reference(planned.spec, "parity")
            candidate = self.outputs(planned.spec, artifact.path, planned.backend, threads, "parity")
            budget = planned.budgets.parity
            k = budget.topk_agreement.k if budget and budget.topk_agreement else None
            result = judge_parity(compare_outputs(reference, candidate, k), budget)  # type: ignore[arg-type]
            result.facts["inputs"] = self.inputs(planned.spec, "parity").source
        else:
            result = self._accuracy(planned, artifact, threads)
        result.facts.update(self._facts(planned, backend, threads, artifact))
        return result

    def _accuracy(self, planned: PlannedCheck, artifact: Artifact, threads: int) -> CheckResult:
        loaded = planned.spec
        evaluation = loaded.spec.data.evaluation
        assert evaluation is not None  # the schema refuses accuracy budgets without evaluation data
        model = self.model_info(loaded.spec.model.path)
        output = evaluation.output or model.outputs[0].name
        metric, unit = metric_function(evaluation, output)
        inputs = self.inputs(loaded, "evaluation")
        labels = inputs.labels
        assert labels is not None
        original = metric(self.reference(loaded, "evaluation"), labels)
        candidate = metric(self.outputs(loaded, artifact.path, planned.backend, threads, "evaluation"), labels)
        result = judge_accuracy(original, candidate, unit, evaluation.is_higher_better, planned.budgets)
        result.facts["metric"] = evaluation.metric
        result.facts["inputs"] = inputs.source
        return result

    def _facts(self, planned: PlannedCheck, backend: Backend, threads: int, artifact: Artifact) -> dict[str, str]:
        versions = backend.facts()
        runtime = " ".join(v for v in (backend.name, versions.get("version"), versions.get("provider")) if v)
        facts = {
            "measured_on": "host",
            "host": host_description(),
            "runtime": f"{runtime}, {threads} thread{'s' if threads != 1 else ''}",
            "artifact": artifact.path.name,
        }
        if planned.check in ("parity", "accuracy"):
            facts["reference"] = f"original model on {REFERENCE_BACKEND} FP32, {REFERENCE_THREADS} thread"
        if planned.recipe != ORIGINAL:
            facts.update({f"recipe.{k}": v for k, v in artifact.notes.items()})
        if planned.target.name != "host":
            facts["note"] = f"measured on this host with {planned.backend}, not on a {planned.target.name} board"
        return facts
