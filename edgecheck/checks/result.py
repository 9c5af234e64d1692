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
                lines.append(f"{m.name} = {m.value_text()}, budget {m.budget_desc()}, over by {fmt(-m.margin)}")  # type: ignore[operator]
            elif m.verdict == "inconclusive" and m.cannot_judge:
                lines.append(f"{m.name} = {m.value_text()}, budget {m.budget_desc()}: cannot judge: {m.cannot_judge}")
            elif m.verdict == "inconclusive":
                within = ("the measurement's noise" if m.interval_kind == "95% CI"
                          else "the range the estimate leaves open (it is a lower bound)" if m.interval_kind == "lower bound"
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
