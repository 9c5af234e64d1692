"""How one check's figures read to a person: the headline figure (an accuracy beside the original's), its budget,
the margin left, the change against a baseline, and the whole reason of a verdict that is not a pass, in human
units (edgecheck.units). The terminal table and the Markdown summary both read records through these, so a figure
reads the same in each.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from edgecheck.checks.result import CheckResult, Measurement
from edgecheck.processes import WORKER_OUTPUT
from edgecheck.results import item_id, record_result
from edgecheck.units import join_unit, quantity, scaled, signed

_BOUND = {"max": "≤", "min": "≥"}
# what a budget's own words add after its figure: the spec field it came from, "(rel_l2)", "(topk_agreement, k=5)"
_FIELD = re.compile(r"\s*\(([a-z][a-z0-9_]*(?:, k=\d+)?)\)$")
# a log line's time stamp ("2025-01-31 12:00:00.123456 [E:onnxruntime:...]"): when, not what went wrong
_TIMESTAMP = re.compile(r"^\[?\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?\]?\s*")
_WITHIN = {"95% CI": "the measurement's noise",
           "lower bound": "the range the estimate leaves open (it is a lower bound)",
           "tail lower bound": "the range a typical-latency estimate leaves open for a tail percentile (it can only "
                               "bound it from below)"}


def label(m: Measurement, check: str) -> str:
    """A figure's name without what the row already says: "p95" for latency.p95, "p95 estimate", "size",
    "logits rel_l2", "p50 vs baseline"."""
    name = m.name
    regression = name.startswith("regression.")
    if regression and name == f"regression.{check}" == "regression.accuracy":  # stored as the fall since then
        return "drop vs baseline"
    name = name.removeprefix("regression.").removeprefix(check + ".")
    estimate = name.startswith("estimate.")
    name = name.removeprefix("estimate.")
    rest = name.removeprefix(check + "_")  # size_ratio: "ratio"; accuracy_drop: "drop"
    name = check if len(rest) <= 2 else rest  # a unit after the check's name: size_mb, energy_mj
    name = {"drop_relative": "relative drop"}.get(name, name).replace(".", " ")
    return name + (" estimate" if estimate else "") + (" vs baseline" if regression else "")


def _digits(m: Measurement) -> int:
    """Significant digits enough to tell the figure from its budget (20.5 KiB against 20.5 KiB reads as a pass
    that failed by 34.5 B: 20.53 KiB against 20.5 KiB does not), and for a figure without a unit (a cosine, a
    ratio) to write the budget as the spec gives it (a cosine of 0.99999 is not "≥ 1"; a size budget given in MB
    and shown in bytes keeps its 3 digits): 3, up to 6."""
    if not m.judged or m.budget is None or m.value == m.budget or not math.isfinite(m.value):
        return 3
    (_, budget_in_full), _ = scaled((m.value, m.budget), m.unit, 6)
    for digits in range(3, 7):
        (value, budget), _ = scaled((m.value, m.budget), m.unit, digits)
        if value != budget and (budget == budget_in_full or m.unit not in ("", "x")):
            return digits
    return 6


def value_text(m: Measurement) -> str:
    """The figure in human units, with its interval where it has one: "39.7 µs (95% CI 11.6–66.4 µs)",
    "≥ 2.24 µs" (a lower bound), "+12 %" (a change against a baseline)."""
    digits = _digits(m)
    if m.name.startswith("regression.") and m.unit == "%":
        return signed(m.value, m.unit, digits)
    if m.interval is None:
        return quantity(m.value, m.unit, digits)
    low, high = m.interval
    (value, low_text, high_text), unit = scaled((m.value, low, high), m.unit, digits)
    shown = join_unit(value, unit, m.value)
    if math.isinf(high) and high > 0:
        if m.interval_kind == "lower bound" and low == m.value:
            return "≥ " + shown
        if "lower bound" in m.interval_kind:
            return f"{shown} ({m.interval_kind} {join_unit(low_text, unit)})"
        return f"{shown} ({m.interval_kind} {join_unit(f'{low_text}–∞', unit)})"
    return f"{shown} ({m.interval_kind} {join_unit(f'{low_text}–{high_text}', unit)})"


def figure_text(m: Measurement, check: str) -> str:
    return f"{label(m, check)} {value_text(m)}"


def budget_text(m: Measurement, check: str = "") -> str:
    """The bound in the figure's human unit: "≤ 2 ms", "≥ 0.98", "≤ 16 (atol)" (the spec field where the figure's
    name is another)."""
    if not m.judged:
        return ""
    assert m.budget is not None and m.bound is not None
    if m.name.startswith("regression.") and m.budget_text:  # its words name the baseline and its figure
        return f"{_BOUND[m.bound]} {m.budget_text}"
    text = f"{_BOUND[m.bound]} {quantity(m.budget, m.unit, _digits(m))}"
    field = _FIELD.search(m.budget_text)
    if field and not m.name.endswith("." + field.group(1).split(",")[0]):
        text += f" ({field.group(1)})"
    return text


def difference_unit(m: Measurement) -> str:
    """The unit of a difference of two such figures: two percentages of samples differ by points."""
    # two percentages of samples differ by points; a share of something else (a relative drop, a change) stays %
    return "pts" if m.unit == "%" and m.name in ("accuracy", "accuracy.original") else m.unit


def margin_text(m: Measurement) -> str:
    """How far from the budget, with its unit: "0.8 ms under", "over by 1.2 KiB", "2 pt above", "short by 1.2 pt";
    empty where the verdict is not a pass or a fail (the reason says why) or the figure is not a number."""
    margin = m.margin
    if margin is None or m.verdict == "inconclusive" or not math.isfinite(margin):
        return ""
    if margin == 0:
        return "at budget"
    size = quantity(abs(margin), difference_unit(m))
    if m.verdict == "pass":
        return f"{size} {'under' if m.bound == 'max' else 'above'}"
    return f"{'over' if m.bound == 'max' else 'short'} by {size}"


def headline(result: CheckResult) -> Measurement | None:
    """The figure a row shows: the check's own (a change against a baseline has its column), the worst failure,
    else the worst inconclusive one, else the first judged; a baseline change only where nothing else is judged."""
    judged = [m for m in result.measurements if m.judged]
    own = [m for m in judged if not m.name.startswith("regression.")] or judged
    for verdict in ("fail", "inconclusive"):
        hit = [m for m in own if m.verdict == verdict]
        if hit:  # the furthest past its budget, relative to it
            return min(hit, key=lambda m: -math.inf if math.isnan(m.value) else m.margin / (abs(m.budget) or 1.0))  # type: ignore[operator]
    return own[0] if own else None


def measured_text(result: CheckResult) -> str:
    """The headline figure; for an accuracy check the original's figure beside the artifact's and the drop, in the
    kind the budget judges: "top1 97.2 % → 96.8 % (−0.4 pt)"."""
    if result.check == "accuracy":
        text = _accuracy_text(result)
        if text:
            return text
    m = headline(result)
    return (figure_text(m, result.check) + _stand_in(result)) if m is not None else ""


def _stand_in(result: CheckResult) -> str:
    """Where a figure is this host's standing in for the device (source: host), the row says so: it is not a
    figure of that device, whatever column it sits in."""
    found = re.match(r"host, as a stand-in for (\S+)", str(result.facts.get("measured_on", "")))
    return f" (this host, standing in for {found.group(1)})" if found else ""


def _accuracy_text(result: CheckResult) -> str:
    figures = {m.name: m for m in result.measurements}
    now, was = figures.get("accuracy"), figures.get("accuracy.original")
    if now is None or was is None:
        return ""
    relative = figures.get("accuracy_drop_relative")
    if relative is not None and relative.judged:  # the budget is a share of the original's figure
        change = signed(-relative.value if higher_is_better(result) else relative.value, "%")
    else:
        change = signed(now.value - was.value, "pts" if now.unit == "%" else now.unit)
    metric = result.facts.get("metric", "accuracy")
    return f"{metric} {quantity(was.value, was.unit)} → {quantity(now.value, now.unit)} ({change})"


def higher_is_better(result: CheckResult) -> bool:
    """Whether the check's metric is better higher: judge_accuracy notes a lower-is-better one (mse), whose drop
    is a rise."""
    return not any(note.startswith("lower is better") for note in result.notes)


def budget_column(result: CheckResult) -> str:
    """The headline's budget; an accuracy drop's says it is a drop (the figure beside it is the metric itself)."""
    m = headline(result)
    if m is None:
        return ""
    text = budget_text(m, result.check)
    return f"drop {text}" if result.check == "accuracy" and m.name.startswith("accuracy_drop") else text


def margin_column(result: CheckResult) -> str:
    """The headline's margin; none where doubts make the figures mean nothing (the reasons say why)."""
    m = headline(result)
    return margin_text(m) if m is not None and not result.doubts else ""


