"""The run's Markdown summary (issue 18, item 2) as users get it: `--edge-markdown`, a GitHub job summary, and
`edgecheck report` on a results file — real pytest sessions on real specs and models."""

from __future__ import annotations

import json

import pytest

from edgecheck.cli import main
from edgecheck.report.markdown import cell, markdown_summary, ship_line

SPEC = """
edgecheck: 1
model: {path: ../models/clf.onnx}
data:
  evaluation: {path: ../models/eval.npz}
targets:
  host:
    backends: [onnxruntime]
    budgets:
      accuracy_drop: 1.0
      parity: {atol: 1.0e-5, cosine: 0.9999}
      size_mb: 0.0001
  rk3588:
    backends: [rknn]
    budgets:
      ops: {unsupported: 0}
"""


@pytest.mark.parametrize("verdicts, broken, line", [
    (["pass", "FAIL", "inconclusive"], 0, "**Don't ship:** 1 check failed."),
    (["pass"], 1, "**Don't ship:** 1 check failed or did not load."),
    (["pass", "inconclusive", "skip"], 0, "**Not proven:** nothing failed, but 1 verdict is inconclusive"),
    (["pass", "skip", "skip"], 0, "**Passed what ran:** 2 checks skipped and were not checked."),
    (["pass", "pass"], 0, "**Ship:** every check passed."),
    ([], 0, "**Nothing was checked.**"),
])
def test_the_summary_says_ship_or_not_first(verdicts, broken, line):
    assert ship_line(verdicts, broken).startswith(line)


def test_the_markdown_puts_what_needs_attention_first_with_its_whole_reason(pytester, spec_project, monkeypatch):
    spec_project(SPEC)
    step = pytester.path / "step-summary.md"
    step.write_text("## an earlier step's part\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step))
    result = pytester.runpytest("specs", "--edge-markdown=summary.md", "--edge-results=results.json",
                                "--edge-target=all")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*Markdown summary written to summary.md*",
                                 f"*Markdown summary appended to {step}*"])
    text = (pytester.path / "summary.md").read_text()
    assert text.startswith("## edgecheck: 1 failed, 2 passed\n\n**Don't ship:** 1 check failed.\n")
    host = text.index("### target host")
    attention, passed = text.index("**Needs attention**", host), text.index("<b>Passed</b> (1)", host)
    assert attention < passed
    failing = next(line for line in text.splitlines() if line.startswith("| FAIL |"))
    # the figures in human units, as the terminal table shows them (the same helpers), the margin with its unit
    assert "| size | onnxruntime | none | size 211 B | ≤ 105 B | over by 106 B |" in failing
    assert failing.split("|")[-2].strip() == ""  # no reason beyond the breach its columns show
    assert "### target rk3588" in text and "| unsupported 0 nodes | ≤ 0 nodes | at budget |" in text
    # GitHub's job summary keeps the earlier steps' parts and gets the same Markdown
    assert step.read_text() == "## an earlier step's part\n\n" + text
    step.write_text("| 1 | 2 |")  # an earlier part that ends without a newline: never glued to its last row
    pytester.runpytest("specs", "--edge-target=host")
    assert step.read_text().startswith("| 1 | 2 |\n\n## edgecheck: ")

    # the same Markdown from the results file, printed or written
    assert main(["report", str(pytester.path / "results.json"), "-o", str(pytester.path / "again.md")]) == 0
    assert (pytester.path / "again.md").read_text() == text


def test_a_run_without_edgecheck_items_adds_nothing_to_the_job_summary(pytester, monkeypatch):
    pytester.makepyfile("def test_plain():\n    assert True\n")
    step = pytester.path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step))
    pytester.runpytest().assert_outcomes(passed=1)
    assert not step.exists()


def test_report_refuses_what_is_not_a_results_file_saying_what_is_wrong(tmp_path, capsys):
    cases = {"missing.json": None, "text.json": "not json", "other.json": json.dumps({"foo": 1}),
             "list.json": json.dumps([1, 2]), "future.json": json.dumps({"edgecheck_results": 99, "records": []}),
             "bare.json": json.dumps({"edgecheck_results": 1, "records": [{"spec": "x"}]})}
    expected = {"missing.json": "cannot be read", "text.json": "is not JSON", "other.json": "no 'edgecheck_results'",
                "list.json": "no 'edgecheck_results'", "future.json": "results format 99; this edgecheck reads format 1",
                "bare.json": "holds no list of records"}
    for name, content in cases.items():
        if content is not None:
            (tmp_path / name).write_text(content)
        assert main(["report", str(tmp_path / name)]) == 2
        assert expected[name] in capsys.readouterr().err, name


