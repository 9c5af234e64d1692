"""Two runs side by side, for a pull request: every figure that moved between the base branch's results and this
branch's, with its direction (worse or better where the figure has a budget), and every verdict that changed —
a budget crossed — first. Read from two `--edge-results` files (`edgecheck compare BASE.json HEAD.json`).

A measured figure whose two confidence intervals overlap moved within its noise, and says so: a reviewer should
not chase a 2 % latency change that the run could not resolve.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecheck.checks.result import Measurement
from edgecheck.report.figures import budget_text, difference_unit
from edgecheck.report.markdown import markdown_table
from edgecheck.report.terminal import row_from_record
from edgecheck.results import IDENTITY, item_id, read_results_records, record_result
from edgecheck.units import quantity, signed

Key = tuple[str, ...]


@dataclass(frozen=True)
class Moved:
    item: str
    figure: str
    base: str
    head: str
    change: str
    budget: str
    verdicts: str  # "pass → FAIL"; empty where the verdict stayed
    worse: bool  # a verdict got worse, or a budgeted figure moved the wrong way
    size: float  # |relative change|, for the order


def _key(record: Mapping[str, Any]) -> Key:
    return tuple(str(record.get(k, "")) for k in IDENTITY if k != "spec_name")


def _label(record: Mapping[str, Any]) -> str:
    return f"{record.get('spec', '')} {item_id(record)}"


def _result(record: Mapping[str, Any]) -> Any:
    try:
        return record_result(record)
    except ValueError:  # a record this version cannot read: its item compares by outcome only
        return None


def _verdict(record: Mapping[str, Any]) -> str:
    """The item's verdict as the summary table shows it (pass, FAIL, inconclusive, skip, ...)."""
    return row_from_record(record).verdict


def _figures(record: Mapping[str, Any]) -> dict[str, Measurement]:
    result = _result(record)
    return {m.name: m for m in result.measurements} if result is not None else {}


def _within_noise(a: Measurement, b: Measurement) -> bool:
    """Both are measurements with a confidence interval, and the intervals overlap."""
    if a.interval is None or b.interval is None or "CI" not in a.interval_kind or "CI" not in b.interval_kind:
        return False
    return a.interval[0] <= b.interval[1] and b.interval[0] <= a.interval[1]


def moved_figures(base: list[dict[str, Any]], head: list[dict[str, Any]], threshold: float = 0.0) -> tuple[
        list[Moved], list[str], list[str]]:
    """(figures that moved by more than `threshold` relative, or whose verdict changed; items only in head;
    items only in base)."""
    before = {_key(r): r for r in base if r.get("target")}
    after = {_key(r): r for r in head if r.get("target")}
    moved: list[Moved] = []
    for key, record in after.items():
        old = before.get(key)
        if old is None:
            continue
        mine = _moved_in(_label(record), _figures(old), _figures(record), threshold)
        was, now = _verdict(old), _verdict(record)
        item_change = f"{was} → {now}" if was != now else ""
        if item_change and not any(m.verdicts for m in mine):  # e.g. pass → skip: no figure says it
            mine.append(Moved(_label(record), "(the item)", was, now, "", "", item_change,
                              _worse_verdict(item_change), math.inf))
        moved.extend(mine)
    moved.sort(key=lambda x: (not x.verdicts, not x.worse, -x.size, x.item, x.figure))
    added = sorted(_label(r) for k, r in after.items() if k not in before)
    removed = sorted(_label(r) for k, r in before.items() if k not in after)
    return moved, added, removed


def _moved_in(label: str, was: dict[str, Measurement], now: dict[str, Measurement], threshold: float) -> list[Moved]:
    """The figures of one item that moved by more than `threshold` relative, or whose verdict changed."""
    moved = []
    for name, m in now.items():
        p = was.get(name)
        if p is None or (m.value == p.value and m.verdict == p.verdict) or (math.isnan(m.value) and math.isnan(p.value)):
            continue
        relative = (m.value - p.value) / abs(p.value) if p.value else (math.inf if m.value != p.value else 0.0)
        verdicts = f"{p.verdict} → {m.verdict}" if p.verdict != m.verdict else ""
        if abs(relative) <= threshold and not verdicts:
            continue
        direction = "up" if m.value > p.value else "down" if m.value < p.value else "unchanged"
        wrong = (m.bound == "max" and direction == "up") or (m.bound == "min" and direction == "down")
        noise = _within_noise(p, m)
        # in human units, as the summary table writes figures (a difference of two percentages is points)
        change = (f"{direction} {quantity(abs(m.value - p.value), difference_unit(m))}"
                  + (f" ({signed(relative * 100, '%', 2)})" if math.isfinite(relative) and relative else "")
                  + ((", worse" if wrong else ", better") if m.judged and direction != "unchanged" else "")
                  + (", within noise" if noise else ""))
        budget = budget_text(m)
        if p.judged and m.judged and (p.budget, p.bound) != (m.budget, m.bound):  # a changed budget, not a regression
            budget = f"{budget_text(p)} → {budget}"
        moved.append(Moved(label, name, quantity(p.value, p.unit), quantity(m.value, m.unit),
                           change, budget, verdicts,
                           _worse_verdict(verdicts) or (m.judged and wrong and not noise), abs(relative)))
    return moved


def _worse_verdict(change: str) -> bool:
    rank = {"pass": 0, "skip": 1, "inconclusive": 1, "FAIL (inconclusive)": 2, "FAIL": 2, "fail": 2}
    if " → " not in change:
        return False
    old, new = change.split(" → ")
    return rank.get(new, 1) > rank.get(old, 1)


def compare_markdown(moved: list[Moved], added: list[str], removed: list[str], threshold: float = 0.0) -> str:
    """The comparison `moved_figures` found, as Markdown."""
    crossed = sum(1 for m in moved if m.verdicts)

    def count(n: int, what: str) -> str:
        return f"{n} {what}" + ("" if n == 1 else "s")

    lines = [f"## edgecheck: {count(len(moved), 'figure')} moved, {count(crossed, 'verdict')} changed"
             + (f", {count(len(added), 'new item')}" if added else "")
             + (f", {count(len(removed), 'item')} gone" if removed else ""), ""]
    if moved:
        lines += markdown_table(("item", "figure", "base", "head", "change", "budget", "verdict"),
                                [(m.item, m.figure, m.base, m.head, m.change, m.budget, m.verdicts) for m in moved])
        lines += [""]
    else:
        lines += ["No figure moved" + (f" by more than {threshold:.1%}" if threshold else "") + ".", ""]
    for title, items in (("New in head", added), ("Gone from head", removed)):
        if items:
            lines += [f"**{title}** ({len(items)})", ""] + [f"- {item}" for item in items] + [""]
    return "\n".join(lines).rstrip() + "\n"


def compare_command(base: Path, head: Path, output: Path | None, threshold: float) -> int:
    """Print or write the comparison; 2 where a file cannot be read, 1 where a verdict got worse."""
    import sys

    from edgecheck.report.markdown import write_text

    records = []
    for path in (base, head):
        try:
            records.append(read_results_records(path))
        except ValueError as exc:
            print(f"edgecheck compare: {path} {exc}", file=sys.stderr)
            return 2
    moved, added, removed = moved_figures(records[0], records[1], threshold)
    text = compare_markdown(moved, added, removed, threshold)
    if output is None:
        sys.stdout.write(text)
    else:
        print(write_text(output, text, "comparison"))
    return 1 if any(m.verdicts and _worse_verdict(m.verdicts) for m in moved) else 0
