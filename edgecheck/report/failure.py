"""The message a breached budget prints: which figures, measured against what, by how much."""

from __future__ import annotations

from edgecheck.checks.result import CheckResult
from edgecheck.plan import PlannedCheck
from edgecheck.report.figures import budget_text, margin_text, value_text
from edgecheck.textable import format_table


_LABELS = {"pass": "ok", "fail": "BREACH", "inconclusive": "INCONCLUSIVE"}


def describe_breach(planned: PlannedCheck, result: CheckResult) -> str:
    doubt = "; ".join(result.reasons()) or "the budget lies within the noise"
    what = "budget breached" if result.verdict == "fail" else f"verdict inconclusive ({doubt})"
    head = (f"{planned.check} {what}: {planned.spec.path.name} target {planned.target.name}, "
            f"backend {planned.backend}, recipe {planned.recipe}")
    lines = [head]
    for problem in result.problems:
        lines.append(f"  problem: {problem}")
    judged = [m for m in result.measurements if m.judged]
    if judged:
        rows = [("metric", "measured", "budget", "margin", "")]
        for m in judged:  # the figures in human units, as the summary table shows them
            rows.append((m.name, value_text(m), budget_text(m), margin_text(m), _LABELS[m.verdict]))
        lines.extend(format_table(rows, indent="  "))
    context = [m for m in result.measurements if not m.judged]
    if context:
        lines.append("  also measured: " + ", ".join(f"{m.name} = {value_text(m)}" for m in context))
    for note in result.notes:
        lines.append(f"  note: {note}")
    for key, value in result.facts.items():
        lines.append(f"  {key}: {value}")
    return "\n".join(lines)
