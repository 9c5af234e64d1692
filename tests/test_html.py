"""The HTML report (issue 18, item 3): `--edge-html` in a run and `edgecheck report -o x.html` on a results file
(real pytest sessions on real specs and models), and the page for records of every kind — failures,
inconclusive verdicts, skips, estimates, no accuracy at all, a single recipe, per-layer error, hostile strings."""

from __future__ import annotations

import json
import sys
import warnings
from html.parser import HTMLParser

import pytest

from edgecheck.checks.accuracy import judge_accuracy
from edgecheck.checks.result import Measurement
from edgecheck.cli import main
from edgecheck.report.entries import sections, tradeoff
from edgecheck.results import make_record, results_document
from edgecheck.spec import Budgets
from edgecheck.vendors.rknn.build_log import LayerError, describe_error
from result_records import record

pytest.importorskip("matplotlib")
# imported here, outside the inner pytester sessions: those unload the modules they import, and a matplotlib
# imported again beside its own leftovers fails its isinstance checks
import matplotlib.backends.backend_svg  # noqa: E402,F401
import matplotlib.figure  # noqa: E402,F401
import matplotlib.ticker  # noqa: E402,F401

import edgecheck.report.plots  # noqa: E402
from edgecheck.report.html import html_report  # noqa: E402

SPEC = """
edgecheck: 1
model: {path: ../models/clf.onnx}
data:
  evaluation: {path: ../models/eval.npz}
compress: [fp16]
targets:
  host:
    backends: [onnxruntime]
    budgets:
      accuracy_drop: 1.0
      parity: {atol: 1.0e-5, cosine: 0.9999}
      size_mb: 0.0003
"""


