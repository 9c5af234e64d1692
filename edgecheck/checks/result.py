"""Measured values, their budgets and the verdict: plain data that reports read."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

Verdict = Literal["pass", "fail", "inconclusive"]


def fmt(value: float) -> str:
    """A figure as people read it: 4 significant digits, no float noise."""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-4):
        return f"{value:.3e}"
    return f"{value:.6g}" if abs(value) < 1 else f"{value:.4f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class Measurement:
    """One figure; with a budget it must stay at or below it (bound='max') or at or above it ('min')."""

    name: str
    value: float
    unit: str = ""
    budget: float | None = None
    bound: Literal["max", "min"] | None = None
    budget_text: str = ""  # how the spec said it, e.g. "1%" or "1 pts"
    # the value's confidence interval, for a figure with noise (a latency percentile): a budget inside
    # it cannot be judged either way from this run, and the verdict says so
    interval: tuple[float, float] | None = None
    interval_kind: str = "95% CI"  # what the interval is: a confidence interval, or an estimate's stated error
    cannot_judge: str = ""  # why this figure cannot be held to its budget at all (a share of zero): inconclusive

    @property
    def judged(self) -> bool:
        return self.budget is not None and self.bound is not None

    @property
    def verdict(self) -> Verdict:
        if not self.judged:
            return "pass"
        if math.isnan(self.value):
            return "fail"
        if self.cannot_judge:
            return "inconclusive"
        budget = self.budget
        assert budget is not None
        if self.interval is not None and not any(math.isnan(x) for x in self.interval):
            low, high = self.interval
            if self.bound == "max":
                return "pass" if high <= budget else ("fail" if low > budget else "inconclusive")
            return "pass" if low >= budget else ("fail" if high < budget else "inconclusive")
        return "pass" if (self.value <= budget if self.bound == "max" else self.value >= budget) else "fail"

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    @property
    def margin(self) -> float | None:
        """Headroom left: positive passes, negative is how far over budget."""
        if not self.judged:
            return None
        return (self.budget - self.value) if self.bound == "max" else (self.value - self.budget)  # type: ignore[operator]

    def value_text(self) -> str:
        text = f"{fmt(self.value)} {self.unit}".rstrip()
        if self.interval is not None:
            low, high = self.interval
            text += f" ({self.interval_kind} {fmt(low)}..{fmt(high)})"
        return text

    def budget_desc(self) -> str:
        if not self.judged:
            return ""
        sign = "<=" if self.bound == "max" else ">="
        return f"{sign} {self.budget_text or (fmt(self.budget) + (' ' + self.unit if self.unit else ''))}"  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-able data (non-finite floats as "nan", "inf", "-inf"), with the derived verdict and margin."""
        return measurement_to_dict(self)

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> Measurement:
        """The measurement `to_dict` wrote; a ValueError names what is malformed."""
        return measurement_from_dict(d)


@dataclass
class CheckResult:
    """What one check measured, what it was judged against, and what else a reader needs."""

    check: str
    measurements: list[Measurement] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # failures that are not a number (shape mismatch, ...)
    notes: list[str] = field(default_factory=list)
    facts: dict[str, str] = field(default_factory=dict)  # where and how it was measured
    warnings: list[str] = field(default_factory=list)  # shown as pytest warnings; do not change the verdict
    doubts: list[str] = field(default_factory=list)  # why figures that pass mean nothing here: inconclusive
    # False: judged with a part missing for a reason that may pass (a shape inference that timed out or ran out
    # of memory on a busy machine): shown as it is, never kept in the cache (a warm run judges it again)
    keep: bool = field(default=True, compare=False, repr=False)

    @property
    def verdict(self) -> Verdict:
        """fail on any problem or breach; inconclusive when a budget lies within a figure's noise."""
        verdicts = {m.verdict for m in self.measurements}
        if self.problems or "fail" in verdicts:
            return "fail"
        return "inconclusive" if "inconclusive" in verdicts or self.doubts else "pass"

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    def breaches(self) -> list[str]:
        lines = list(self.problems) + [f"inconclusive: {doubt}" for doubt in self.doubts]
        for m in self.measurements:
            if m.verdict == "fail":
                past = "short by" if m.bound == "min" else "over by"  # a minimum is missed from below
                lines.append(f"{m.name} = {m.value_text()}, budget {m.budget_desc()}, {past} {fmt(-m.margin)}")  # type: ignore[operator]
            elif m.verdict == "inconclusive" and m.cannot_judge:
                lines.append(f"{m.name} = {m.value_text()}, budget {m.budget_desc()}: cannot judge: {m.cannot_judge}")
            elif m.verdict == "inconclusive":
                within = ("the measurement's noise" if m.interval_kind == "95% CI"
                          else "the range the estimate leaves open (it is a lower bound)" if m.interval_kind == "lower bound"
                          else ("the range a typical-latency estimate leaves open for a tail percentile (it can only "
                                "bound it from below)") if m.interval_kind == "tail lower bound"
                          else f"the estimate's {m.interval_kind}")
                lines.append(f"{m.name} = {m.value_text()}, budget {m.budget_desc()}: inconclusive, the budget lies "
                             f"within {within}")
        return lines

    def reasons(self) -> list[str]:
        """Why the verdict is inconclusive where it is not the noise: the doubts, and figures that cannot be judged."""
        return list(self.doubts) + [m.cannot_judge for m in self.measurements
                                    if m.cannot_judge and m.verdict == "inconclusive"]

    def headline(self) -> Measurement | None:
        """The figure for a one-line summary: the worst breach, else the first judged figure."""
        judged = [m for m in self.measurements if m.judged]
        breached = [m for m in judged if not m.passed]
        if breached:
            return min(breached, key=lambda m: -math.inf if math.isnan(m.value) else m.margin / (abs(m.budget) or 1.0))  # type: ignore[operator]
        return judged[0] if judged else None

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-able data: what the xdist controller, --edge-results and every report read."""
        return result_to_dict(self)

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> CheckResult:
        """The result `to_dict` wrote; a ValueError names what is malformed."""
        return result_from_dict(d)


# Serialisation: a result as plain JSON-able data, for the xdist controller, --edge-results and baselines.
# Non-finite floats become the strings "nan", "inf" and "-inf" (JSON has no such numbers).

JsonNumber = float | str


def number_to_json(value: float) -> JsonNumber:
    """A float as JSON holds it: finite as a number, NaN and infinities as strings."""
    value = float(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def number_from_json(value: object) -> float:
    """The float `number_to_json` wrote; a ValueError for anything else (a bool, another string)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{value!r} is not a number")
    if isinstance(value, str) and value not in ("nan", "inf", "-inf"):
        raise ValueError(f"{value!r} is not a number (only 'nan', 'inf' and '-inf' are written as strings)")
    return float(value)


