"""Results as data: a check's result round-trips through a plain dict, and --edge-results writes every
item's record (identity, outcome, reason, result) as one JSON document that validates against its schema."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgecheck.checks.result import CheckResult, Measurement
from edgecheck.results import RESULTS_SCHEMA, make_record, record_result, results_document, write_results

_floats = st.floats(allow_nan=True, allow_infinity=True)
_text = st.text(max_size=20)
measurements = st.builds(
    Measurement, name=_text, value=_floats, unit=_text,
    budget=st.none() | _floats, bound=st.sampled_from([None, "max", "min"]), budget_text=_text,
    interval=st.none() | st.tuples(_floats, _floats), interval_kind=st.sampled_from(["95% CI", "lower bound", "±20%"]),
    cannot_judge=_text)
results = st.builds(
    CheckResult, check=_text, measurements=st.lists(measurements, max_size=5), problems=st.lists(_text, max_size=3),
    notes=st.lists(_text, max_size=3), facts=st.dictionaries(_text, _text, max_size=4),
    warnings=st.lists(_text, max_size=2), doubts=st.lists(_text, max_size=2))


def _same_float(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


@given(measurements)
def test_a_measurement_round_trips_through_json(m: Measurement) -> None:
    data = json.loads(json.dumps(m.to_dict(), allow_nan=False))  # plain JSON: no NaN or Infinity tokens
    back = Measurement.from_dict(data)
    assert back.to_dict() == m.to_dict()
    assert _same_float(back.value, m.value) and back.verdict == m.verdict
    assert (back.name, back.unit, back.bound, back.budget_text, back.interval_kind, back.cannot_judge) == \
        (m.name, m.unit, m.bound, m.budget_text, m.interval_kind, m.cannot_judge)
    assert (back.interval is None) == (m.interval is None)


@given(results)
def test_a_result_round_trips_through_json_and_validates(result: CheckResult) -> None:
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    back = CheckResult.from_dict(data)
    assert back.to_dict() == data
    assert (back.verdict, back.breaches(), back.reasons()) == (result.verdict, result.breaches(), result.reasons())
    record = make_record(spec="s.yaml", spec_name="s", target="host", backend="b", recipe="none", check=result.check,
                         target_is_host=True, outcome="passed", reason="", result=result)
    jsonschema.validate(results_document([record]), RESULTS_SCHEMA)


def test_finite_results_come_back_equal() -> None:
    result = CheckResult("latency", [Measurement("latency.p50", 0.04, "ms", 0.05, "max", "", (0.03, 0.045))],
                         ["p"], ["n"], {"latency.stats": "{}"}, ["w"], ["d"])
    assert CheckResult.from_dict(result.to_dict()) == result
    assert result.to_dict()["measurements"][0]["verdict"] == "pass"
    assert result.to_dict()["measurements"][0]["margin"] == pytest.approx(0.01)


@pytest.mark.parametrize("bad", [{"value": True}, {"value": "1.5"}, {"value": None}, {"bound": "above"},
                                 {"interval": [1.0]}, {"budget": "many"}])
def test_a_malformed_measurement_is_refused(bad: dict) -> None:
    data = {**Measurement("x", 1.0).to_dict(), **bad}
    with pytest.raises(ValueError):
        Measurement.from_dict(data)


def test_the_schema_refuses_what_the_format_does_not_allow() -> None:
    document = results_document([make_record(
        spec="s.yaml", spec_name="s", target="rpi4", backend="b", recipe="none", check="size", target_is_host=False,
        outcome="skipped", reason="no rpi4 here", result=None)])
    jsonschema.validate(document, RESULTS_SCHEMA)
    for broken in ({**document, "edgecheck_results": 2},
                   {**document, "records": [{**document["records"][0], "outcome": "xfailed"}]},
                   {**document, "records": [{**document["records"][0], "result": {"check": "size"}}]}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, RESULTS_SCHEMA)


def test_writing_is_atomic_and_keeps_the_old_file_on_failure(tmp_path: Path) -> None:
    path = tmp_path / "out" / "results.json"
    write_results(path, {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1}
    with pytest.raises(ValueError):
        write_results(path, {"a": math.nan})  # not JSON: refused before anything moves
    assert json.loads(path.read_text()) == {"a": 1}
    assert os.listdir(path.parent) == ["results.json"]


SPEC = """
edgecheck: 1
model: {path: ../models/clf.onnx}
data:
  evaluation: {path: ../models/wrong.npz}
targets:
  host:
    backends: [onnxruntime, onnxruntime-cuda]
    budgets:
      accuracy_drop: 2
      size_mb: 0.0001