class Tags(HTMLParser):
    """Every start tag and its attributes: what a browser would build from the page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags_of(page: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Tags()
    parser.feed(page)
    return parser.tags


def assert_self_contained(page: str) -> None:
    """No script, no external resource of any kind, nothing that fetches: the page opens offline as it is."""
    tags = tags_of(page)
    names = {tag for tag, _ in tags}
    # <use> is allowed: matplotlib's SVG draws markers with it, and its hrefs are checked below to be "#" ones
    assert not names & {"script", "img", "iframe", "object", "embed", "link", "image", "audio", "video"}
    for tag, attrs in tags:
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        for name in ("src", "href", "xlink:href"):
            value = attrs.get(name)
            assert value is None or value.startswith("#"), (tag, name, value)  # in-page anchors and SVG defs only
    assert "url(http" not in page and "@import" not in page
    assert 'http-equiv="Content-Security-Policy" content="default-src \'none\'' in page


def test_a_run_with_edge_html_writes_the_page_and_report_makes_it_from_the_results(pytester, spec_project):
    spec_project(SPEC)
    result = pytester.runpytest("specs", "--edge-html=out/report.html", "--edge-results=results.json")
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines(["*HTML report written to out/report.html (* KiB)*"])
    page = (pytester.path / "out" / "report.html").read_text()
    assert_self_contained(page)
    assert page.count('<svg class="plot"') == 1  # accuracy against size; no latency was asked for
    attention = page.index("Needs attention (2)")
    assert page.index(">FAIL<", attention) < page.index("Passed (3)")
    assert "over by" in page  # the whole reason of the failing size check
    assert "No latency figure: the spec asks for no latency budget on this target." in page

    before = sorted(p.name for p in pytester.path.rglob("*"))
    assert main(["report", str(pytester.path / "results.json"), "-o", str(pytester.path / "again.htm")]) == 0
    assert sorted(p.name for p in pytester.path.rglob("*")) == sorted([*before, "again.htm"])  # nothing else
    again = (pytester.path / "again.htm").read_text()
    assert again.count('<svg class="plot"') == 1 and "Needs attention (2)" in again
    assert main(["report", str(pytester.path / "results.json"), "--format", "markdown",
                 "-o", str(pytester.path / "plain.html")]) == 0  # --format wins over the suffix
    assert (pytester.path / "plain.html").read_text().startswith("## edgecheck: 2 failed")


def test_under_xdist_the_controller_writes_the_page_with_every_workers_records(pytester, spec_project):
    pytest.importorskip("xdist")
    spec_project(SPEC)
    result = pytester.runpytest("specs", "-n", "2", "--edge-html=report.html")
    result.assert_outcomes(passed=3, failed=2)
    page = (pytester.path / "report.html").read_text()
    assert "2 failed, 3 passed" in page
    assert len(list(pytester.path.glob("*.html"))) == 1 and not list(pytester.path.glob(".*.tmp"))


def test_report_says_how_to_install_matplotlib_and_a_run_refuses_before_checking(pytester, spec_project, monkeypatch,
                                                                                 capsys, tmp_path):
    document = results_document([record("size", "none", [Measurement("size_mb", 0.01, "MiB", 1.0, "max")])])
    (tmp_path / "results.json").write_text(json.dumps(document))
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed: importing it raises ImportError
    assert main(["report", str(tmp_path / "results.json"), "-o", str(tmp_path / "x.html")]) == 2
    assert "pip install 'pytest-edgecheck[html]'" in capsys.readouterr().err
    assert not (tmp_path / "x.html").exists()
    spec_project(SPEC)
    result = pytester.runpytest_inprocess("specs", "--edge-html=report.html")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--edge-html: *matplotlib*pip install 'pytest-edgecheck[[]html[]]'*"])


def test_a_page_that_cannot_be_written_says_so_and_leaves_nothing(tmp_path, capsys):
    document = results_document([record("size", "none", [Measurement("size_mb", 0.01, "MiB", 1.0, "max")])])
    (tmp_path / "results.json").write_text(json.dumps(document))
    (tmp_path / "file").write_text("")
    assert main(["report", str(tmp_path / "results.json"), "-o", str(tmp_path / "file" / "x.html")]) == 1
    assert "HTML report NOT written" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "results.json"]


LONG_REASON = "the compiler " + "says something long " * 30 + "END-OF-REASON"


def every_kind() -> list[dict]:
    """rk3588: failures, an inconclusive estimate, skips, a per-layer error; pi: parity only, no accuracy;
    jetson: one recipe, only a size check; host: a failing check with no per-layer error."""
    acc = lambda recipe, value, backend="onnxruntime": record(  # noqa: E731
        "accuracy", recipe, [Measurement("accuracy_drop", 98.5 - value, "pts", 1.0, "max", "1 pts"),
                             Measurement("accuracy", value, "%", 95, "min"), Measurement("accuracy.original", 98.5, "%")],
        {"artifact.size_bytes": str({"none": 40122, "int8": 14000, "rknn-int8": 46000}[recipe])},
        target="rk3588", backend=backend, outcome="passed" if value > 97.5 else "failed")
    layers = [LayerError("Conv", "conv1", 0.9999, 0.1, 0.9999, 0.1), LayerError("Gemm", "fc", 0.95, 2.0, 0.96, 1.5)]
    parity_fail = record("parity", "rknn-int8", [Measurement("parity.logits.rel_l2", 0.02, "", 0.001, "max", "0.001 (rel_l2)")],
                         {"artifact.size_bytes": "46000"}, target="rk3588", backend="rknn", outcome="failed")
    parity_fail["result"]["notes"] = [
        "rknn per-layer error (rknn-toolkit2's accuracy_analysis of the build): the first layers where it jumps:",
        *(f"  {describe_error(row)}" for row in layers), "another note"]
    estimate = record("latency", "int8", [Measurement("latency.estimate.p95", 0.054, "ms", 2.0, "max", interval=(0.018, float("inf")),
                                                      interval_kind="tail lower bound", cannot_judge=LONG_REASON)],
                      {"measured_on": "estimate, not a measurement: a cost model"}, target="rk3588")
    skipped = make_record(spec="specs/digits.yaml", spec_name="digits-cnn", target="rk3588", backend="onnxruntime",
                          recipe="none", check="memory", target_is_host=False, outcome="skipped",
                          reason="no memory estimate for a .onnx artifact (a detail)", result=None)
    pi = [record("parity", recipe, [Measurement("parity.logits.cosine", value, "", 0.998, "min", "0.998 (cosine)")],
                 {"artifact.size_bytes": size}, target="raspberry-pi-4b")
          for recipe, value, size in (("none", 1.0, "40000"), ("fp16", 0.9999, "21000"))]
    measured = record("latency", "none", [Measurement("latency.p50", 0.011, "ms", interval=(0.0105, 0.012)),
                                          Measurement("latency.p95", 0.08, "ms", 5.0, "max", interval=(0.012, 0.09))],
                      {"measured_on": "host"}, target="raspberry-pi-4b")
    jetson = [record("size", "none", [Measurement("size_mb", 0.04, "MiB", 0.05, "max")], {"artifact.size_bytes": "40000"},
                     target="jetson-orin-nano")]
    host_fail = record("parity", "int8", [Measurement("parity.logits.atol", 3.0, "", 1.0, "max")],
                       {"artifact.size_bytes": "14000"}, outcome="failed")
    return [acc("none", 98.5), acc("int8", 97.0), acc("rknn-int8", 98.1, "rknn"), parity_fail, estimate, skipped,
            *pi, measured, *jetson, host_fail]


def section_of(page: str, title: str) -> str:
    start = page.index(f"<h2>{title}</h2>")
    end = page.find("<h2>", start + 1)
    return page[start: end if end > 0 else len(page)]


def test_the_page_shows_records_of_every_kind_failures_first_with_the_whole_reason():
    page = html_report(results_document(every_kind()))
    assert_self_contained(page)
    assert '<p class="ship"><strong>Don&#x27;t ship:</strong> 3 checks failed.</p>' in page  # the answer first
    rk = section_of(page, "digits-cnn on rk3588")
    assert rk.index(">FAIL<") < rk.index(">inconclusive<")
    assert LONG_REASON in rk  # the reason in full, never cut
    assert "1 × no memory estimate for a .onnx artifact (a detail)" in rk  # a skip's reason whole, as the table has it
    assert "Accuracy against size" in rk and "drop ≤ 1 pts" in rk and "accuracy ≥ 95 %" in rk
    assert "p95 estimate 54 µs (tail lower bound 18 µs)" in rk  # human units; an open range says it is a lower bound
    # the per-layer error of the failing INT8 entry, parsed from the backend's own lines, drawn and named
    assert "Per-layer error of failing entries" in rk and "[Gemm] fc" in rk and rk.count('<svg class="plot"') == 3
    assert "accuracy_analysis" in rk
    pi = section_of(page, "digits-cnn on raspberry-pi-4b")
    assert "Parity against size" in pi and "parity.logits.cosine" in pi  # no accuracy: parity against size
    assert pi.count('<svg class="plot"') == 2 and "measured here" in pi and "p95" in pi
    jetson = section_of(page, "digits-cnn on jetson-orin-nano")  # a single recipe, a size check only
    assert "No point to plot: the spec asks for neither an accuracy nor a parity budget on this target." in jetson
    assert "No latency figure: the spec asks for no latency budget on this target." in jetson
    assert '<svg class="plot"' not in jetson
    host = section_of(page, "digits-cnn on host")
    assert "No per-layer error for int8: their backends do not report one" in host
    assert "How to read this report" in page and "inconclusive" in page.split("How to read this report")[1][:600]
    assert "edgecheck: <code>" in page and "written: <code>" in page  # the run's metadata


def test_skips_only_say_why_the_plots_are_empty():
    skip = lambda check: make_record(spec="s.yaml", spec_name="s", target="host", backend="onnxruntime",  # noqa: E731
                                     recipe="none", check=check, target_is_host=True, outcome="skipped",
                                     reason=f"no {check} here (because)", result=None)
    page = html_report(results_document([skip("accuracy"), skip("latency")]))
    assert "No point to plot: 1 × no accuracy here" in page and "No latency figure: 1 × no latency here" in page
    assert "Skipped</strong> (2)" in page and '<svg class="plot"' not in page
    assert "no edgecheck check ran" in html_report(results_document([]))


HOSTILE = ['<script>alert(1)</script>', '"><img src=x onerror=alert(2)>', "$\\frac{1}{0}$ & ]]> {{x}}",
           "</style><style>body{display:none}</style>", "javascript:alert(3)"]


def hostile_records() -> list[dict]:
    records = []
    for n, text in enumerate(HOSTILE):
        item = record("accuracy", f"r{n}{text}", [Measurement("accuracy", 90.0 + n, "%", 95, "min"),
                                                  Measurement(f"m{text}", 1.0, text)],
                      {"artifact.size_bytes": str(1000 * (n + 1)), "artifact": text, "measured_on": text,
                       text: text}, spec=f"specs/{text}.yaml", spec_name=text, target=f"t{text}",
                      backend=f"b{text}", outcome="failed")
        item["reason"] = text
        item["result"]["notes"] = [f"per-layer error {text}", f"  [{text}] {text}: cosine 0.5 for the layer alone, "
                                   "0.4 accumulated (euclidean 1 / 2)"]
        item["result"]["problems"] = [text]
        records.append(item)
    return records


def test_hostile_names_and_messages_are_text_never_markup():
    page = html_report({**results_document(hostile_records()), "edgecheck": HOSTILE[0],
                        "environment": {HOSTILE[1]: HOSTILE[3]}})
    assert_self_contained(page)
    assert "<script" not in page and "<img" not in page and "</style><style>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # shown, as text
    assert page.count('<svg class="plot"') >= len(HOSTILE)  # '$' in names is text, not TeX: every plot was drawn


def judged(recipe: str, original: float, candidate: float, higher_is_better: bool, drop: float | str,
           size: int, **extra: str) -> dict:
    """The record of an accuracy check as the check judges it (judge_accuracy), with its artifact's size."""
    result = judge_accuracy(original, candidate, "", higher_is_better, Budgets(accuracy_drop=drop))
    result.facts.update({"metric": "mse" if not higher_is_better else "top1", "artifact.size_bytes": str(size), **extra})
    return make_record(spec="specs/reg.yaml", spec_name="reg", target="host", backend="onnxruntime", recipe=recipe,
                       check="accuracy", target_is_host=True, outcome="passed", reason="", result=result)