def measurement_to_dict(m: Measurement) -> dict[str, object]:
    """Every field, plus the derived verdict and margin (for readers that do not recompute them)."""
    return {
        "name": m.name,
        "value": number_to_json(m.value),
        "unit": m.unit,
        "budget": None if m.budget is None else number_to_json(m.budget),
        "bound": m.bound,
        "budget_text": m.budget_text,
        "interval": None if m.interval is None else [number_to_json(x) for x in m.interval],
        "interval_kind": m.interval_kind,
        "cannot_judge": m.cannot_judge,
        "verdict": m.verdict,
        "margin": None if m.margin is None else number_to_json(m.margin),
    }


def measurement_from_dict(d: dict[str, object]) -> Measurement:
    """The Measurement `measurement_to_dict` wrote (its verdict and margin are derived again, not read)."""
    interval = d.get("interval")
    bound = d.get("bound")
    if bound not in (None, "max", "min"):
        raise ValueError(f"bound {bound!r} is neither 'max' nor 'min'")
    if interval is not None and (not isinstance(interval, (list, tuple)) or len(interval) != 2):
        raise ValueError(f"interval {interval!r} is not a pair")
    budget = d.get("budget")
    return Measurement(
        name=str(d["name"]),
        value=number_from_json(d["value"]),
        unit=str(d.get("unit", "")),
        budget=None if budget is None else number_from_json(budget),
        bound=bound,  # type: ignore[arg-type]
        budget_text=str(d.get("budget_text", "")),
        interval=None if interval is None else (number_from_json(interval[0]), number_from_json(interval[1])),
        interval_kind=str(d.get("interval_kind", "95% CI")),
        cannot_judge=str(d.get("cannot_judge", "")),
    )


def _strings(d: dict[str, object], key: str) -> list[str]:
    values = d.get(key, [])
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ValueError(f"{key!r} must be a list of strings")
    return list(values)


def result_to_dict(result: CheckResult) -> dict[str, object]:
    return {
        "check": result.check,
        "verdict": result.verdict,
        "measurements": [measurement_to_dict(m) for m in result.measurements],
        "problems": list(result.problems),
        "notes": list(result.notes),
        "facts": dict(result.facts),
        "warnings": list(result.warnings),
        "doubts": list(result.doubts),
    }


def result_from_dict(d: dict[str, object]) -> CheckResult:
    facts = d.get("facts", {})
    if not isinstance(facts, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in facts.items()):
        raise ValueError("'facts' must be an object of strings")
    measurements = d.get("measurements", [])
    if not isinstance(measurements, list):
        raise ValueError("'measurements' must be a list")
    return CheckResult(
        check=str(d["check"]),
        measurements=[measurement_from_dict(m) for m in measurements],
        problems=_strings(d, "problems"),
        notes=_strings(d, "notes"),
        facts=dict(facts),
        warnings=_strings(d, "warnings"),
        doubts=_strings(d, "doubts"),
    )


def measured_figures(result: CheckResult) -> dict[str, float]:
    """Every finite figure the check measured, and the ends of its confidence interval or range
    (`<name>.ci_low`/`.ci_high`, `.range_low`/`.range_high`): what a baseline keeps by default. Changes
    against another baseline (`regression.*`) are relative, not this run's figures, and are left out."""
    figures: dict[str, float] = {}
    for m in result.measurements:
        if m.name.startswith("regression."):
            continue
        named = [(m.name, m.value)]
        if m.interval is not None:
            kind = "ci" if m.interval_kind == "95% CI" else "range"
            named += [(f"{m.name}.{kind}_low", m.interval[0]), (f"{m.name}.{kind}_high", m.interval[1])]
        figures.update((name, float(value)) for name, value in named if math.isfinite(value))
    return figures
