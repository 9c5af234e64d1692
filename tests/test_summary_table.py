"""The terminal table at the end of a run (issue 18, item 6), as users get it: real sessions on real specs and
models. Whole reasons wrapped to the terminal's width, figures in human units, the memory skips of ONNX
artifacts on a device said for what they are, and no edgecheck source line under pytest's warnings."""

from __future__ import annotations

import math

import pytest

from edgecheck.checks.result import Measurement
from edgecheck.report.figures import budget_text, margin_text, message_lines, value_text
from edgecheck.units import quantity, signed, significant

SPEC = """
edgecheck: 1
model: {path: ../models/clf.onnx}
data:
  evaluation: {path: ../models/eval.npz, metric: 'longwinded:score', higher_is_better: true}
targets:
  host:
    backends: [onnxruntime]
    budgets:
      accuracy_drop: 1.0
      size_mb: 1
"""
# a metric whose error is far longer than a terminal line, ending in words the table must still show
LONG_WORDS = " ".join(f"clause{i} of the reason" for i in range(40))
METRIC = f'''
def score(outputs, labels):
    raise ValueError("the labels and the scores disagree: {LONG_WORDS} END-OF-REASON")
'''


def _summary(text: str) -> list[str]:
    """The lines of the edgecheck summary section."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if "edgecheck summary" in line)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("=")), len(lines))
    return lines[start + 1:end]


def test_a_long_failure_reason_appears_whole_wrapped_under_its_row(pytester, spec_project, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")  # the terminal's width, which the reasons wrap to
    pytester.makepyfile(longwinded=METRIC)
    pytester.syspathinsert()
    spec_project(SPEC)
    result = pytester.runpytest("specs")
    result.assert_outcomes(passed=1, failed=1)
    summary = _summary(result.stdout.str())
    row = next(i for i, line in enumerate(summary) if line.startswith("  FAIL"))
    assert summary[row].split()[:4] == ["FAIL", "accuracy", "onnxruntime", "none"]
    reason = []
    for line in summary[row + 1:]:
        if not line.startswith("      "):
            break
        assert len(line) <= 100, line
        reason.append(line.strip())
    assert len(reason) > 3  # wrapped, not cut
    expected = (f"custom metric 'longwinded:score' raised ValueError: the labels and the scores disagree: "
                f"{LONG_WORDS} END-OF-REASON")
    assert " ".join(reason) == expected  # whole, the most useful part first
    text = "\n".join(summary)
    assert "…" not in text
    assert "host-onnxruntime-none-accuracy" not in text  # the row says which test; the reason says why
    # the passing row: human units and its margin, with their units
    result.stdout.fnmatch_lines(["  pass*size*onnxruntime*none*size 211 B*≤ 1 MiB*1 MiB under"])


MEMORY_SPEC = """
edgecheck: 1
model: {path: ../models/clf.onnx}
compress: [fp16, int8-dynamic]
targets:
  rk3588:
    backends: [onnxruntime]
    budgets:
      size_mb: 1
      memory_mb: {peak: 32, source: estimate}
"""


def test_memory_estimates_an_onnx_artifact_cannot_have_read_as_one_row_naming_its_recipes(pytester, spec_project):
    """rk3588's memory budget with source: estimate comes from a vendor compiler's build (.rknn): the ONNX artifacts
    on onnxruntime have none, so their memory checks skip. One row says so, for how many recipes, and which."""
    spec_project(MEMORY_SPEC)
    result = pytester.runpytest("specs")
    result.assert_outcomes(passed=3, skipped=3)
    summary = _summary(result.stdout.str())
    skips = [line for line in summary if line.startswith("  skip")]
    assert len(skips) == 1, summary
    assert skips[0].split() == ["skip", "memory", "onnxruntime", "3", "recipes"]
    text = " ".join(line.strip() for line in summary)
    assert "no memory estimate for a .onnx artifact: estimates come from a vendor compiler's build" in text
    assert "recipes: fp16, int8-dynamic, none" in text
    assert " all " not in text


STAND_IN_SPEC = """
edgecheck: 1
model: {path: ../models/clf.onnx}
targets:
  raspberry-pi-4b:
    backends: [onnxruntime]
    budgets:
      latency_ms: {p95: 1000, source: host, warmup_s: 0}
"""


def test_a_host_figure_standing_in_for_a_device_says_so_on_its_row(pytester, spec_project, monkeypatch):
    """source: host lets this machine's figure stand in for a Pi's: the table and the Markdown say whose it is, on
    the row itself, so a pass is never read as a Pi's."""
    spec_project(STAND_IN_SPEC)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    result = pytester.runpytest("specs", "--edge-markdown=summary.md")
    result.assert_outcomes(passed=1)
    rows = [line for line in _summary(result.stdout.str()) if line.startswith("  pass")]
    assert len(rows) == 1 and "(this host, standing in for raspberry-pi-4b)" in rows[0], rows
    assert "(this host, standing in for raspberry-pi-4b)" in (pytester.path / "summary.md").read_text()


