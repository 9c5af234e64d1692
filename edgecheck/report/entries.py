"""A run's records regrouped as a team chooses between artifacts: per spec and target, each entry (a recipe on
a backend) with its checks side by side — its size, its accuracy (or parity), its latency and where that
figure came from, whether it meets every budget — and the per-layer error a backend gave for a failing one.
Plain data read from the records; the HTML report draws it (edgecheck/report/plots.py).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from edgecheck.checks.result import CheckResult, Measurement, fmt
from edgecheck.report.figures import higher_is_better
from edgecheck.report.terminal import row_from_record
from edgecheck.results import record_result

# the order an entry's standing is told in: what needs attention first
STANDINGS = ("fails", "unproven", "partly checked", "meets", "not judged")
# parity figures to plot against size where no accuracy was measured, the most telling first
_PARITY_ORDER = ("cosine", "rel_l2", "snr_db", "top1_agreement", "atol", "max_abs", "mean_abs")
_LAYER_ROW = re.compile(r"^\s*\[(?P<op>[^\]]*)\] (?P<name>.*): cosine (?P<single>\S+) for the layer alone, "
                        r"(?P<entire>\S+) accumulated")


@dataclass
class Entry:
    """One artifact on one target: a recipe as one backend runs it, and its records by check."""

    backend: str
    recipe: str
    records: dict[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.recipe if self.backend in ("", "onnxruntime") else f"{self.recipe} ({self.backend})"

    def result(self, check: str) -> CheckResult | None:
        record = self.records.get(check)
        try:
            return record_result(record) if record is not None and record.get("outcome") != "skipped" else None
        except ValueError:
            return None

    def fact(self, name: str) -> str:
        for record in self.records.values():
            result = record.get("result")
            if isinstance(result, dict) and name in result.get("facts", {}):
                return str(result["facts"][name])
        return ""

    @property
    def size_bytes(self) -> float | None:
        try:
            return float(self.fact("artifact.size_bytes"))
        except ValueError:
            return None

    @property
    def skipped(self) -> int:
        """How many of its planned checks did not run."""
        return sum(row_from_record(r).verdict == "skip" for r in self.records.values())

    @property
    def standing(self) -> str:
        """fails: a check failed; unproven: none failed, one is inconclusive; partly checked: every check that ran
        passed, some were skipped; meets: every planned check ran and passed; not judged: every check skipped."""
        verdicts = {row_from_record(r).verdict for r in self.records.values()}
        if any(v.startswith("FAIL") for v in verdicts):
            return "fails"
        if "inconclusive" in verdicts:
            return "unproven"
        if "pass" not in verdicts:
            return "not judged"
        return "partly checked" if "skip" in verdicts else "meets"


@dataclass
class Section:
    """The records of one spec on one target."""

    spec: str
    spec_name: str
    target: str
    records: list[Mapping[str, Any]]

    @property
    def anchor(self) -> str:
        return "s-" + re.sub(r"[^A-Za-z0-9_-]+", "-", f"{self.spec}-{self.target}").strip("-")

    def entries(self) -> list[Entry]:
        found: dict[tuple[str, str], Entry] = {}
        for record in self.records:
            key = (str(record.get("backend", "")), str(record.get("recipe", "")))
            entry = found.setdefault(key, Entry(*key))
            entry.records[str(record.get("check", ""))] = record
        return list(found.values())


def sections(records: Iterable[Mapping[str, Any]]) -> list[Section]:
    """Per spec and target, in the order of the records (a spec file that did not load has no target: left out)."""
    found: dict[tuple[str, str], Section] = {}
    for record in records:
        if not record.get("target"):
            continue
        key = (str(record.get("spec", "")), str(record.get("target", "")))
        section = found.setdefault(key, Section(key[0], str(record.get("spec_name", "")), key[1], []))
        section.records.append(record)
    return sorted(found.values(), key=lambda s: (s.spec, s.target))


@dataclass(frozen=True)
class Threshold:
    """A budget drawn as a line: on the size axis (x) or the quality axis (y), for these recipes ('' for all)."""

    axis: str
    value: float
    label: str
    recipes: tuple[str, ...]


@dataclass
class Tradeoff:
    """Quality against size for every entry with both: what the plot of the choice draws."""

    quality: str  # the figure on the y axis: 'accuracy' or a parity figure's name
    unit: str
    higher_is_better: bool
    points: list[tuple[Entry, float, float]]  # entry, size in bytes, quality
    thresholds: list[Threshold]
    missing: list[str]  # why entries are not on the plot


def _quality_name(entries: list[Entry]) -> str | None:
    """'accuracy' where any entry has one, else the parity figure most entries are budgeted on."""
    if any(_measurement(e.result("accuracy"), "accuracy") is not None for e in entries):
        return "accuracy"
    budgeted: Counter[str] = Counter()
    for entry in entries:
        result = entry.result("parity")
        for m in result.measurements if result is not None else []:
            if m.judged and m.name.startswith("parity.") and math.isfinite(m.value):
                budgeted[m.name] += 1
    if not budgeted:
        return None
    metric = lambda name: name.rsplit(".", 1)[-1]  # noqa: E731
    return min(budgeted, key=lambda n: (-budgeted[n], _PARITY_ORDER.index(metric(n)) if metric(n) in _PARITY_ORDER
                                        else len(_PARITY_ORDER), n))


def _measurement(result: CheckResult | None, name: str) -> Measurement | None:
    if result is None:
        return None
    return next((m for m in result.measurements if m.name == name), None)


def tradeoff(entries: list[Entry]) -> Tradeoff | None:
    """The points and budget lines of quality against size; None where no entry has a quality figure."""
    quality = _quality_name(entries)
    if quality is None:
        return None
    check = "accuracy" if quality == "accuracy" else "parity"
    points, missing, lines = [], [], []
    unit, higher = "", True
    for entry in entries:
        result = entry.result(check)
        m = _measurement(result, quality)
        size = entry.size_bytes
        if m is None or result is None:
            if entry.records.get(check) is not None:
                missing.append(f"{entry.label}: no {quality} figure ({row_from_record(entry.records[check]).verdict})")
            continue
        if size is None or not math.isfinite(m.value):
            missing.append(f"{entry.label}: " + ("its artifact's size is not recorded" if size is None
                                                  else f"{quality} = {m.value}"))
            continue
        unit = m.unit
        if check == "accuracy":  # the metric's own direction: an mse is better lower, bound or not
            higher = higher_is_better(result)
        else:
            higher = m.bound != "max" if m.bound else quality.rsplit(".", 1)[-1] not in ("rel_l2", "atol", "max_abs",
                                                                                         "mean_abs", "max_rel")
        points.append((entry, size, m.value))
        lines += [(line, entry.recipe) for line in _quality_lines(result, quality)]
        lines += [(line, entry.recipe) for line in _size_lines(entry)]
    return Tradeoff(quality, unit, higher, points, _merge(lines, {e.recipe for e, _, _ in points}), missing)


def _quality_lines(result: CheckResult, quality: str) -> list[tuple[str, float, str]]:
    """The budgets of the quality figure, as values of it: an accuracy drop becomes the accuracy it allows, below
    the original where higher is better, above it where lower is (a drop of an mse is a rise), a relative drop a
    share of the original's size (as judge_accuracy measures it)."""
    lines = []
    original = _measurement(result, "accuracy.original")
    worse = -1.0 if higher_is_better(result) else 1.0  # the direction a drop moves the metric
    for m in result.measurements:
        if not m.judged or m.budget is None:
            continue
        sign = "≤" if m.bound == "max" else "≥"
        if m.name == quality:
            lines.append(("y", m.budget, f"{m.name.rsplit('.', 1)[-1]} {sign} {fmt(m.budget)} {m.unit}".rstrip()))
        elif quality == "accuracy" and original is not None and m.name == "accuracy_drop":
            lines.append(("y", original.value + worse * m.budget, f"drop ≤ {m.budget_text or f'{m.budget:g} pts'}"))
        elif quality == "accuracy" and original is not None and m.name == "accuracy_drop_relative":
            allowed = original.value + worse * abs(original.value) * m.budget / 100
            lines.append(("y", allowed, f"drop ≤ {m.budget_text or f'{m.budget:g}%'}"))
    return lines


