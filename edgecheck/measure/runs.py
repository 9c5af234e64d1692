"""Running artifacts in workers: their outputs on a set of inputs, and their timing and memory.

The session never loads a model into a runtime itself; every load-and-run goes to a worker process
(edgecheck.worker), so a runtime that crashes or hangs fails one check, not the session. Output runs
hold the device's lock shared; timings hold it exclusive, so no two timings, and no timing and
another model run, overlap on one machine.
"""

from __future__ import annotations

import shutil
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecheck import progress
from edgecheck.backends import Backend
from edgecheck.compress import Artifact, Recipe, RecipeContext, RecipeNotApplicable, RecipeUnavailable
from edgecheck.errors import BackendError, RecipeError
from edgecheck.data import InputSet
from edgecheck.locks import device_lock
from edgecheck.measure.stats import LatencyStats, required_samples
from edgecheck.spec.performance import PERCENTILES, LatencyBudget
from edgecheck.worker.client import WorkerFailure, WorkerPool
from edgecheck.outputfiles import load_outputs
from edgecheck.worker.protocol import backend_reference, save_feeds

Outputs = dict[str, np.ndarray]
DEFAULT_MAX_SECONDS = 30.0  # cap on the default sample count, so a slow model cannot take the run hostage


@dataclass(frozen=True)
class TimingPlan:
    """How to time: warm-up minimums, then until `samples` or `max_seconds`, whichever comes first."""

    warmup_runs: int = 1
    warmup_s: float = 0.0
    samples: int | None = 5
    max_seconds: float | None = None
    exclusive: bool = False  # hold the device's lock alone (any timing that is judged)
    rounds: int = 1  # fresh workers the samples and time budget are split over

    @classmethod
    def for_latency(cls, budget: LatencyBudget) -> TimingPlan:
        wanted = [PERCENTILES[name] for name in budget.bounds() if name in PERCENTILES] or [50.0]
        samples = budget.samples
        if samples is None and budget.duration_s is None:
            samples = max(required_samples(q) for q in wanted)
        max_seconds = budget.duration_s
        if budget.samples is None and budget.duration_s is None:
            max_seconds = DEFAULT_MAX_SECONDS
        return cls(budget.warmup_runs, budget.warmup_s, samples, max_seconds, exclusive=True, rounds=budget.rounds)

    def __post_init__(self) -> None:
        # each round times its share of the samples, at least one: a share of none would mean "until the
        # time budget" (thousands of samples) or a single run, not what was asked (the spec refuses it too)
        if self.rounds < 1 or (self.samples is not None and self.samples < self.rounds):
            raise ValueError(f"a timing of {self.samples} samples cannot be split over {self.rounds} rounds")

    def describe(self) -> str:
        until = [f"{self.samples} samples" if self.samples else "", f"{self.max_seconds:g} s" if self.max_seconds else ""]
        split = f" over {self.rounds} fresh workers" if self.rounds > 1 else ""
        return (f"warm-up >= {self.warmup_runs} runs and >= {self.warmup_s:g} s, then timed runs until "
                f"{' or '.join(u for u in until if u)}, whichever first{split}")


@dataclass
class Measured:
    """What one measurement job found: latency samples, memory high-water marks, and context."""

    stats: LatencyStats  # every round's samples together
    plan: TimingPlan
    memory_kb: dict[str, int]
    load_s: float
    warmup_runs: int
    lock_wait_s: float
    clock: str
    extra: dict[str, Any] = field(default_factory=dict)
    rounds: list[LatencyStats] = field(default_factory=list)  # each fresh worker's own samples

    @property
    def footprint_mib(self) -> float:
        return max(0, self.memory_kb["peak"] - self.memory_kb["baseline"]) / 1024

    @property
    def process_mib(self) -> float:
        return self.memory_kb.get("process_peak", self.memory_kb["peak"]) / 1024

    @property
    def baseline_mib(self) -> float:
        return self.memory_kb["baseline"] / 1024