def test_warnings_point_at_the_spec_not_at_edgecheck(pytester, spec_project):
    """An inconclusive verdict (a cost model's estimate a budget cannot be judged on) warns at the spec's budget line,
    and pytest's warnings summary shows that line of the spec."""
    spec_project(MEMORY_SPEC.replace("memory_mb: {peak: 32, source: estimate}",
                                     "latency_ms: {p95: 2.0, source: estimate}"))
    result = pytester.runpytest("specs")
    text = result.stdout.str()
    assert "InconclusiveWarning" in text, text
    spec = pytester.path / "specs" / "model.yaml"
    result.stdout.fnmatch_lines([f"  {spec}:9: InconclusiveWarning: p95 estimate *",
                                 "    latency_ms: {p95: 2.0, source: estimate}"])
    warnings = text.split("warnings summary", 1)[1].split("-- Docs", 1)[0]
    assert "edgecheck/" not in warnings and "warnings.warn" not in warnings


@pytest.mark.parametrize(("value", "unit", "text"), [
    (0.000226, "ms", "226 ns"), (0.0397, "ms", "39.7 µs"), (2.0, "ms", "2 ms"), (1500.0, "ms", "1.5 s"),
    (0.0169678, "MiB", "17.4 KiB"), (32.0, "MiB", "32 MiB"), (1023.9 / 1024, "MiB", "1 MiB"), (211.0, "B", "211 B"),
    (97.2345, "%", "97.2 %"), (1.2963, "pts", "1.3 pt"), (2.66, "x", "2.66×"), (1.0, "nodes", "1 node"),
    (0.0150112, "", "0.015"), (6.676e-06, "", "6.68e-6"), (12345678.0, "cycles", "12345678 cycles"),
])
def test_figures_read_in_the_unit_that_suits_them(value, unit, text):
    assert quantity(value, unit) == text


def test_changes_carry_their_sign_and_numbers_stay_plain():
    assert signed(-9.1, "%") == "−9.1 %" and signed(0.4, "pts") == "+0.4 pt" and signed(0.0, "%") == "±0 %"
    assert significant(-3.21) == "-3.21" and significant(math.nan) == "nan" and significant(0.0) == "0"
    # a new user's overflowing output printed a 37-digit integer: from a billion on, a number is written 4.47e36
    assert significant(4.468124198666547e36) == "4.47e36" and significant(999999999.0) == "999999999"
    assert signed(4.468124198666547e36, "") == "+4.47e36"


def test_an_interval_reads_in_one_unit():
    ci = Measurement("latency.p95", 0.0397, "ms", 5.0, "max", interval=(0.0116, 0.0664))
    assert value_text(ci) == "39.7 µs (95% CI 11.6–66.4 µs)"
    bound = Measurement("latency.estimate.p95", 0.00224, "ms", 2.0, "max", interval=(0.00224, math.inf),
                        interval_kind="lower bound")
    assert value_text(bound) == "≥ 2.24 µs"


def test_a_message_loses_its_test_id_log_time_stamps_and_the_worker_output():
    record = {"target": "host", "backend": "onnxruntime", "recipe": "none", "check": "parity", "outcome": "failed",
              "reason": "host-onnxruntime-none-parity: onnxruntime failed while running clf.onnx:\n"
                        "2025-01-31 12:00:00.123456 [E:onnxruntime:, sequential_executor.cc:516] Non-zero status\n"
                        "--- last lines the worker printed ---\nnoise"}
    assert message_lines(record) == ["onnxruntime failed while running clf.onnx:",
                                     "[E:onnxruntime:, sequential_executor.cc:516] Non-zero status"]


@pytest.mark.parametrize(("value", "budget", "shown"), [
    (0.99990919, 0.99999, ("0.99991", "≥ 0.99999")),  # was "0.9999" against "≥ 1": a budget nothing can meet
    (0.98, 0.95, ("0.98", "≥ 0.95")),
    (0.9812, 0.9753, ("0.9812", "≥ 0.9753")),
])
def test_a_unitless_budget_is_written_as_the_spec_gives_it(value, budget, shown):
    m = Measurement("cosine", value, "", budget, "min")
    assert (value_text(m), budget_text(m)) == shown
    assert margin_text(m).startswith("short by" if value < budget else "")


def test_a_budget_converted_to_another_unit_keeps_three_digits():
    m = Measurement("size", 211, "B", 0.0001 * 2**20, "max")  # size_mb: 0.0001 in the spec
    assert (value_text(m), budget_text(m)) == ("211 B", "≤ 105 B")