def _size_lines(entry: Entry) -> list[tuple[str, float, str]]:
    """The size budgets of the entry, in bytes: size_mb, and size_ratio as the size it allows."""
    result = entry.result("size")
    lines = []
    for m in result.measurements if result is not None else []:
        if not m.judged or m.budget is None:
            continue
        if m.name == "size_mb":
            lines.append(("x", m.budget * 2**20, f"size ≤ {m.budget_text or f'{m.budget:g} MiB'}"))
        elif m.name == "size_ratio" and m.budget > 0:
            size = _measurement(result, "size_bytes")  # ratio = original / size: the size it allows is original / budget
            if size is not None and math.isfinite(m.value) and m.value > 0:
                lines.append(("x", size.value * m.value / m.budget, f"size ratio ≥ {m.budget:g}x"))
    return lines


def _merge(lines: list[tuple[tuple[str, float, str], str]], recipes: set[str]) -> list[Threshold]:
    """One line per budget value, naming the recipes it holds for where it is not all of them."""
    holders: dict[tuple[str, float, str], list[str]] = {}
    for line, recipe in lines:
        holders.setdefault(line, [])
        if recipe not in holders[line]:
            holders[line].append(recipe)
    return [Threshold(axis, value, label, () if set(names) >= recipes else tuple(names))
            for (axis, value, label), names in holders.items()]