class ModelRuns:
    """The session's way to run models: through `workers`, under the lock of `device`."""

    def __init__(self, workers: WorkerPool, device: str):
        self.workers = workers
        self.device = device
        self._input_files: dict[int, tuple[InputSet, Path, list[list[str]]]] = {}
        self._writing = threading.Lock()  # two threads' runs (a reference beside an artifact's making)

    def inputs_file(self, inputs: InputSet) -> tuple[Path, list[list[str]]]:
        """Each input set is written once per session and shared by every artifact's run."""
        with self._writing:
            known = self._input_files.get(id(inputs))
            if known is None or known[0] is not inputs:
                path = self.workers.job_dir() / "inputs.npz"
                names = save_feeds(path, list(inputs.feeds))
                known = (inputs, path, names)
                self._input_files[id(inputs)] = known
        return known[1], known[2]

    def outputs(self, backend: Backend, artifact: Path, threads: int, inputs: InputSet,
                into: Path | None = None) -> Outputs:
        """Load once in a worker, run every feed, return the outputs joined over samples. The worker writes
        them into `into` (an empty folder: the cache's entry in the making), else into a job folder, as
        edgecheck.worker.protocol.save_outputs lays them out; large ones are mapped from there, never copied,
        smaller ones read. A job folder is removed once they are loaded (a mapping stays valid without its
        file's name)."""
        path, names = self.inputs_file(inputs)
        folder = into if into is not None else self.workers.job_dir()
        command = {"op": "outputs", "artifact": str(artifact), "threads": threads, "inputs": str(path),
                   "names": names, "joined": str(folder), "suffixes": run_suffixes(backend)}
        try:
            with device_lock(self.device, exclusive=False):
                result = self.workers.run(backend, command, artifact)
            return load_outputs(folder, result["names"])
        finally:
            if into is None:  # a job folder: gone now, not when the pool closes (a mapping outlives its file)
                shutil.rmtree(folder, ignore_errors=True)

    def measure(self, backend: Backend, artifact: Path, threads: int, feed: dict[str, np.ndarray],
                plan: TimingPlan) -> Measured:
        """Time and weigh one artifact in fresh workers (its peak memory must be this model's alone),
        `plan.rounds` of them one after another, under one hold of the device's lock."""
        job = self.workers.job_dir()
        names = save_feeds(job / "feed.npz", [feed])
        command = {"op": "measure", "artifact": str(artifact), "threads": threads, "inputs": str(job / "feed.npz"),
                   "names": names, "suffixes": run_suffixes(backend), "warmup": {"runs": plan.warmup_runs, "seconds": plan.warmup_s},
                   "max_seconds": plan.max_seconds / plan.rounds if plan.max_seconds else None}
        timeout = self.workers.settings.timeout_s + (plan.max_seconds or 0) + plan.warmup_s
        results, rounds = [], []
        progress.update("waiting for this machine's timing lock" if plan.exclusive else "waiting for this machine's lock")
        with device_lock(self.device, exclusive=plan.exclusive) as waited:
            for index in range(plan.rounds):
                if plan.rounds > 1:
                    progress.update(f"round {index + 1}/{plan.rounds}")
                out = job / f"samples-{index}.npy"
                # the samples asked for, exactly, spread over the rounds
                share = plan.samples // plan.rounds + (index < plan.samples % plan.rounds) if plan.samples else None
                results.append(self.workers.run(backend, {**command, "samples": share, "samples_out": str(out)},
                                                artifact, fresh=True, timeout_s=timeout))
                rounds.append(np.load(out, allow_pickle=False))
        return measured_from(results, rounds, plan, waited)


    def compress(self, recipe: Recipe, params: dict[str, Any] | None, source: Path, context: RecipeContext,
                 threads: int | None = None) -> Artifact:
        """Apply one recipe step in a worker (converters hang and crash too; calibration runs a
        runtime), under the device's shared lock; every failure is the entry's `RecipeError`. `threads`: those of
        a runtime session the recipe runs itself, else the session's setting (WorkerSettings.recipe_threads)."""
        command = {"op": "compress", "recipe": recipe.name, "params": params or {}, "source": str(source),
                   "calibration": str(context.calibration) if context.calibration else None,
                   "out_dir": str(context.out_dir), "function": backend_reference(recipe.apply),
                   "time_limit_s": self.workers.settings.timeout_s,
                   "threads": threads if threads is not None else self.workers.settings.recipe_threads}
        try:
            with device_lock(self.device, exclusive=False):
                result = self.workers.run_job(sys.executable, f"recipe {recipe.name!r}", command, source)
        except WorkerFailure as exc:
            raise RecipeError(str(exc)) from None
        except BackendError as exc:
            kind, message = getattr(exc, "worker_kind", ""), getattr(exc, "worker_message", exc.reason)
            if kind == "RecipeUnavailable":
                raise RecipeUnavailable(message) from None
            if kind == "RecipeNotApplicable":
                raise RecipeNotApplicable(message) from None
            if kind == "RecipeError":
                raise RecipeError(message) from None
            raise RecipeError(f"recipe {recipe.name!r} failed on {source.name}: {kind}: {message}") from None
        return Artifact(Path(result["path"]), result["recipe"], dict(result.get("notes", {})))


def measured_from(results: list[dict[str, Any]], rounds: list[np.ndarray], plan: TimingPlan, waited: float,
                  extra: dict[str, Any] | None = None) -> Measured:
    """A measurement from its rounds' answers and samples (a local worker's or a board's).

    Where a runtime timed itself (a runner's `native_timing`: trtexec), the first round's report beside its
    samples (transfer times, slowest layers, placement) is kept whole under `extra["native"]`; where the worker
    sampled the board's power, every round's figures are under `extra["power"]` (a list, one per round)."""
    # memory: the round with the largest footprint (they differ by allocator luck only)
    worst = max(results, key=lambda r: r["memory_kb"]["peak"] - r["memory_kb"]["baseline"])
    kept: dict[str, Any] = {}
    if results[0].get("native") is not None:
        kept["native"] = dict(results[0]["native"])
    if any(r.get("power") is not None for r in results):
        kept["power"] = [r.get("power") for r in results]
    return Measured(
        stats=LatencyStats.from_ns(np.concatenate(rounds)), plan=plan,
        memory_kb={k: int(v) for k, v in worst["memory_kb"].items()},
        load_s=float(np.median([r["load_s"] for r in results])),
        warmup_runs=sum(int(r["warmup_runs"]) for r in results), lock_wait_s=waited,
        clock=str(results[0].get("clock", "")),
        extra={"peak_method": worst.get("peak_method", ""),
               "window": [results[0]["window"][0], results[-1]["window"][1]] if results[0].get("window") else None,
               **kept, **(extra or {})},
        rounds=[LatencyStats.from_ns(r) for r in rounds] if len(rounds) > 1 else [],
    )


def single_input(inputs: InputSet, fixed_batch: bool) -> dict[str, np.ndarray]:
    """The fixed input that timings run on: the first sample of the parity inputs (the whole first
    batch for a model with a fixed batch size)."""
    from edgecheck.data import first_sample

    return first_sample(inputs) if fixed_batch == inputs.whole_batches else \
        first_sample(InputSet(inputs.feeds, inputs.source, None, inputs.batch_axes, fixed_batch))


def run_suffixes(backend: Backend) -> list[str]:
    """The file suffixes the backend runs, worked out here, so its worker needs no format registry."""
    from edgecheck.backends.base import file_suffixes

    return list(file_suffixes(type(backend)))
