"""The end-of-session table: one per target, a row per check, built from the items' records.

Records reach the xdist controller from every worker, so the table is the same with or without xdist.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edgecheck.report.properties import xml_safe
from edgecheck.processes import WORKER_OUTPUT
from edgecheck.textable import format_table
from edgecheck.results import record_result



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


def short_reason(outcome: str, reason: str) -> str:
    """What the table shows of a skip or failure message: a skip's reason without its parenthesis, a
    failure's own last line (not the worker output quoted under it)."""
    if outcome == "skipped":
        return reason.split(" (")[0]
    return (reason.split(WORKER_OUTPUT, 1)[0].strip().splitlines() or [""])[-1]


def row_from_record(record: Mapping[str, Any]) -> SummaryRow:
    outcome = str(record.get("outcome", ""))
    verdict = {"passed": "pass", "failed": "FAIL", "skipped": "skip"}.get(outcome, outcome)
    try:
        result = record_result(record)
    except ValueError as exc:  # a record this version cannot read: the row says so, the summary goes on
        result, record = None, {**record, "reason": f"its result cannot be read: {exc}"}
    measured = budget = ""
    if result is not None:
        if result.verdict == "inconclusive":
            verdict = "inconclusive" if outcome == "passed" else "FAIL (inconclusive)"
        headline = result.headline()
        if headline is not None:  # escaped as the JUnit view escapes it: names come from the model
            measured = xml_safe(f"{headline.name} = {headline.value_text()}")
            budget = xml_safe(headline.budget_desc())
    if not measured and outcome != "passed":
        measured = short_reason(outcome, str(record.get("reason", "")))
    board = (result.facts.get("board") if result is not None else None) or ""
    return SummaryRow(
        spec=str(record.get("spec", "")),
        target=str(record.get("target", "")),
        # where a board ran it, which one: a pool's rows then say which board measured what
        backend=str(record.get("backend", "")) + (f" @ {board}" if board else ""),
        recipe=str(record.get("recipe", "")),
        check=str(record.get("check", "")),
        measured=_short(measured),
        budget=budget,
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