@dataclass(frozen=True)
class LatencyFigure:
    """One latency figure of one entry, with where it came from."""

    entry: Entry
    figure: Measurement
    source: str  # 'measured here', 'board NAME', 'estimate'
    source_text: str  # the record's own words (its measured_on fact)


def latency_figures(entries: list[Entry]) -> list[LatencyFigure]:
    """Every latency percentile of every entry that produced one (changes against a baseline left out)."""
    figures = []
    for entry in entries:
        result = entry.result("latency")
        if result is None:
            continue
        said = result.facts.get("measured_on", "")
        board = result.facts.get("board", "")
        source = "estimate" if said.startswith("estimate") else f"board {board}" if board else "measured here"
        for m in result.measurements:
            if m.unit == "ms" and not m.name.startswith("regression.") and math.isfinite(m.value):
                figures.append(LatencyFigure(entry, m, source, said))
    return figures


@dataclass(frozen=True)
class LayerError:
    op_type: str
    name: str
    single_cos: float | None
    entire_cos: float | None


@dataclass
class LayerReport:
    """The per-layer error a backend gave for a failing entry's check: its heading, the layers it names."""

    entry: Entry
    check: str
    heading: str
    layers: list[LayerError]


def layer_reports(entries: list[Entry]) -> list[LayerReport]:
    """The per-layer error of each failing parity or accuracy check whose backend gave one (rknn's
    accuracy_analysis, in its notes), or said why it could not."""
    reports = []
    for entry in entries:
        for check in ("parity", "accuracy"):
            result = entry.result(check)
            if result is None or result.verdict != "fail":
                continue
            for index, note in enumerate(result.notes):
                if "per-layer error" not in note:
                    continue
                rows = []
                for line in result.notes[index + 1:]:
                    match = _LAYER_ROW.match(line)
                    if match is None:
                        break
                    rows.append(LayerError(match["op"], match["name"], _float(match["single"]),
                                           _float(match["entire"])))
                reports.append(LayerReport(entry, check, note, rows))
    return reports


def _float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