def baseline_column(result: CheckResult) -> str:
    """The changes against a stored baseline (--edge-baseline): "p50 −9.1 %", "peak +2 %", "top1 −0.2 pt", each
    marked where the run cannot tell it from noise or from another machine's figures."""
    parts = []
    for m in result.measurements:
        if not m.name.startswith("regression."):
            continue
        if m.name == "regression.accuracy":  # stored as the fall: shown as the metric's change
            change = -m.value if higher_is_better(result) else m.value
            text = f"{result.facts.get('metric', 'accuracy')} {signed(change, m.unit, 2)}"
        else:
            text = f"{label(m, result.check).removesuffix(' vs baseline')} {signed(m.value, m.unit, 2)}"
        if m.cannot_judge:
            text += " (not comparable)"
        elif m.interval is not None and m.interval[0] <= 0 <= m.interval[1] and m.value != 0:
            text += " (within noise)"
        parts.append(text)
    if not parts and any(note.startswith("baseline ") and " has no " in note for note in result.notes):
        return "not in baseline"
    return ", ".join(parts)


def result_reasons(result: CheckResult) -> list[str]:
    """Why a check did not pass, whole, most useful first: its problems, the breaches the headline row does not
    show, why a figure cannot be judged, the doubts."""
    head = headline(result)
    lines = list(result.problems)
    for m in result.measurements:
        shown = m is head  # the row shows its figure, budget and margin
        prefix = "" if shown else f"{figure_text(m, result.check)}, budget {budget_text(m, result.check)}"
        if m.verdict == "fail":
            if math.isnan(m.value):
                lines.append(f"{label(m, result.check)} is not a number (NaN): nothing can be judged")
            elif not shown:
                lines.append(f"{prefix}: {margin_text(m)}")
        elif m.verdict == "inconclusive":
            within = _WITHIN.get(m.interval_kind, "the estimate's " + m.interval_kind)
            why = f"cannot judge: {m.cannot_judge}" if m.cannot_judge else f"the budget lies within {within}"
            lines.append(f"{prefix}: {why}" if prefix else why)
    lines.extend(doubt for doubt in result.doubts if doubt not in lines)
    return lines


