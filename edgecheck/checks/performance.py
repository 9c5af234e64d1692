"""Latency statistics against `latency_ms` and memory figures against `memory_mb`.

Percentile budgets are judged with the percentile's confidence interval, so a budget inside the
measurement's noise is called inconclusive instead of a coin-flip pass or fail.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from collections.abc import Mapping
from typing import Any

from pydantic import Field

from edgecheck.checks.base import BudgetField, Check, CheckContext
from edgecheck.checks.result import CheckResult, Measurement
from edgecheck.measure.stats import LatencyStats, required_samples
from edgecheck.spec.performance import (PERCENTILES, LatencyBudget, LatencyOverride, MemoryBudget, MemoryOverride)

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


TYPICAL = ("p50", "mean")  # what an estimate of typical latency can judge both ways


def judge_latency_estimate(estimate_ms: float, low_ms: float, high_ms: float, budget: LatencyBudget,
                           interval_kind: str = "stated error range", cannot_judge: str = "") -> CheckResult:
    """Each latency bound against the cost model's estimate, whose stated error is its interval: a
    bound inside [low, high] is inconclusive, never a pass or fail by luck of the model. The names
    say 'estimate' so no report can take them for measurements. `cannot_judge`: why the estimate may
    judge no bound at all (an uncalibrated model: its error was never measured), each then inconclusive."""
    result = CheckResult("latency")
    if math.isnan(estimate_ms) or math.isnan(low_ms) or math.isnan(high_ms):  # never a fall-back to the point
        cannot_judge = cannot_judge or "the estimate's stated range cannot be computed (check the cost model's figures)"
    tails = []
    for name, limit in budget.bounds().items():
        interval, kind = (low_ms, high_ms), interval_kind
        if name not in TYPICAL and not math.isinf(high_ms):  # a tail percentile is at least the typical time, by how much no estimate knows
            interval, kind = (low_ms, math.inf), "tail lower bound"
            tails.append(name)
        result.measurements.append(Measurement(f"latency.estimate.{name}", estimate_ms, "ms", limit, "max",
                                               interval=interval, interval_kind=kind, cannot_judge=cannot_judge))
    if tails:
        result.notes.append(f"{', '.join(tails)}: a tail percentile is at least the typical latency this estimate is of "
                            "(the published figures it is fitted on are averages), by an amount no estimate knows, so "
                            "the estimate bounds it from below only: it can fail such a budget, never pass it (budget "
                            "p50 or mean to be judged either way)")
    result.notes.append("an estimate of typical latency from an analytical cost model, not a measurement; each "
                        "bound is compared with it and with its stated error range")
    return result


# a runtime's own timer (trtexec) reports what the pipeline costs beside the samples: shown apart, never judged
PIPELINE = (("h2d_ms", "latency.h2d_median"), ("d2h_ms", "latency.d2h_median"),
            ("enqueue_ms", "latency.enqueue_median"), ("host_latency_ms", "latency.host_median"))


def native_figures(result: CheckResult, native: Mapping[str, Any]) -> None:
    """What a runtime timing itself reported (Measured.extra["native"]): where the samples come from, the
    pipeline's other costs apart, and, where a bound is breached or in doubt, the slowest layers."""
    if native.get("latency_source"):
        result.facts["latency.source"] = str(native["latency_source"])
        result.facts["latency.method"] = f"{result.facts.get('latency.method', '')}; samples: {native['latency_source']}"
    for key, name in PIPELINE:
        value = native.get(key)
        if isinstance(value, (int, float)) and math.isfinite(value):
            result.measurements.append(Measurement(name, float(value), "ms"))
    for key in ("placement", "kept_above", "trtexec_warnings"):
        if native.get(key):
            result.facts[f"latency.{key}"] = json.dumps(native[key], sort_keys=True)
    if native.get("engine_note"):  # where the engine's layers run and in what precision, on every verdict
        result.notes.append(str(native["engine_note"]))
    if native.get("engine_mismatch"):  # a figure of another engine than the one asked for: never a pass or a fail
        why = str(native["engine_mismatch"])
        result.measurements = [replace(m, cannot_judge=why) if m.judged else m for m in result.measurements]
        if not any(m.judged for m in result.measurements):
            result.doubts.append(why)
    layers = [str(line) for line in native.get("slowest_layers") or []]
    if layers and result.verdict != "pass":
        result.notes.append("slowest layers (the runtime's per-layer profile): " + "; ".join(layers))
    elif layers:
        result.facts["latency.slowest_layers"] = "; ".join(layers)


