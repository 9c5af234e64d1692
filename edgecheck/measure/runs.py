"""Running artifacts in workers: their outputs on a set of inputs, and their timing and memory.

The session never loads a model into a runtime itself; every load-and-run goes to a worker process
(edgecheck.worker), so a runtime that crashes or hangs fails one check, not the session. Output runs
hold the device's lock shared; timings hold it exclusive, so no two timings, and no timing and
another model run, overlap on one machine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecheck.backends import Backend
from edgecheck.data import InputSet
from edgecheck.measure.lock import device_lock
from edgecheck.measure.stats import LatencyStats, required_samples
from edgecheck.spec.performance import PERCENTILES, LatencyBudget
from edgecheck.worker.client import WorkerPool
from edgecheck.worker.protocol import load_feeds, save_feeds

Outputs = dict[str, np.ndarray]
DEFAULT_MAX_SECONDS = 30.0  # cap on the default sample count, so a slow model cannot take the run hostage


def concat_outputs(per_feed: list[Outputs]) -> Outputs:
    """Join per-batch outputs along the sample axis (stacking outputs that have none)."""
    if not per_feed:
        return {}
    joined = {}
    for name in per_feed[0]:
        parts = [outputs[name] for outputs in per_feed]
        joined[name] = np.concatenate(parts) if all(p.ndim for p in parts) else np.stack(parts)
    return joined


@dataclass(frozen=True)
class TimingPlan:
    """How to time: warm-up minimums, then until `samples` or `max_seconds`, whichever comes first."""

    warmup_runs: int = 1
    warmup_s: float = 0.0
    samples: int | None = 5
    max_seconds: float | None = None
    exclusive: bool = False  # hold the device's lock alone (any timing that is judged)

    @classmethod
    def for_latency(cls, budget: LatencyBudget) -> TimingPlan:
        wanted = [PERCENTILES[name] for name in budget.bounds() if name in PERCENTILES] or [50.0]
        samples = budget.samples
        if samples is None and budget.duration_s is None:
            samples = max(required_samples(q) for q in wanted)
        max_seconds = budget.duration_s
        if budget.samples is None and budget.duration_s is None:
            max_seconds = DEFAULT_MAX_SECONDS
        return cls(budget.warmup_runs, budget.warmup_s, samples, max_seconds, exclusive=True)

    def describe(self) -> str:
        until = [f"{self.samples} samples" if self.samples else "", f"{self.max_seconds:g} s" if self.max_seconds else ""]
        return (f"warm-up >= {self.warmup_runs} runs and >= {self.warmup_s:g} s, then timed runs until "
                f"{' or '.join(u for u in until if u)}, whichever first")


@dataclass
class Measured:
    """What one measurement job found: latency samples, memory high-water marks, and context."""

    stats: LatencyStats
    plan: TimingPlan
    memory_kb: dict[str, int]
    load_s: float
    warmup_runs: int
    lock_wait_s: float
    clock: str
    extra: dict[str, Any] = field(default_factory=dict)

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

    def _inputs_file(self, inputs: InputSet) -> tuple[Path, list[list[str]]]:
        """Each input set is written once per session and shared by every artifact's run."""
        known = self._input_files.get(id(inputs))
        if known is None or known[0] is not inputs:
            path = self.workers.job_dir() / "inputs.npz"
            names = save_feeds(path, list(inputs.feeds))
            known = (inputs, path, names)
            self._input_files[id(inputs)] = known
        return known[1], known[2]

    def outputs(self, backend: Backend, artifact: Path, threads: int, inputs: InputSet) -> Outputs:
        """Load once in a worker, run every feed, return the outputs joined over samples."""
        path, names = self._inputs_file(inputs)
        job = self.workers.job_dir()
        command = {"op": "outputs", "artifact": str(artifact), "threads": threads, "inputs": str(path),
                   "names": names, "outputs": str(job / "outputs.npz")}
        with device_lock(self.device, exclusive=False):
            result = self.workers.run(backend, command, artifact)
        per_feed = load_feeds(job / "outputs.npz", result["names"], prefix="o")
        (job / "outputs.npz").unlink(missing_ok=True)
        return concat_outputs(per_feed)

    def measure(self, backend: Backend, artifact: Path, threads: int, feed: dict[str, np.ndarray],
                plan: TimingPlan) -> Measured:
        """Time and weigh one artifact in a fresh worker (its peak memory must be this model's alone)."""
        job = self.workers.job_dir()
        names = save_feeds(job / "feed.npz", [feed])
        command = {"op": "measure", "artifact": str(artifact), "threads": threads, "inputs": str(job / "feed.npz"),
                   "names": names, "samples_out": str(job / "samples.npy"),
                   "warmup": {"runs": plan.warmup_runs, "seconds": plan.warmup_s},
                   "samples": plan.samples, "max_seconds": plan.max_seconds}
        timeout = self.workers.settings.timeout_s + (plan.max_seconds or 0) + plan.warmup_s
        with device_lock(self.device, exclusive=plan.exclusive) as waited:
            result = self.workers.run(backend, command, artifact, fresh=True, timeout_s=timeout)
        samples = np.load(job / "samples.npy", allow_pickle=False)
        return Measured(
            stats=LatencyStats.from_ns(samples), plan=plan, memory_kb={k: int(v) for k, v in result["memory_kb"].items()},
            load_s=float(result["load_s"]), warmup_runs=int(result["warmup_runs"]), lock_wait_s=waited,
            clock=str(result.get("clock", "")),
            extra={"warmup_s": result.get("warmup_s", math.nan), "peak_method": result.get("peak_method", ""),
                   "window": result.get("window")},
        )


def single_input(inputs: InputSet, fixed_batch: bool) -> dict[str, np.ndarray]:
    """The fixed input that timings run on: the first sample of the parity inputs (the whole first
    batch for a model with a fixed batch size)."""
    first = inputs.feeds[0]
    return dict(first) if fixed_batch else {name: value[:1] for name, value in first.items()}
