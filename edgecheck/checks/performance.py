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


def percentile_interval(stats: LatencyStats, rounds: list[LatencyStats], q: float) -> tuple[float, float]:
    """The 95 % order-statistic interval of the pooled samples, widened to take in every round's own
    estimate: samples within one process are not independent of that process's luck, so where
    fresh processes disagree the verdict must not be surer than they are."""
    low, high = stats.interval(q)
    for one in rounds:
        value = one.percentile(q)
        low, high = min(low, value), max(high, value)
    return low, high


def judge_latency(stats: LatencyStats, budget: LatencyBudget, rounds: list[LatencyStats] | None = None) -> CheckResult:
    """Every percentile budgeted (with its 95 % interval), the usual ones beside them, and the rest."""
    rounds = rounds or []
    result = CheckResult("latency")
    bounds = budget.bounds()
    names = [n for n in PERCENTILES if n in bounds or n in REPORTED]
    for name in sorted(names, key=lambda n: (n not in bounds, PERCENTILES[n])):
        q = PERCENTILES[name]
        limit = bounds.get(name)
        interval = percentile_interval(stats, rounds, q)
        result.measurements.append(Measurement(
            f"latency.{name}", stats.percentile(q), "ms", limit, "max" if limit is not None else None,
            interval=interval))
        if limit is not None and stats.count < required_samples(q):
            result.notes.append(f"{stats.count} samples are fewer than the {required_samples(q)} that {name} needs "
                                "(MLPerf's minimum); its interval is wide or open, and the verdict says so")
    mean_limit = bounds.get("mean")
    sem = stats.std / math.sqrt(stats.count) if stats.count > 1 else math.inf
    means = [one.mean for one in rounds]
    mean_interval = (min([stats.mean - 1.96 * sem, *means]), max([stats.mean + 1.96 * sem, *means]))
    result.measurements.append(Measurement(
        "latency.mean", stats.mean, "ms", mean_limit, "max" if mean_limit is not None else None,
        interval=mean_interval if mean_limit is not None else None))
    for name, value in (("std", stats.std), ("min", stats.min), ("max", stats.max)):
        result.measurements.append(Measurement(f"latency.{name}", value, "ms"))
    result.measurements.append(Measurement("latency.samples", float(stats.count)))
    if len(rounds) > 1:
        medians = [one.percentile(50) for one in rounds]
        result.measurements.append(Measurement("latency.rounds", float(len(rounds))))
        result.measurements.append(Measurement("latency.round_p50_spread", max(medians) - min(medians), "ms"))
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


def judge_latency_estimate(estimate_ms: float, low_ms: float, high_ms: float, budget: LatencyBudget,
                           interval_kind: str = "stated error range") -> CheckResult:
    """Each latency bound against the cost model's estimate, whose stated error is its interval: a
    bound inside [low, high] is inconclusive, never a pass or fail by luck of the model. The names
    say 'estimate' so no report can take them for measurements."""
    result = CheckResult("latency")
    for name, limit in budget.bounds().items():
        result.measurements.append(Measurement(f"latency.estimate.{name}", estimate_ms, "ms", limit, "max",
                                               interval=(low_ms, high_ms), interval_kind=interval_kind))
    result.notes.append("an estimate of typical latency from an analytical cost model, not a measurement; each "
                        "bound is compared with it and with its stated error range")
    return result