# what memory.peak and memory.process are where the runtime's own process timed the model (trtexec): said with the
# figures, since the same names mean a worker's resident memory for the other backends of a spec
NATIVE_MEMORY_NOTE = (
    "memory here is TensorRT's, not a worker's: memory.peak = the engine's device memory (the engine file, i.e. the "
    "weights TensorRT loads, + the build log's Total Device Persistent Memory + Total Activation Memory); "
    "memory.process = the timing trtexec's peak resident memory (ru_maxrss: its host pages, the CUDA and TensorRT "
    "libraries it loaded included); the CUDA context's own device allocations (nvmap on a Jetson, outside any "
    "process's resident memory) are counted in neither. For the other backends memory.peak is a worker's resident "
    "memory growth through load and inference, so compare memory.process across backends (each the peak resident "
    "memory of the process that ran the model), not memory.peak")


class _PerformanceCheck(Check):
    """Latency and memory: measured by a timing run here (a host target, or a stand-in the spec accepts),
    or judged on an estimate for a device target whose spec says `source: estimate`."""

    field_name = ""

    def _budget(self, budgets: Any) -> Any:
        return getattr(budgets, self.field_name, None)

    def is_static(self, budgets: Any, target: Any) -> bool:
        budget = self._budget(budgets)
        return budget is not None and budget.source == "estimate" and not target.is_host

    def run(self, planned: Any, context: CheckContext) -> CheckResult:
        # a board of the device that runs the artifact measures: its figure, never an estimate
        if self.is_static(planned.budgets, planned.target) and not context.measures_on_board(planned):
            artifact = context.artifact(planned.spec, planned.recipe).artifact
            return context.static_estimate(planned, artifact.path)
        where = context.where_measured(planned)  # before any work: a device figure we cannot take is said at once
        backend = context.backend(planned.backend, planned.target)
        made = context.artifact(planned.spec, planned.recipe)
        measured = context.measured(planned, backend, made.artifact.path)
        result = self.judge(planned, context, measured, made.artifact.path)
        result.facts["load_s"] = f"{measured.load_s:.4f}"
        result.facts["measured_on"] = measured.extra.get("measured_on") or where  # a board's own label
        native = measured.extra.get("native")
        if native and measured.extra.get("board"):  # the runtime's own process timed it: no thread count of ours
            result.facts["runtime"] = (f"{planned.backend} on board {measured.extra['board']} "
                                       f"({native.get('latency_source') or 'timed by the runtime itself'}: no thread "
                                       "setting)")
        budget = self._budget(planned.budgets)
        if measured.extra.get("board") and getattr(budget, "source", "device") != "device":
            result.notes.append(f"{self.field_name}.source: {budget.source} is not used: board "
                                f"{measured.extra['board']} measured this {planned.target.name} figure")
        return result

    def judge(self, planned: Any, context: CheckContext, measured: Any, artifact: Any) -> CheckResult:
        raise NotImplementedError

    def compare_with_baseline(self, result: CheckResult, before: Mapping[str, float] | None, name: str,
                              planned: Any, comparable: bool) -> None:
        from edgecheck.checks.regression import no_figures

        if self.is_static(planned.budgets, planned.target):
            return  # an estimate is not compared with a measured baseline
        if before is None:
            no_figures(result, name)
            return
        self.regressions(result, before, name, planned.budgets.regression, comparable)

    def regressions(self, result: CheckResult, before: Mapping[str, float], name: str, budget: Any,
                    comparable: bool) -> None:
        raise NotImplementedError