def verdict_summary(result: CheckResult) -> str:
    """One line for a verdict that is not a pass (a warning's message): the headline figure and budget where
    the verdict is theirs, then every reason."""
    head = headline(result)
    reasons = "; ".join(result_reasons(result))
    if head is None or head.verdict == "pass":
        return reasons
    return f"{measured_text(result)}, budget {budget_column(result)}" + (f": {reasons}" if reasons else "")


def message_lines(record: Mapping[str, Any]) -> list[str]:
    """A skip's or failure's own message, whole, without what the row says already or says nothing: the test id
    before it, the lines a worker printed (the failure above quotes them), log time stamps."""
    text = str(record.get("reason", "")).split(WORKER_OUTPUT, 1)[0].strip()
    if record.get("target"):
        text = text.removeprefix(f"{item_id(record)}: ")
    lines = [_TIMESTAMP.sub("", line).strip() for line in text.splitlines()]
    return [line for line in lines if line]


def record_reasons(record: Mapping[str, Any]) -> list[str]:
    """Why an item did not pass, whole: its check's reasons where it judged, else its own message."""
    try:
        result = record_result(record)
    except ValueError as exc:  # a record this version cannot read: the row says so, the summary goes on
        return [f"its result cannot be read: {exc}"]
    if result is not None and result.verdict != "pass":
        return result_reasons(result)  # the breach's own message repeats the row: figure, budget, margin
    return message_lines(record) if record.get("outcome") != "passed" else []