"""


def _project(spec_project, pytester: pytest.Pytester) -> None:
    """Accuracy against labels that are all wrong (inconclusive), a size budget no model meets (fails),
    and onnxruntime-cuda, whose provider this onnxruntime build lacks (skips)."""
    spec_project(SPEC)
    data = np.load(pytester.path / "models" / "eval.npz")
    labels = data["labels"]
    np.savez(pytester.path / "models" / "wrong.npz", x=data["x"], labels=(labels + 1) % (labels.max() + 1))


def _check_document(path: Path) -> dict[str, dict]:
    document = json.loads(path.read_text())
    jsonschema.validate(document, RESULTS_SCHEMA)
    assert document["edgecheck_results"] == 1 and document["environment"]["python"]
    return {f"{r['target']}-{r['backend']}-{r['recipe']}-{r['check']}": r for r in document["records"]}


def _check_records(records: dict[str, dict]) -> None:
    assert sorted(records) == ["host-onnxruntime-cuda-none-accuracy", "host-onnxruntime-cuda-none-size",
                               "host-onnxruntime-none-accuracy", "host-onnxruntime-none-size"]
    inconclusive = records["host-onnxruntime-none-accuracy"]
    assert inconclusive["outcome"] == "passed" and inconclusive["reason"] == ""
    assert inconclusive["result"]["verdict"] == "inconclusive" and inconclusive["target_is_host"] is True
    assert any("no better than chance" in doubt for doubt in inconclusive["result"]["doubts"])
    failed = records["host-onnxruntime-none-size"]
    assert failed["outcome"] == "failed" and failed["result"]["verdict"] == "fail"
    assert "size budget breached" in failed["reason"] and "BREACH" in failed["reason"]
    size = next(m for m in failed["result"]["measurements"] if m["name"] == "size_mb")
    assert size["budget"] == 0.0001 and size["bound"] == "max" and size["verdict"] == "fail" and size["margin"] < 0
    assert record_result(failed).breaches()[0].startswith("size_mb = ")
    skipped = records["host-onnxruntime-cuda-none-size"]
    assert skipped["outcome"] == "skipped" and skipped["result"] is None
    assert skipped["reason"].startswith("onnxruntime-cuda cannot run here: this onnxruntime ")


def test_edge_results_writes_every_record(pytester, spec_project):
    _project(spec_project, pytester)
    result = pytester.runpytest("specs", "--edge-results=out/results.json", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1, skipped=2)
    result.stdout.fnmatch_lines(["*edgecheck: 4 results written to out/results.json*"])
    _check_document(pytester.path / "out" / "results.json")
    _check_records(_check_document(pytester.path / "out" / "results.json"))


def test_xdist_workers_send_whole_records_to_the_controller(pytester, spec_project):
    pytest.importorskip("xdist")
    _project(spec_project, pytester)
    pytester.makeini("[pytest]\nedge_results = results.json\n")  # the ini option, relative to the ini file
    result = pytester.runpytest_subprocess("specs", "-p", "xdist", "-n", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1, skipped=2)
    _check_records(_check_document(pytester.path / "results.json"))
    assert not list(pytester.path.glob(".results.json.*"))  # the controller wrote it once, atomically


def test_reports_and_baselines_import_no_session():
    """The view layer (report/) and stored baselines read records; neither imports the pytest session,
    and a baseline imports no report: no cycle baseline <-> report <-> session."""
    grimp = pytest.importorskip("grimp")
    graph = grimp.build_graph("edgecheck")
    for importer, imported in (("edgecheck.baseline", "edgecheck.report"), ("edgecheck.baseline", "edgecheck.session"),
                               ("edgecheck.report", "edgecheck.session"), ("edgecheck.results", "edgecheck.report"),
                               ("edgecheck.results", "edgecheck.baseline")):
        chain = graph.find_shortest_chain(importer=importer, imported=imported, as_packages=True)
        assert chain is None, f"{importer} imports {imported}: {' -> '.join(chain)}"


def test_suggest_reads_the_sample_count_from_its_own_fact():
    """A result that records how many samples it used as `inputs.samples` needs no reading of the inputs text."""
    from result_records import variant
    from test_suggest import INT8_ACCURACY, entry

    from edgecheck.report.suggest import suggest_budgets

    counted = variant(INT8_ACCURACY, inputs="custom loader", inputs__samples="540")
    assert entry(suggest_budgets([counted]), "int8-static") == {"accuracy_drop": 1.54}  # as from '(540 of 540 samples)'
    assert entry(suggest_budgets([variant(counted, inputs__samples="0")]), "int8-static") == {"accuracy_drop": 0.51}


def test_the_command_prints_the_results_schema():
    import json
    import subprocess
    import sys

    from edgecheck.results import RESULTS_SCHEMA

    out = subprocess.run([sys.executable, "-m", "edgecheck", "schema", "--results"], capture_output=True, text=True,
                         check=True).stdout
    assert json.loads(out) == json.loads(json.dumps(RESULTS_SCHEMA))


def test_a_spec_that_does_not_load_is_a_failed_record(pytester, spec_project):
    """A later tool reading only the document must see that the run failed, not just the passes."""
    _project(spec_project, pytester)
    (pytester.path / "specs" / "broken.yaml").write_text("edgecheck: 1\nmodel: {path: ../models/missing.onnx}\n")
    result = pytester.runpytest("specs", "--edge-results=results.json", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=2, skipped=2)
    _check_document(pytester.path / "results.json")
    records = json.loads((pytester.path / "results.json").read_text())["records"]
    broken = [r for r in records if r["spec"] == "specs/broken.yaml"]
    assert len(broken) == 1 and broken[0]["check"] == "spec" and broken[0]["outcome"] == "failed"
    assert broken[0]["result"] is None and "missing.onnx" in broken[0]["reason"]
    assert "target \n" not in result.stdout.str()  # the summary table has no row for it (its failure says it)


@pytest.mark.parametrize("where, message", [("here", "is a folder"), ("afile/results.json", "is a file, so")])
def test_a_results_path_that_cannot_be_written_is_a_usage_error_at_start(pytester, spec_project, where, message):
    _project(spec_project, pytester)
    (pytester.path / "here").mkdir()
    (pytester.path / "afile").write_text("not a folder")
    result = pytester.runpytest("specs", f"--edge-results={where}", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--edge-results: *{message}*"])
