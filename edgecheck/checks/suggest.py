"""How a check's figures become a suggested budget (`--edge-suggest`): the built-in kinds' rules and the
rounding they share. Each rule reads one item's result dict and is its kind's `Check.suggest`; the report
(edgecheck/report/suggest.py) merges them over backends and prints them.

Default tolerances are guesses; these are built from evidence: what was measured, widened by a margin and
by the measurement's own noise, and rounded towards looser so a rerun still passes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

EPSILON = 1e-6
P99_MIN_SAMPLES = 662
PARITY_ORDER = ("atol", "rel_l2", "cosine", "snr_db", "top1_agreement")
PARITY_STATS = {"max_abs": "atol", "rel_l2": "rel_l2", "cosine": "cosine", "snr_db": "snr_db",
                "top1_agreement": "top1_agreement"}
LATENCY_ORDER = ("p50", "p95", "p99")
PARITY_LOWER = frozenset({("parity", "cosine"), ("parity", "snr_db"), ("parity", "top1_agreement")})

def _dec(value: float) -> Decimal:
    return Decimal(repr(float(value)))  # the shortest repr, so 1.9 is exactly 1.9


def _round_sig(value: Decimal, rounding: str, digits: int = 2) -> Decimal:
    if value == 0:
        return Decimal(0)
    step = Decimal(1).scaleb(value.adjusted() - digits + 1)
    return (value / step).to_integral_value(rounding=rounding) * step


def round_up(value: float, digits: int = 2) -> float:
    """The value rounded towards +inf to `digits` significant digits (a looser upper bound)."""
    return float(_round_sig(_dec(value), ROUND_CEILING, digits))


def round_down(value: float, digits: int = 2) -> float:
    """The value rounded towards -inf to `digits` significant digits (a looser lower bound)."""
    return float(_round_sig(_dec(value), ROUND_FLOOR, digits))


def _below_one(gap: Decimal, low: float) -> float:
    """1 - gap with the gap rounded up to 2 significant digits: lower bounds close to 1 keep their digits."""
    gap = _round_sig(max(gap, Decimal(0)), ROUND_CEILING)
    return max(float(Decimal(1) - gap), low)


ResultDict = Mapping[str, Any]


def _measurement(result: ResultDict, name: str) -> Mapping[str, Any] | None:
    for m in result.get("measurements", []):
        if m.get("name") == name:
            return m
    return None


def _finite(value: Any) -> float | None:
    """A finite float from a result dict's number (non-finite ones are the strings nan, inf, -inf)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _figure(result: ResultDict, name: str) -> float | None:
    """The finite value of the measurement of that name, or None."""
    m = _measurement(result, name)
    return _finite(m.get("value")) if m is not None else None


def _ci_high(result: ResultDict, name: str) -> float | None:
    """The upper end of the measurement's confidence interval, where it has a finite one."""
    m = _measurement(result, name)
    if m is None or not m.get("interval") or m.get("interval_kind") != "95% CI":
        return None
    return _finite(m["interval"][1])


def _samples(result: ResultDict) -> int | None:
    """How many samples the check used: its `inputs.samples` fact."""
    counted = result.get("facts", {}).get("inputs.samples")
    return (int(counted) or None) if isinstance(counted, str) and counted.isdigit() else None


@dataclass(frozen=True)
class SuggestContext:
    """What a check's suggestion needs besides its own result."""

    margin: float
    target_is_host: bool  # the target is the machine the figures were measured on
    floor: ResultDict | None = None  # the original model's result of the same check, target and backend


def _upper(value: float, margin: float) -> float | None:
    return round_up(float(_dec(value) * (1 + _dec(margin)))) if value > 0 else None


def _accuracy_drop(result: ResultDict, margin: float) -> float | None:
    drop, accuracy = _figure(result, "accuracy_drop"), _figure(result, "accuracy")
    measured = _measurement(result, "accuracy")
    if measured is None or measured.get("unit") != "%" or drop is None:
        return None
    drop = max(drop, 0.0)
    n = _samples(result)
    if n is not None and accuracy is not None:
        p = min(max(accuracy / 100, 0.0), 1.0)
        slack = max(2 * 100 * math.sqrt(p * (1 - p) / n), 100 / n)
        value = drop + slack
    else:
        value = drop * (1 + margin) + 0.1
    return float(_dec(value).quantize(Decimal("0.01"), rounding=ROUND_CEILING))


def _parity_stats(result: ResultDict) -> dict[str, dict[str, float]]:
    """{output: {stat: value}} of the finite parity statistics (output names may hold dots)."""
    stats: dict[str, dict[str, float]] = {}
    for m in result.get("measurements", []):
        name = m.get("name", "")
        if not name.startswith("parity."):
            continue
        output, _, stat = name[len("parity."):].rpartition(".")
        value = _finite(m.get("value"))
        if output and stat in PARITY_STATS and value is not None:
            stats.setdefault(output, {})[stat] = value
    return stats