def test_a_markdown_cell_cannot_break_its_table():
    assert cell("a | b\nc <d>") == "a \\| b c &lt;d&gt;"
    assert markdown_summary([]) == "## edgecheck: no edgecheck check ran\n"


def test_a_spec_file_that_did_not_load_is_listed_as_failed(pytester, spec_project):
    spec_project(SPEC)
    spec_project("edgecheck: 1\nmodel: {path: ../models/clf.onnx}\ntargets: {host: {budgets: {size_mb: ten}}}\n",
                 name="broken")
    result = pytester.runpytest("specs/broken.yaml", "--edge-markdown=summary.md")
    result.assert_outcomes(failed=1)
    text = (pytester.path / "summary.md").read_text()
    assert text.startswith("## edgecheck: 1 failed\n")
    assert "**Spec files that did not load**" in text and "size_mb" in text


def test_compare_lists_what_moved_between_two_runs_verdict_changes_first(pytester, spec_project):
    """Issue 18, item 4: the base branch's run against this one. The model grows (size up, across its budget)
    while its parity and accuracy figures stay: the size row comes first, worse and a verdict change."""
    from conftest import make_classifier

    spec_project(SPEC.replace("size_mb: 0.0001", "size_mb: 0.0005"))
    pytester.runpytest("specs", "--edge-results=base.json", "--edge-target=host").assert_outcomes(passed=2)
    make_classifier(pytester.path / "models" / "clf.onnx", features=4, classes=3)  # the same model again
    bigger = pytester.path / "models" / "clf.onnx"
    import onnx
    from onnx import helper

    model = onnx.load(str(bigger))  # the same arithmetic, plus an unused 64 KiB initializer: the file grows
    model.graph.initializer.append(helper.make_tensor("unused", onnx.TensorProto.FLOAT, [16384], [0.0] * 16384))
    onnx.save(model, str(bigger))
    pytester.runpytest("specs", "--edge-results=head.json", "--edge-target=host").assert_outcomes(passed=1, failed=1)

    assert main(["compare", str(pytester.path / "base.json"), str(pytester.path / "head.json"),
                 "-o", str(pytester.path / "compare.md")]) == 1  # a verdict got worse
    text = (pytester.path / "compare.md").read_text()
    assert text.startswith("## edgecheck: ")
    rows = [line for line in text.splitlines() if line.startswith("| specs/model.yaml")]
    assert rows and "size_mb" in rows[0] and "pass → fail" in rows[0] and "up " in rows[0] and ", worse" in rows[0]
    assert not any("parity" in row for row in rows)  # the outputs did not move
    assert main(["compare", str(pytester.path / "head.json"), str(pytester.path / "head.json")]) == 0
    assert main(["compare", str(pytester.path / "missing.json"), str(pytester.path / "head.json")]) == 2


def test_compare_shows_a_tightened_budget_beside_the_verdict_it_changed(pytester, spec_project):
    """A verdict that changed because the budget did (a new user's case) reads so: both budgets on the row."""
    spec_project(SPEC.replace("size_mb: 0.0001", "size_mb: 0.0005"))
    pytester.runpytest("specs", "--edge-results=base.json", "--edge-target=host").assert_outcomes(passed=2)
    spec_project(SPEC.replace("size_mb: 0.0001", "size_mb: 0.00005"))
    pytester.runpytest("specs", "--edge-results=head.json", "--edge-target=host").assert_outcomes(passed=1, failed=1)
    assert main(["compare", str(pytester.path / "base.json"), str(pytester.path / "head.json"),
                 "-o", str(pytester.path / "compare.md")]) == 1
    size = next(line for line in (pytester.path / "compare.md").read_text().splitlines() if "size_mb" in line)
    assert "≤ 524 B → ≤ 52.4 B" in size and "pass → fail" in size, size


def test_compare_reads_a_record_it_cannot_parse_by_its_outcome_only():
    from edgecheck.report.compare import compare_markdown, moved_figures

    base = [{"spec": "s.yaml", "target": "host", "backend": "onnxruntime", "recipe": "none", "check": "size",
             "outcome": "passed", "reason": "", "result": {"check": "size", "measurements": "garbled"}}]
    head = [dict(base[0], outcome="failed", reason="boom")]
    text = compare_markdown(*moved_figures(base, head))
    assert "(the item)" in text and "pass → FAIL" in text

