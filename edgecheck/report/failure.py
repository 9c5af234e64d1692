"""The message a breached budget prints: which figures, measured against what, by how much."""

from __future__ import annotations

from edgecheck.checks.result import CheckResult, fmt
from edgecheck.plan import PlannedCheck
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
        for m in judged:
            margin = m.margin
            rows.append((m.name, m.value_text(), m.budget_desc(), fmt(margin) if margin is not None else "",
                         _LABELS[m.verdict]))
        lines.extend(format_table(rows, indent="  "))
    context = [m for m in result.measurements if not m.judged]
    if context:
        lines.append("  also measured: " + ", ".join(f"{m.name} = {m.value_text()}" for m in context))
    for note in result.notes:
        lines.append(f"  note: {note}")
    for key, value in result.facts.items():
        lines.append(f"  {key}: {value}")
    return "\n".join(lines)
