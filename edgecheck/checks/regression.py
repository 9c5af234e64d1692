"""This run against a stored baseline (--edge-baseline NAME): slower, hungrier or less accurate by
more than the spec's `regression` budget fails the check that measured it. Each check kind calls the
comparison that fits its figures (Check.compare_with_baseline)."""

from __future__ import annotations

import math
from collections.abc import Mapping

from edgecheck.checks.result import CheckResult, Measurement
from edgecheck.spec.performance import PERCENTILES

_LATENCY_STATISTICS = {*(f"latency.{name}" for name in PERCENTILES), "latency.mean"}


def _change(value: float, before: float) -> float:
    return (value / before - 1) * 100 if before else (0.0 if value == before else math.inf)


def no_figures(result: CheckResult, name: str) -> None:
    result.notes.append(f"baseline {name!r} has no figures for this check; nothing to compare")


def latency_regressions(result: CheckResult, baseline: Mapping[str, float], name: str, limit: float | None,
                        comparable: bool) -> None:
    """Each latency statistic the budget bounds (p50 if none) against the baseline's. `comparable` is False
    when the baseline was measured on another machine: timing changes then prove nothing."""
    figures = {m.name: m for m in result.measurements}
    # every statistic the latency budget bounds, percentiles and mean alike
    judged = [m for m in result.measurements if m.name in _LATENCY_STATISTICS and m.judged]
    for m in judged or [figures["latency.p50"]]:
        before = baseline.get(m.name)
        if before is None:
            result.notes.append(f"baseline {name!r} has no {m.name} for this check; it is not compared")
            continue
        low, high = m.interval or (m.value, m.value)
        # both runs are noisy: the change is certain only beyond both intervals
        before_low = baseline.get(f"{m.name}.ci_low", before) or before
        before_high = baseline.get(f"{m.name}.ci_high", before)
        interval = ((_change(low, before_high), _change(high, before_low)) if comparable
                    else (-math.inf, math.inf))
        result.measurements.append(Measurement(
            f"regression.{m.name}", _change(m.value, before), "%", limit, "max" if limit is not None else None,
            budget_text=f"{limit:g}% slower than baseline {name!r} ({before:.4g} ms)" if limit is not None else "",
            interval=interval,
            cannot_judge="" if comparable or limit is None else
            f"baseline {name!r} was measured on another machine: a latency change against it proves nothing"))
    if not comparable:
        result.notes.append(f"baseline {name!r} was measured on another machine: latency changes against it "
                            "are inconclusive")


def memory_regression(result: CheckResult, baseline: Mapping[str, float], name: str, limit: float | None) -> None:
    figures = {m.name: m for m in result.measurements}
    before = baseline.get("memory.peak")
    if before is not None and "memory.peak" in figures:
        result.measurements.append(Measurement(
            "regression.memory.peak", _change(figures["memory.peak"].value, before), "%", limit,
            "max" if limit is not None else None,
            budget_text=f"{limit:g}% above baseline {name!r} ({before:.4g} MiB)" if limit is not None else ""))


def accuracy_regression(result: CheckResult, baseline: Mapping[str, float], name: str, limit: float | None,
                        higher_is_better: bool = True) -> None:
    figures = {m.name: m for m in result.measurements}
    before = baseline.get("accuracy")
    if before is not None and "accuracy" in figures:
        current = figures["accuracy"]
        fall = (before - current.value) if higher_is_better else (current.value - before)
        result.measurements.append(Measurement(
            "regression.accuracy", fall, "pts", limit, "max" if limit is not None else None,
            budget_text=f"{limit:g} pts below baseline {name!r} ({before:.4g})" if limit is not None else ""))