def test_a_lower_is_better_metric_draws_its_drop_budget_above_the_original_and_says_lower_is_better():
    points = [judged("none", 2.0, 2.0, False, 0.5, 40000), judged("int8", 2.0, 2.3, False, 0.5, 14000)]
    data = tradeoff(sections(points)[0].entries())
    assert data is not None and not data.higher_is_better
    assert [(t.axis, t.value) for t in data.thresholds] == [("y", 2.5)]  # mse may rise by 0.5 from 2.0
    relative = [judged("none", 2.0, 2.0, False, "10%", 40000), judged("int8", 2.0, 2.1, False, "10%", 14000)]
    assert [t.value for t in tradeoff(sections(relative)[0].entries()).thresholds] == [pytest.approx(2.2)]
    page = html_report(results_document(points))
    assert "accuracy (lower is better)" in page and "higher is better" not in page


def test_a_relative_drop_of_a_negative_score_is_a_share_of_its_size():
    points = [judged("none", -4.0, -4.0, True, "10%", 40000), judged("int8", -4.0, -4.2, True, "10%", 14000)]
    data = tradeoff(sections(points)[0].entries())
    assert data is not None and data.higher_is_better  # the drop is original - candidate, relative to |original|
    assert [t.value for t in data.thresholds] == [pytest.approx(-4.4)]