class LatencyCheck(_PerformanceCheck):
    """Percentiles of one inference's time with their confidence intervals."""

    name = "latency"
    order = 40
    field_name = "latency_ms"
    estimate_hint = ", or source: estimate for the cost model's estimate"
    budgets = {"latency_ms": BudgetField(LatencyBudget | None, Field(
        None, description="Latency of one inference, ms: {p50: 10, p95: 15}.",
        examples=[{"p95": 2}, {"p50": 10, "p95": 15, "source": "host"}]),
        override=LatencyOverride | None, bounds=("p50", "p75", "p90", "p95", "p99", "mean"))}

    suggest_notes = {"latency_ms": "latency_ms: upper end of each percentile's confidence interval (else the "
                                   "percentile)*(1+margin), rounded up to 2 significant digits; p99 only from >= 662 "
                                   "timed runs; timed on this machine (source: host marks it as a stand-in for a "
                                   "device target)"}

    def suggest(self, result: Mapping[str, Any], context: Any) -> dict[str, Any]:
        from edgecheck.checks.suggest import suggest_latency

        return suggest_latency(result, context)

    def judges_by_reading(self, budgets: Any) -> bool:
        budget = budgets.latency_ms
        return budget is not None and budget.source == "estimate"

    def judge(self, planned: Any, context: CheckContext, measured: Any, artifact: Any) -> CheckResult:
        budget = planned.budgets.latency_ms
        result = judge_latency(measured.stats, budget, measured.rounds)
        result.facts["latency.method"] = (f"{measured.plan.describe()}; {measured.warmup_runs} warm-up runs; "
                                          f"clock {measured.clock}; the inference call alone on one fixed input")
        result.facts["latency.stats"] = json.dumps(measured.stats.benchmark_stats(), sort_keys=True)
        result.facts["latency.lock_wait_s"] = f"{measured.lock_wait_s:.3f}"
        for reason in measured.extra.get("throttling") or []:  # a board's clocks or temperature said so
            result.doubts.append(f"thermal throttling during the timing: {reason}; time it again once the board "
                                 "has cooled (or fix its cooling)")
        window = measured.extra.get("window")
        if window:  # when the timed runs happened (epoch seconds): timings on one machine never overlap
            result.facts["latency.window"] = f"{window[0]:.6f}..{window[1]:.6f}"
        native = measured.extra.get("native")
        if native and native.get("timing_method"):  # the runtime timed itself: what it was told, not the plan's words
            rounds = measured.plan.rounds
            result.facts["latency.method"] = (
                f"{native['timing_method']}" + (f" (the first of {rounds} runs, one per fresh worker)" if rounds > 1
                                                else "") + f"; clock {measured.clock}; one fixed input")
        if native:
            native_figures(result, native)
        return result

    def inconclusive_policy(self, budgets: Any) -> tuple[str | None, str]:
        budget = budgets.latency_ms
        return (budget.inconclusive if budget is not None else None), "latency_ms.inconclusive: fail"

    def regressions(self, result: CheckResult, before: Mapping[str, float], name: str, budget: Any,
                    comparable: bool) -> None:
        from edgecheck.checks.regression import latency_regressions

        latency_regressions(result, before, name, budget.latency if budget else None, comparable)


class MemoryCheck(_PerformanceCheck):
    """The model's memory footprint in a fresh worker, and the whole process's peak."""

    name = "memory"
    order = 50
    field_name = "memory_mb"
    budgets = {"memory_mb": BudgetField(MemoryBudget | None, Field(
        None, description="Memory while loading and running, MiB: {peak: 256}.", examples=[{"peak": 256}]),
        override=MemoryOverride | None, bounds=("peak", "process"))}

    suggest_notes = {"memory_mb": "memory_mb: peak footprint (worker peak RSS minus its idle baseline)*(1+margin), "
                                  "rounded up to 2 significant digits; measured on this machine (source: host for a "
                                  "device target)"}

    def suggest(self, result: Mapping[str, Any], context: Any) -> dict[str, Any]:
        from edgecheck.checks.suggest import suggest_memory

        return suggest_memory(result, context)

    def judge(self, planned: Any, context: CheckContext, measured: Any, artifact: Any) -> CheckResult:
        from edgecheck.units import MIB

        info = context.model_info(artifact)
        result = judge_memory(measured.footprint_mib, measured.process_mib, measured.baseline_mib,
                              info.size_bytes / MIB, planned.budgets.memory_mb)
        if measured.extra.get("native"):  # the runtime timed itself in a process of its own (trtexec)
            result.facts["memory.method"] = str(measured.extra.get("peak_method"))
            result.notes.append(NATIVE_MEMORY_NOTE)
        else:
            result.facts["memory.method"] = (
                f"a fresh worker's peak resident memory through load and inference ({measured.extra.get('peak_method')}) "
                "minus its resident memory just before loading, with the runtime imported; memory.process is the "
                "whole process's lifetime peak (VmHWM since it started: what /usr/bin/time -v reports)")
        return result

    def regressions(self, result: CheckResult, before: Mapping[str, float], name: str, budget: Any,
                    comparable: bool) -> None:
        from edgecheck.checks.regression import memory_regression

        memory_regression(result, before, name, budget.memory if budget else None)
