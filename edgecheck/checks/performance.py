"""Latency statistics against `latency_ms` and memory figures against `memory_mb`.

Percentile budgets are judged with the percentile's confidence interval, so a budget inside the
measurement's noise is called inconclusive instead of a coin-flip pass or fail.
"""

from __future__ import annotations

import math

from edgecheck.checks.result import CheckResult, Measurement
from edgecheck.measure.stats import LatencyStats, required_samples
from edgecheck.spec.performance import PERCENTILES, LatencyBudget, MemoryBudget

REPORTED = ("p50", "p90", "p95", "p99")


def judge_latency(stats: LatencyStats, budget: LatencyBudget) -> CheckResult:
    """Every percentile budgeted (with its 95 % interval), the usual ones beside them, and the rest."""
    result = CheckResult("latency")
    bounds = budget.bounds()
    names = [n for n in PERCENTILES if n in bounds or n in REPORTED]
    for name in sorted(names, key=lambda n: (n not in bounds, PERCENTILES[n])):
        q = PERCENTILES[name]
        limit = bounds.get(name)
        interval = stats.interval(q)
        result.measurements.append(Measurement(
            f"latency.{name}", stats.percentile(q), "ms", limit, "max" if limit is not None else None,
            interval=interval))
        if limit is not None and stats.count < required_samples(q):
            result.notes.append(f"{stats.count} samples are fewer than the {required_samples(q)} that {name} needs "
                                "(MLPerf's minimum); its interval is wide or open, and the verdict says so")
    mean_limit = bounds.get("mean")
    sem = stats.std / math.sqrt(stats.count) if stats.count > 1 else math.inf
    result.measurements.append(Measurement(
        "latency.mean", stats.mean, "ms", mean_limit, "max" if mean_limit is not None else None,
        interval=(stats.mean - 1.96 * sem, stats.mean + 1.96 * sem) if mean_limit is not None else None))
    for name, value in (("std", stats.std), ("min", stats.min), ("max", stats.max)):
        result.measurements.append(Measurement(f"latency.{name}", value, "ms"))
    result.measurements.append(Measurement("latency.samples", float(stats.count)))
    return result


def judge_memory(footprint_mib: float, process_mib: float, baseline_mib: float, model_file_mib: float,
                 budget: MemoryBudget) -> CheckResult:
    """The model's footprint (peak minus an idle worker's), the whole process's peak, and the file."""
    result = CheckResult("memory")
    result.measurements.append(Measurement("memory.peak", footprint_mib, "MiB", budget.peak,
                                           "max" if budget.peak is not None else None))
    result.measurements.append(Measurement("memory.process", process_mib, "MiB", budget.process,
                                           "max" if budget.process is not None else None))
    result.measurements.append(Measurement("memory.baseline", baseline_mib, "MiB"))
    result.measurements.append(Measurement("memory.model_file", model_file_mib, "MiB"))
    return result
