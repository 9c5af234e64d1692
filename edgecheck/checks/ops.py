"""Operator compatibility against `ops`: nodes per class within their bounds, every offender named."""

from __future__ import annotations

from edgecheck.analysis.ops import CLASSES, OpsReport
from edgecheck.checks.result import CheckResult, Measurement
from edgecheck.spec.ops import OpsBudget

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