def _parity_output(stats: Mapping[str, float], floor: Mapping[str, float], n: int | None,
                   margin: float) -> dict[str, float]:
    budget: dict[str, float] = {}
    for stat in ("max_abs", "rel_l2"):
        if stat in stats:
            worst = max(stats[stat], floor.get(stat, stats[stat]))
            budget[PARITY_STATS[stat]] = _upper(worst, margin) or EPSILON  # 0 (bit-exact) would be brittle
    if "cosine" in stats:
        lowest = min(stats["cosine"], floor.get("cosine", stats["cosine"]))
        gap = max((1 - _dec(lowest)) * (1 + _dec(margin)), Decimal(repr(EPSILON)))
        budget["cosine"] = _below_one(gap, -1.0)
    if "snr_db" in stats:
        lowest = min(stats["snr_db"], floor.get("snr_db", math.inf))
        value = _dec(lowest) - _dec(10 * math.log10(1 + margin))
        budget["snr_db"] = float(value.quantize(Decimal("0.1"), rounding=ROUND_FLOOR))
    if "top1_agreement" in stats:
        lowest = min(stats["top1_agreement"], floor.get("top1_agreement", 1.0))
        slack = _dec(1 / n) if n else Decimal("0.01")
        budget["top1_agreement"] = _below_one(1 - max(_dec(lowest) - slack, Decimal(0)), 0.0)
    return budget


def _parity(result: ResultDict, floor: ResultDict | None, margin: float) -> dict[str, float]:
    floors = _parity_stats(floor) if floor is not None else {}
    n = _samples(result)
    per_output = [_parity_output(stats, floors.get(output, {}), n, margin)
                  for output, stats in _parity_stats(result).items()]
    merged: dict[str, float] = {}
    for budget in per_output:
        merged = loosest(merged, budget, ("parity",), PARITY_LOWER)
    return {k: merged[k] for k in PARITY_ORDER if k in merged}


def _latency(result: ResultDict, margin: float) -> dict[str, float]:
    samples = _figure(result, "latency.samples")
    budget: dict[str, float] = {}
    for pct in LATENCY_ORDER:
        if pct == "p99" and (samples is None or samples < P99_MIN_SAMPLES):
            continue
        value = _ci_high(result, f"latency.{pct}")
        if value is None:
            value = _figure(result, f"latency.{pct}")
        bound = _upper(value, margin) if value is not None else None
        if bound is not None:
            budget[pct] = bound
    return budget


def _stand_in(result: ResultDict, context: SuggestContext) -> dict[str, str]:
    """`source: host` where a device target's figure was measured on this host: a budget without it
    would wait for an on-device figure and never judge the one it was derived from."""
    measured_on = result.get("facts", {}).get("measured_on") or ""
    return {"source": "host"} if not context.target_is_host and measured_on.startswith("host") else {}


# How each built-in check's result becomes budgets ({budget field: value} from one item): their Check.suggest.
def suggest_accuracy(result: ResultDict, context: SuggestContext) -> dict:
    drop = _accuracy_drop(result, context.margin)
    return {"accuracy_drop": drop} if drop is not None else {}


def suggest_parity(result: ResultDict, context: SuggestContext) -> dict:
    parity = _parity(result, context.floor, context.margin)
    return {"parity": parity} if parity else {}


def suggest_size(result: ResultDict, context: SuggestContext) -> dict:
    budgets: dict = {}
    margin = context.margin
    size_mb, ratio = _figure(result, "size_mb"), _figure(result, "size_ratio")
    if size_mb is not None and (bound := _upper(size_mb, margin)) is not None:
        budgets["size_mb"] = bound
    if ratio is not None and ratio > 0 and (low := round_down(float(_dec(ratio) * (1 - _dec(margin))))) > 0:
        budgets["size_ratio"] = low
    return budgets


def suggest_latency(result: ResultDict, context: SuggestContext) -> dict:
    latency = _latency(result, context.margin)
    return {"latency_ms": {**latency, **_stand_in(result, context)}} if latency else {}


def suggest_memory(result: ResultDict, context: SuggestContext) -> dict:
    peak = _figure(result, "memory.peak")
    if peak is not None and (bound := _upper(peak, context.margin)) is not None:
        return {"memory_mb": {"peak": bound, **_stand_in(result, context)}}
    return {}


def loosest(a: Mapping, b: Mapping, path: tuple[str, ...] = (), lower: frozenset = frozenset()) -> dict:
    """Two budget sets merged leaf by leaf, keeping the looser bound of each (the smaller for the paths in
    `lower`, the lower bounds; the larger otherwise)."""
    merged: dict = dict(a)
    for key, value in b.items():
        where = (*path, key)
        if key not in merged:
            merged[key] = value
        elif isinstance(value, Mapping):
            merged[key] = loosest(merged[key], value, where, lower)
        elif isinstance(value, str):  # source: a host stand-in on any backend makes the budget one
            merged[key] = "host" if "host" in (merged[key], value) else value
        else:
            merged[key] = min(merged[key], value) if where in lower else max(merged[key], value)
    return merged