def test_an_entry_with_a_skipped_check_is_partly_checked_never_meets_every_budget():
    skipped = make_record(spec="specs/reg.yaml", spec_name="reg", target="host", backend="onnxruntime", recipe="int8",
                          check="latency", target_is_host=True, outcome="skipped", reason="no latency here",
                          result=None)
    points = [judged("none", 98.0, 98.0, True, 1.0, 40000), judged("int8", 98.0, 97.5, True, 1.0, 14000), skipped]
    standing = {e.recipe: e.standing for e in sections(points)[0].entries()}
    assert standing == {"none": "meets", "int8": "partly checked"}
    page = html_report(results_document(points))
    assert "1 partly checked (passes what ran, 1 check skipped), 1 meet every budget" in page
    assert "passes what ran, some checks skipped" in page  # the plot's legend: a marker of its own


def test_all_zero_latencies_draw_even_where_warnings_are_errors():
    zero = record("latency", "none", [Measurement("latency.p50", 0.0, "ms", interval=(0.0, 0.0)),
                                      Measurement("latency.p95", 0.0, "ms", interval=(0.0, 0.0))], {"measured_on": "host"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a project's filterwarnings = error
        page = html_report(results_document([zero]))
    assert page.count('<svg class="plot"') == 1


def test_a_page_that_fails_to_draw_loses_no_other_file_and_says_why(pytester, spec_project, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("the plot broke")

    monkeypatch.setattr(edgecheck.report.plots, "tradeoff_svg", broken)
    spec_project(SPEC)
    result = pytester.runpytest_inprocess("specs", "-W", "error", "--edge-html=report.html",
                                          "--edge-results=results.json", "--edge-save-baseline=main",
                                          "--edge-benchmark-json=latency.json", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, failed=2)
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(["*HTML report NOT written to report.html: RuntimeError: the plot broke*"])
    assert (pytester.path / "results.json").exists() and (pytester.path / "latency.json").exists()
    assert list((pytester.path / ".edgecheck" / "baselines").glob("main*"))
    assert not (pytester.path / "report.html").exists()
