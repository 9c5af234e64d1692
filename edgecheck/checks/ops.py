"""Operator compatibility against `ops`: nodes per class within their bounds, every offender named."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from edgecheck.analysis.ops import CLASSES, OpsReport
from edgecheck.checks.base import BudgetField, Check, CheckContext
from edgecheck.checks.result import CheckResult, Measurement
from edgecheck.spec.ops import OpsBudget, OpsOverride

if TYPE_CHECKING:
    from edgecheck.backends import Backend

LISTED = 25  # offending nodes named in the notes; the rest are counted


def describe_node(verdict) -> str:
    where = f" in {verdict.node.where}" if verdict.node.where else ""
    source = f" [rule: {verdict.rule}]" if verdict.rule else ""
    return f"{verdict.status}: node {verdict.node.name!r} ({verdict.node.key}){where}: {verdict.reason}{source}"


def judge_ops(report: OpsReport, budget: OpsBudget, disagreements: list[str] | None = None) -> CheckResult:
    """Counts per class against the bounds; each offending node, the rules not checkable, and any
    disagreement between the shipped table and the runtime's own verdict, as notes."""
    result = CheckResult("ops")
    counts = report.counts()
    bounds = budget.bounds()
    for status in reversed(CLASSES):
        limit = bounds.get(status)
        result.measurements.append(Measurement(f"ops.{status}", float(counts[status]), "nodes", limit,
                                               "max" if limit is not None else None))
    result.measurements.append(Measurement("ops.nodes", float(len(report.verdicts)), "nodes"))
    offending = report.offending()
    for verdict in offending[:LISTED]:
        result.notes.append(describe_node(verdict))
    if len(offending) > LISTED:
        result.notes.append(f"... and {len(offending) - LISTED} more nodes not supported as they are "
                            "(edgecheck ops MODEL --target ... lists them all)")
    if report.unchecked:
        result.notes.append(f"{len(report.unchecked)} constraints could not be checked (types or shapes unknown), "
                            f"e.g. {report.unchecked[0]}")
    for line in disagreements or []:
        result.notes.append(f"disagreement: {line}")
    result.facts["ops.table"] = f"{report.table.name}: {report.table.citation()}"
    return result


class OpsCheck(Check):
    """Operator compatibility of the artifact with the target's backend, judged by its format's authority
    (an operator table, or a vendor compiler's placement), without running it; on a target a board serves, with
    a backend whose board run reports where each layer runs (Backend.places_on_board: a TensorRT engine), on that
    run instead: the one the latency check times where the entry has a latency budget (the build is the board's,
    made once), the table's verdict on the source graph as the cross-check."""

    name = "ops"
    order = 60
    budgets = {"ops": BudgetField(OpsBudget | None, Field(None, description=(
        "Operator compatibility with the target's backend, as max nodes per class: {unsupported: 0, fallback: 2}."),
        examples=[{"unsupported": 0}, {"unsupported": 0, "fallback": 2}]),
        override=OpsOverride | None, bounds=("unsupported", "fallback", "constraint"))}

    def is_static(self, budgets: Any, target: Any) -> bool:
        return True

    def judges_by_reading(self, budgets: Any) -> bool:
        return True

    def run(self, planned: Any, context: CheckContext) -> CheckResult:
        artifact = context.artifact(planned.spec, planned.recipe).artifact
        if context.measures_on_board(planned):
            backend = context.backend(planned.backend, planned.target)
            if backend.places_on_board:
                return self._on_board(planned, context, backend, artifact.path)
        return context.static_ops(planned, artifact.path)

    @staticmethod
    def _on_board(planned: Any, context: CheckContext, backend: Backend, path: Path) -> CheckResult:
        """Judged on the board's build of the artifact: its timing run reports each layer's placement (a failed
        build fails here as for latency, with the build's log lines)."""
        from edgecheck.measure.runs import TimingPlan

        where = context.where_measured(planned)
        latency = getattr(planned.budgets, "latency_ms", None)
        # the latency check's run where there is one (one timing, shared), else the short default run
        measured = context.measured(planned, backend, path, TimingPlan.for_latency(latency) if latency else None)
        label = str(measured.extra.get("measured_on") or where)
        return context.placed_ops(planned, path, dict(measured.extra.get("native") or {}), label)
