"""`--edge-suggest`: budgets derived from this run's figures, printed as YAML to paste into a spec.

Default tolerances are guesses; these are built from evidence: what was measured, widened by a
margin and by the measurement's own noise, and rounded towards looser so a rerun still passes.
edgecheck never edits a spec: a person reviews the suggestion and pastes it.

How each budget is derived (`margin` is 0.10 unless given):

- upper bounds `size_mb`, `latency_ms` {p50, p95, p99}, `memory_mb` {peak}: figure x (1 + margin),
  rounded up to 2 significant digits. Latency uses the upper end of the percentile's confidence
  interval (the `latency.<pNN>` measurement's) when it is there; p99 only with at least 662 timed runs
  (fewer cannot place a 99th percentile with confidence). Figures <= 0 give no budget.
- lower bound `size_ratio`: figure x (1 - margin), rounded down to 2 significant digits.
- `accuracy_drop` (top-k metrics, in points): max(drop, 0) + 2 standard errors of the accuracy,
  SE = 100 sqrt(p(1-p)/n) with n the evaluated samples, and at least one sample's worth (100/n:
  at 100 % accuracy the SE is 0, and a budget of 0 fails on the first flipped sample); if n is not
  known, drop x (1 + margin) + 0.1. Rounded up to 0.01.
- `parity`, per output, then the loosest over outputs. The noise floor is the same statistic of the
  original model (`recipe: none`) on the same target and backend: that is how far the backend alone
  is from the single-thread ONNX Runtime reference, so no artifact can be asked to do better.
  atol (from max_abs) and rel_l2 = max(value, floor) x (1 + margin), rounded up to 2 significant
  digits, and 1e-6 rather than 0 where the run was bit-exact; cosine = 1 - (1 - min(value, floor))
  x (1 + margin), the distance from 1 rounded up to 2 significant digits (at least 1e-6);
  snr_db = min(value, floor) - 10 log10(1 + margin), rounded down to 0.1 dB (none if infinite);
  top1_agreement = min(value, floor) - 1/n with n the parity samples (- 0.01 if n is not known).
- latency and memory are this machine's figures: for a device target measured on the host the
  budget says `source: host` (a stand-in), since one without it waits for an on-device figure.
- with several backends for a target, each budget is the loosest over them.
- a budget kind with no finite figure in the run is left out.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

import yaml

from edgecheck.errors import EdgecheckError
from edgecheck.results import IDENTITY, ran

DEFAULT_MARGIN = 0.10
P99_MIN_SAMPLES = 662
EPSILON = 1e-6
BUDGET_ORDER = ("accuracy_drop", "parity", "size_mb", "size_ratio", "latency_ms", "memory_mb")
PARITY_ORDER = ("atol", "rel_l2", "cosine", "snr_db", "top1_agreement")
PARITY_STATS = {"max_abs": "atol", "rel_l2": "rel_l2", "cosine": "cosine", "snr_db": "snr_db",
                "top1_agreement": "top1_agreement"}
LATENCY_ORDER = ("p50", "p95", "p99")
# Budgets that are lower bounds: the loosest of two is the smaller. Everything else is an upper bound.
_LOWER = {("size_ratio",), ("parity", "cosine"), ("parity", "snr_db"), ("parity", "top1_agreement")}
# Where the executor does not record the sample count as the `inputs.samples` fact, it is read from the
# `inputs` fact ('test.npz (540 of 540 samples)', 'synthetic (32 inputs, seed 0)'): the one text still parsed.
_OF_SAMPLES = re.compile(r"\((\d+) of \d+ samples\)")
_SYNTHETIC = re.compile(r"\((\d+) inputs\b")

_COMMENTS = {
    "accuracy_drop": "accuracy_drop: max(measured drop, 0) + 2 standard errors of the accuracy "
                     "(100*sqrt(p(1-p)/n) points, at least 100/n), rounded up to 0.01",
    "parity": "parity: per output, the loosest; never tighter than the noise floor (recipe none on the same "
              "backend against the 1-thread reference): atol, rel_l2 = max(value, floor)*(1+margin) rounded up "
              "to 2 significant digits; cosine = 1-(1-min(value, floor))*(1+margin), at least 1e-6 below 1; "
              "snr_db = min(value, floor)-10*log10(1+margin), rounded down to 0.1 dB; "
              "top1_agreement = min(value, floor)-1/n samples",
    "size_mb": "size_mb: artifact size*(1+margin), rounded up to 2 significant digits",
    "size_ratio": "size_ratio: measured ratio*(1-margin), rounded down to 2 significant digits",
    "latency_ms": "latency_ms: upper end of each percentile's confidence interval (else the percentile)"
                  "*(1+margin), rounded up to 2 significant digits; p99 only from >= 662 timed runs; "
                  "timed on this machine (source: host marks it as a stand-in for a device target)",
    "memory_mb": "memory_mb: peak footprint (worker peak RSS minus its idle baseline)*(1+margin), rounded up "
                 "to 2 significant digits; measured on this machine (source: host for a device target)",
}


class SuggestError(EdgecheckError):
    """The suggestion cannot be made as asked (a margin outside [0, 1))."""


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
    """How many samples the check used: the `inputs.samples` fact where the executor records it, else
    read from the `inputs` fact ('test.npz (540 of 540 samples)')."""
    found = result.get("facts", {})
    counted = found.get("inputs.samples")
    if isinstance(counted, str) and counted.isdigit():
        return int(counted) or None
    text = found.get("inputs")
    if not isinstance(text, str):
        return None
    match = _OF_SAMPLES.search(text) or _SYNTHETIC.search(text)
    return int(match.group(1)) if match and int(match.group(1)) > 0 else None


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
        merged = _loosest(merged, budget, ("parity",))
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


# How each check's result becomes budgets, by check name: {budget kind: value} from one item.
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


SUGGESTERS: dict[str, Callable[[ResultDict, SuggestContext], dict]] = {
    "accuracy": suggest_accuracy, "parity": suggest_parity, "size": suggest_size,
    "latency": suggest_latency, "memory": suggest_memory,
}
# Checks whose result on the original model (recipe none) is the noise floor of the same check's suggestion.
FLOOR_CHECKS = ("parity",)


def _loosest(a: Mapping, b: Mapping, path: tuple[str, ...] = ()) -> dict:
    """Two budget sets merged leaf by leaf, keeping the looser bound of each."""
    merged: dict = dict(a)
    for key, value in b.items():
        where = (*path, key)
        if key not in merged:
            merged[key] = value
        elif isinstance(value, Mapping):
            merged[key] = _loosest(merged[key], value, where)
        elif isinstance(value, str):  # source: a host stand-in on any backend makes the budget one
            merged[key] = "host" if "host" in (merged[key], value) else value
        else:
            merged[key] = min(merged[key], value) if where in _LOWER else max(merged[key], value)
    return merged


def _ordered(budgets: Mapping) -> dict:
    out: dict = {}
    for kind in BUDGET_ORDER:
        if kind not in budgets:
            continue
        value = budgets[kind]
        if kind == "parity":
            value = {k: value[k] for k in PARITY_ORDER if k in value}
        elif kind == "latency_ms":
            value = {k: value[k] for k in (*LATENCY_ORDER, "source") if k in value}
        out[kind] = value
    return out


def suggest_budgets(records: list[Mapping[str, Any]], margin: float = DEFAULT_MARGIN) -> dict[str, dict]:
    """{spec: {"targets": {target: {"recipes": {entry: budgets}}}}} from the records of items that ran."""
    if not isinstance(margin, (int, float)) or isinstance(margin, bool) or not 0 <= margin < 1:
        raise SuggestError(f"suggestion margin {margin!r} must be a number in [0, 1), e.g. 0.1 for 10 %")
    done = [r for r in ran(records) if all(isinstance(r.get(k), str) and r[k] for k in IDENTITY if k != "spec_name")]
    floors = {(r["spec"], r["target"], r["backend"], r["check"]): r["result"]
              for r in done if r["recipe"] == "none" and r["check"] in FLOOR_CHECKS}
    merged: dict[tuple[str, str, str], dict] = {}
    for record in done:
        suggest = SUGGESTERS.get(record["check"])
        if suggest is None:
            continue
        spec, target, backend, recipe, check = (record[k] for k in ("spec", "target", "backend", "recipe", "check"))
        context = SuggestContext(margin, bool(record.get("target_is_host")), floors.get((spec, target, backend, check)))
        budgets = suggest(record["result"], context)
        if budgets:
            key = (spec, target, recipe)
            merged[key] = _loosest(merged.get(key, {}), budgets)
    result: dict[str, dict] = {}
    for spec, target, recipe in sorted(merged, key=lambda k: (k[0], k[1], k[2] != "none", k[2])):
        targets = result.setdefault(spec, {"targets": {}})["targets"]
        targets.setdefault(target, {"recipes": {}})["recipes"][recipe] = _ordered(merged[(spec, target, recipe)])
    return result


def _kinds(targets: Mapping) -> set[str]:
    return {kind for section in targets.values() for budgets in section.get("recipes", {}).values() for kind in budgets}


def _epsilon_used(targets: Mapping) -> bool:
    return any(budgets.get("parity", {}).get(k) == EPSILON
               for section in targets.values() for budgets in section.get("recipes", {}).values()
               for k in ("atol", "rel_l2"))


def _comment(text: str) -> str:
    return "# " + " ".join(str(text).split())


def format_suggestions(suggestions: dict[str, dict], margin: float) -> str:
    """YAML blocks, one per spec, each headed by comments saying where every number came from."""
    if not suggestions:
        return _comment("edgecheck --edge-suggest: no figures in this run to derive budgets from") + "\n"
    blocks = []
    for spec, block in suggestions.items():
        targets = block.get("targets", {})
        kinds = _kinds(targets)
        lines = [_comment(f"{spec}: budgets suggested by edgecheck --edge-suggest from this run's figures, "
                          f"margin {margin * 100:g}%")]
        lines += [_comment(_COMMENTS[kind]) for kind in BUDGET_ORDER if kind in kinds]
        if _epsilon_used(targets):
            lines.append(_comment(f"atol or rel_l2 of {EPSILON:g}: the run was bit-exact (0); a bound of 0 would "
                                  "fail on the first harmless change of kernels or threads"))
        lines.append(_comment("with several backends per target, each budget is the loosest over them"))
        lines.append(_comment("paste under the spec's targets: and review; edgecheck never edits a spec"))
        body = yaml.safe_dump(targets, sort_keys=False, default_flow_style=False, allow_unicode=True)
        blocks.append("\n".join(lines) + "\n" + body)
    return "\n".join(blocks)
