"""The `energy` check: energy of one inference, mJ — the median latency measured here times the power the
backend reports for its board — against the spec's `energy_mj` budget."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pydantic import Field

from edgecheck.checks.base import BudgetField, Check, CheckContext
from edgecheck.checks.result import CheckResult, Measurement


class EnergyCheck(Check):
    name = "energy"
    order = 45
    budgets = {"energy_mj": BudgetField(float | None, Field(None, gt=0, description="Max energy of one inference, mJ."))}

    def run(self, planned: Any, context: CheckContext) -> CheckResult:
        where = context.where_measured(planned)
        backend = context.backend(planned.backend)
        power = float(backend.facts().get("power_w", "nan"))  # NaN: never a pass
        made = context.artifact(planned.spec, planned.recipe)
        measured = context.measured(planned, backend, made.artifact.path)
        p50 = measured.stats.percentile(50)
        result = CheckResult("energy")
        result.measurements.append(Measurement("energy_mj", p50 * power, "mJ", planned.budgets.energy_mj, "max"))
        result.measurements.append(Measurement("energy.latency_p50", p50, "ms"))
        result.measurements.append(Measurement("energy.power", power, "W"))
        result.facts["measured_on"] = where
        if math.isnan(power):
            result.problems.append(f"{backend.name} reports no power_w: energy cannot be measured")
        return result

    def baseline_figures(self, result: CheckResult) -> dict[str, float]:
        return {m.name: m.value for m in result.measurements if m.name == "energy_mj"}

    def compare_with_baseline(self, result: CheckResult, before: Mapping[str, float] | None, name: str,
                              planned: Any, comparable: bool) -> None:
        """A note of the change against the stored run (this check takes no regression budget)."""
        now, then = next(m.value for m in result.measurements if m.name == "energy_mj"), (before or {}).get("energy_mj")
        if then:
            result.notes.append(f"energy {now / then - 1:+.1%} against baseline {name!r} ({then:.3g} mJ)")

    suggest_notes = {"energy_mj": "energy_mj: the measured energy*(1+margin), 3 significant digits"}

    def suggest(self, result: Mapping[str, Any], context: Any) -> dict[str, Any]:
        values = [m["value"] for m in result.get("measurements", []) if m["name"] == "energy_mj"]
        if values and isinstance(values[0], float) and math.isfinite(values[0]) and values[0] > 0:
            return {"energy_mj": float(f"{values[0] * (1 + context.margin):.3g}")}
        return {}


class GreedyCheck(Check):
    """A kind that claims a built-in budget field (a plug-in's mistake): it must be refused, loudly, and the
    built-in kind keep its field."""

    name = "greedy"
    budgets = {"size_mb": BudgetField(float | None, Field(None, description="Someone else's budget."))}

    def run(self, planned: Any, context: CheckContext) -> CheckResult:
        raise AssertionError("a refused kind never runs")
