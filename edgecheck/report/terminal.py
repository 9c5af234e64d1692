"""The end-of-session table: per target and spec, a row per check, built from the items' records, with the whole
reason of every verdict that is not a pass wrapped under its row.

Records reach the xdist controller from every worker, so the table is the same with or without xdist.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from edgecheck.report.figures import (baseline_column, budget_column, margin_column, measured_text, message_lines,
                                      record_reasons)
from edgecheck.report.properties import xml_safe
from edgecheck.results import record_result
from edgecheck.textable import format_table

REASON_INDENT = "      "  # under a row, past its verdict: the reason reads as the row's


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
    margin: str = ""
    baseline: str = ""  # the changes against --edge-baseline's figures
    reasons: tuple[str, ...] = ()  # why it did not pass, whole: one entry per reason


def short_reason(outcome: str, reason: str) -> str:
    """A skip's or failure's message in one line: its own words, whole (without the worker output quoted under
    it, the test id or a log time stamp before it)."""
    return " ".join(message_lines({"outcome": outcome, "reason": reason}))


def row_from_record(record: Mapping[str, Any]) -> SummaryRow:
    outcome = str(record.get("outcome", ""))
    verdict = {"passed": "pass", "failed": "FAIL", "skipped": "skip"}.get(outcome, outcome)
    measured = budget = margin = baseline = ""
    try:
        result = record_result(record)
    except ValueError:  # a record this version cannot read: the row says so (record_reasons), the summary goes on
        result, measured = None, "(its result cannot be read)"
    if result is not None:
        if result.verdict == "inconclusive":
            verdict = "inconclusive" if outcome == "passed" else "FAIL (inconclusive)"
        # escaped as the JUnit view escapes it: names come from the model
        measured, budget = xml_safe(measured_text(result)), xml_safe(budget_column(result))
        margin, baseline = margin_column(result), baseline_column(result)
    board = (result.facts.get("board") if result is not None else None) or ""
    return SummaryRow(
        spec=str(record.get("spec", "")),
        target=str(record.get("target", "")),
        # where a board ran it, which one: a pool's rows then say which board measured what
        backend=str(record.get("backend", "")) + (f" @ {board}" if board else ""),
        recipe=str(record.get("recipe", "")),
        check=str(record.get("check", "")),
        measured=measured,
        budget=budget,
        verdict=verdict,
        margin=margin,
        baseline=baseline,
        reasons=tuple(xml_safe(line) for line in record_reasons(record)) if verdict != "pass" or measured.startswith(
            "(its result") else (),
    )


def _listed(names: list[str], what: str) -> str:
    return names[0] if len(names) == 1 else f"{len(names)} {what}"


def _merge_skips(rows: list[SummaryRow]) -> list[SummaryRow]:
    """Skips of one backend for one reason read as one row, where the first of them stood, saying how many checks
    and recipes it stands for ("memory", "10 recipes") and naming them under it."""
    groups: dict[tuple[Any, ...], list[SummaryRow]] = {}
    order: list[tuple[Any, ...] | int] = []
    for index, row in enumerate(rows):
        if row.verdict != "skip":
            order.append(index)
            continue
        key = (row.target, row.spec, row.backend, row.reasons)
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(row)
    merged = []
    for entry in order:
        if isinstance(entry, int):
            merged.append(rows[entry])
            continue
        group = groups[entry]
        if len(group) == 1:
            merged.append(group[0])
            continue
        checks = list(dict.fromkeys(r.check for r in group))
        recipes = list(dict.fromkeys(r.recipe for r in group))
        named = [f"checks: {', '.join(checks)}"] if len(checks) > 1 else []
        named += [f"recipes: {', '.join(recipes)}"] if len(recipes) > 1 else []
        merged.append(replace(group[0], check=_listed(checks, "checks"), recipe=_listed(recipes, "recipes"),
                              reasons=group[0].reasons + tuple(named)))
    return merged


def wrap(text: str, width: int, indent: str = REASON_INDENT) -> list[str]:
    """A reason wrapped to the terminal's width, whole: long words (paths) are broken, never dropped."""
    return textwrap.wrap(text, width=max(width, len(indent) + 20), initial_indent=indent, subsequent_indent=indent,
                         break_on_hyphens=False) or [indent.rstrip()]


def format_tables(rows: list[SummaryRow], width: int = 80) -> list[str]:
    """Lines of text: a heading and an aligned table per target and spec; under each row that did not pass, its
    reasons wrapped to `width` (the terminal's)."""
    rows = _merge_skips(rows)
    lines: list[str] = []
    compared = any(r.baseline for r in rows)
    header = ("verdict", "check", "backend", "recipe", "measured", "budget", "margin",
              *(("vs baseline",) if compared else ()))
    for target, spec in dict.fromkeys((r.target, r.spec) for r in rows):
        mine = [r for r in rows if (r.target, r.spec) == (target, spec)]
        body = [(r.verdict, r.check, r.backend, r.recipe, r.measured, r.budget, r.margin,
                 *((r.baseline,) if compared else ())) for r in mine]
        lines.append(f"target {target}: {spec}")
        table = format_table([header, *body], indent="  ")
        lines.append(table[0])
        for row, text in zip(mine, table[1:]):
            lines.append(text)
            for reason in row.reasons:
                lines.extend(wrap(reason, width))
        lines.append("")
    return lines
