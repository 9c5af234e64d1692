"""The end-of-session table: one per target, a row per check, built from test reports.

It reads only the reports' `edge.*` properties, so it works the same under pytest-xdist, where
the items ran in other processes.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgecheck.report.table import format_table


@dataclass(frozen=True, order=True)
class SummaryRow:
    target: str
    spec: str
    backend: str
    recipe: str
    check: str
    measured: str
    budget: str
    verdict: str


def row_from_report(properties: dict[str, str], outcome: str, reason: str) -> SummaryRow:
    verdict = {"passed": "pass", "failed": "FAIL", "skipped": "skip"}.get(outcome, outcome)
    if properties.get("edge.verdict") == "inconclusive":
        verdict = "inconclusive" if outcome == "passed" else "FAIL (inconclusive)"
    measured = properties.get("edge.summary", "")
    if not measured and outcome != "passed":
        measured = reason.split(" (")[0] if outcome == "skipped" else reason
    return SummaryRow(
        spec=properties.get("edge.spec", ""),
        target=properties.get("edge.target", ""),
        backend=properties.get("edge.backend", ""),
        recipe=properties.get("edge.recipe", ""),
        check=properties.get("edge.check", ""),
        measured=_short(measured),
        budget=properties.get("edge.summary.budget", ""),
        verdict=verdict,
    )


def _short(text: str, width: int = 72) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _merge_skips(rows: list[SummaryRow]) -> list[SummaryRow]:
    """Skips of one backend for one reason read as one row (where the first of them stood), not one
    per check and recipe."""
    merged: list[SummaryRow] = []
    counts: list[int] = []
    where: dict[tuple[str, str, str, str], int] = {}
    for row in rows:
        key = (row.target, row.spec, row.backend, row.measured)
        if row.verdict == "skip" and key in where:
            index = where[key]
            counts[index] += 1
            first = merged[index]
            changes = {}
            if first.recipe != row.recipe:
                changes["recipe"] = "all"
            if first.check != row.check and not first.check.startswith("("):
                changes["check"] = "(mixed)"
            if changes:
                merged[index] = SummaryRow(**{**first.__dict__, **changes})
            continue
        if row.verdict == "skip":
            where[key] = len(merged)
        merged.append(row)
        counts.append(1)
    return [SummaryRow(**{**r.__dict__, "check": f"{n} checks" if r.check == "(mixed)" else f"{n} {r.check}"})
            if n > 1 else r for r, n in zip(merged, counts)]


def format_tables(rows: list[SummaryRow]) -> list[str]:
    """Lines of text: a heading and an aligned table per target."""
    rows = _merge_skips(rows)
    lines: list[str] = []
    header = ("spec", "check", "backend", "recipe", "measured", "budget", "verdict")
    for target in dict.fromkeys(r.target for r in rows):
        body = [(r.spec, r.check, r.backend, r.recipe, r.measured, r.budget, r.verdict)
                for r in rows if r.target == target]
        lines.append(f"target {target}")
        lines.extend(format_table([header, *body], indent="  "))
        lines.append("")
    return lines
