"""Measured values, their budgets and the verdict: plain data that reports read."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal


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

    @property
    def judged(self) -> bool:
        return self.budget is not None and self.bound is not None

    @property
    def passed(self) -> bool:
        if not self.judged:
            return True
        if math.isnan(self.value):
            return False
        return self.value <= self.budget if self.bound == "max" else self.value >= self.budget  # type: ignore[operator]

    @property
    def margin(self) -> float | None:
        """Headroom left: positive passes, negative is how far over budget."""
        if not self.judged:
            return None
        return (self.budget - self.value) if self.bound == "max" else (self.value - self.budget)  # type: ignore[operator]

    def value_text(self) -> str:
        return f"{fmt(self.value)} {self.unit}".rstrip()

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

    @property
    def passed(self) -> bool:
        return not self.problems and all(m.passed for m in self.measurements)

    def breaches(self) -> list[str]:
        lines = list(self.problems)
        for m in self.measurements:
            if not m.passed:
                lines.append(f"{m.name} = {m.value_text()}, budget {m.budget_desc()}, over by {fmt(-m.margin)}")  # type: ignore[operator]
        return lines

    def headline(self) -> Measurement | None:
        """The figure for a one-line summary: the worst breach, else the first judged figure."""
        judged = [m for m in self.measurements if m.judged]
        breached = [m for m in judged if not m.passed]
        if breached:
            return min(breached, key=lambda m: -math.inf if math.isnan(m.value) else m.margin / (abs(m.budget) or 1.0))  # type: ignore[operator]
        return judged[0] if judged else None
