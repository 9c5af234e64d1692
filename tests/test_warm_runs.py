"""A warm re-run of an unchanged spec recomputes nothing: no static analysis, no table read, no worker
process, no onnx import; a changed table or model is analysed again; Hypothesis stays out of runs that
never used it. Observed in real pytest sessions (subprocesses, so that imports are the session's own)
through a probe conftest that counts the calls and processes, never by timing."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from conftest import make_classifier

ROOT = Path(__file__).resolve().parents[1]

# A device target judged without running (ops against the table, latency by the cost model), plus the
# accuracy of an int8 artifact (outputs, from the cache when warm).
SPEC = """
edgecheck: 1
model: {path: ../models/clf.onnx}
data:
  evaluation: {path: ../models/eval.npz}
compress: [int8-dynamic]
targets:
  rk3588:
    backends: [onnxruntime]
    budgets:
      accuracy_drop: 50
      size_mb: 1
      latency_ms: {p95: 5.0, source: estimate}
      ops: {unsupported: 0}
"""

# Counts what a session computes: graph analyses, table loads, processes started; and what it imported.
PROBE = '''
import json, os, subprocess, sys

import edgecheck.analysis.static as static_module

counts = {"analyse": 0, "load_tables": 0, "processes": []}
_analyse, _load_tables, _popen = static_module.analyse, static_module.load_tables, subprocess.Popen


def analyse(*args, **kwargs):
    counts["analyse"] += 1
    return _analyse(*args, **kwargs)


def load_tables(*args, **kwargs):
    counts["load_tables"] += 1
    return _load_tables(*args, **kwargs)


class CountingPopen(_popen):
    def __init__(self, args, *rest, **kwargs):
        counts["processes"].append(" ".join(map(str, args))[:200] if not isinstance(args, str) else args[:200])
        super().__init__(args, *rest, **kwargs)


static_module.analyse, static_module.load_tables, subprocess.Popen = analyse, load_tables, CountingPopen


def pytest_configure(config):
    counts["hypothesis_plugin_at_start"] = config.pluginmanager.get_plugin("hypothesispytest") is not None


def pytest_sessionstart(session):
    counts["processes"].clear()  # from here on: edgecheck's (pytest-benchmark runs `file` at configure)


def pytest_unconfigure(config):
    print(f"PROBE-END hypothesis-plugin={config.pluginmanager.get_plugin('hypothesispytest') is not None} "
          f"hypothesis-imported={'hypothesis' in sys.modules}", flush=True)
    if hasattr(config, "workerinput"):
        return  # an xdist worker: the controller's line is the session's
    from edgecheck.session import STATE

    state = config.stash.get(STATE, None)
    records = state.executor.cache.records if state is not None and "executor" in state.__dict__ else None
    counts["modules"] = sorted(m for m in ("onnx", "onnxruntime", "hypothesis") if m in sys.modules)
    counts["hits"] = dict(records.hits) if records else {}
    counts["misses"] = dict(records.misses) if records else {}
    with open(os.environ["EDGE_PROBE"], "a") as out:
        out.write(json.dumps(counts) + "\\n")
'''


@pytest.fixture
def project(pytester: pytest.Pytester, spec_project, monkeypatch):
    """The spec above with the probe conftest; `project.run(*args)` runs a session in a subprocess and
    returns its result and the probe's counts."""
    spec_project(SPEC)
    pytester.makeconftest(PROBE)
    probe = pytester.path / "probe.jsonl"
    monkeypatch.setenv("EDGE_PROBE", str(probe))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))

    class Project:
        @staticmethod
        def run(*args: str, outcomes: dict[str, int] | None = None) -> tuple[pytest.RunResult, dict]:
            before = probe.read_text().count("\n") if probe.exists() else 0
            result = pytester.runpytest_subprocess("specs", "-p", "no:cacheprovider", "-p", "no:randomly", *args)
            lines = probe.read_text().splitlines()
            assert len(lines) == before + 1, result.stdout.str()
            if outcomes is not None:
                result.assert_outcomes(**outcomes)
            return result, json.loads(lines[-1])

    return Project()


def records_of(result: pytest.RunResult) -> list[dict]:
    return json.loads(Path(result.stdout.str().split("results written to ")[-1].split()[0]).read_text())["records"]


def test_a_warm_rerun_analyses_nothing_starts_no_process_and_imports_no_onnx(project, pytester):
    cold, first = project.run("--edge-results=cold.json", outcomes={"passed": 8})
    assert first["analyse"] > 0 and first["load_tables"] == 1 and first["processes"]  # it did compute, cold
    assert first["misses"].get("static") == 4  # ops and latency, of the original and its int8 artifact

    warm, again = project.run("--edge-results=warm.json", outcomes={"passed": 8})
    assert again["analyse"] == 0 and again["load_tables"] == 0
    assert again["processes"] == []  # no shape-inference worker, no model run
    assert again["hits"]["static"] == 4 and again["misses"].get("static", 0) == 0
    assert again["misses"].get("model", 0) == 0 and again["hits"]["model"] >= 2
    assert "onnx" not in again["modules"]
    cold_records = json.loads((pytester.path / "cold.json").read_text())["records"]
    warm_records = json.loads((pytester.path / "warm.json").read_text())["records"]
    for record in cold_records + warm_records:  # where artifacts and outputs came from: all that differs
        record["result"]["facts"].pop("cache", None)
        record["result"]["facts"].pop("outputs", None)
    assert warm_records == cold_records


def test_a_changed_operator_table_is_read_and_the_ops_check_judged_again(project, pytester):
    tables = pytester.path / "tables"
    tables.mkdir()
    builtin = ROOT / "edgecheck" / "vendors" / "onnxruntime" / "tables" / "onnxruntime-cpu.yaml"
    shutil.copy(builtin, tables / "onnxruntime-cpu.yaml")
    project.run("-o", "edge_ops_dir=tables", outcomes={"passed": 8})
    _, warm = project.run("-o", "edge_ops_dir=tables", outcomes={"passed": 8})
    assert warm["load_tables"] == 0 and warm["analyse"] == 0

    text = (tables / "onnxruntime-cpu.yaml").read_text()
    (tables / "onnxruntime-cpu.yaml").write_text(text.replace("\n  MatMul: {", "\n  MatMul: {status: unsupported, ", 1))
    result, edited = project.run("-o", "edge_ops_dir=tables", "--edge-results=edited.json")
    assert edited["load_tables"] == 1 and edited["misses"]["static"] == 2  # both artifacts' ops checks
    assert edited["hits"]["static"] == 2  # the latency estimates do not read the table: kept
    ops = [r for r in json.loads((pytester.path / "edited.json").read_text())["records"]
           if r["check"] == "ops" and r["recipe"] == "none"]
    assert [r["outcome"] for r in ops] == ["failed"], result.stdout.str()  # the edited table's verdict


def test_a_changed_model_is_inspected_and_analysed_again(project, pytester):
    project.run(outcomes={"passed": 8})
    make_classifier(pytester.path / "models" / "clf.onnx", seed=7)  # other weights, same name and shapes
    _, edited = project.run(outcomes={"passed": 8})
    assert edited["analyse"] > 0 and edited["misses"]["static"] == 4 and edited["misses"]["model"] >= 2


def test_no_cache_keeps_no_records(project, pytester):
    _, counts = project.run("--edge-no-cache", outcomes={"passed": 8})
    assert counts["analyse"] > 0 and not counts["hits"] and not counts["misses"]
    assert not (pytester.path / ".edgecheck").exists()


# Hypothesis' plugin: installed with the dev extra, it must not import hypothesis into a run without its tests.

HYPOTHESIS_TEST = """
from hypothesis import given, strategies as st


@given(st.integers())
def test_small(n):
    assert n < 10
"""


def test_a_spec_only_session_never_imports_hypothesis(project):
    pytest.importorskip("hypothesis")
    result, counts = project.run(outcomes={"passed": 8})
    assert counts["hypothesis_plugin_at_start"]  # the plugin was loaded: the test can fail
    assert "hypothesis" not in counts["modules"]
    assert "PROBE-END hypothesis-plugin=False hypothesis-imported=False" in result.stdout.str()


def test_a_spec_only_session_on_xdist_never_imports_hypothesis_in_the_controller(project, pytester):
    pytest.importorskip("hypothesis")
    pytest.importorskip("xdist")
    result = pytester.runpytest_subprocess("specs", "-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(passed=8)
    assert "PROBE-END hypothesis-plugin=False hypothesis-imported=False" in result.stdout.str()


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["in-process", "xdist"])
def test_a_session_with_a_hypothesis_test_keeps_hypothesis_and_its_output(project, pytester, workers):
    pytest.importorskip("hypothesis")
    if workers:
        pytest.importorskip("xdist")
    pytester.makepyfile(test_prop=HYPOTHESIS_TEST)
    result = pytester.runpytest_subprocess("specs", "test_prop.py", "-p", "no:cacheprovider",
                                           "--hypothesis-show-statistics", *workers)
    result.assert_outcomes(passed=8, failed=1)
    text = result.stdout.str()
    assert "PROBE-END hypothesis-plugin=True" in text
    assert "Hypothesis Statistics" in text  # its terminal summary ran
    assert "Failing test case" in text or "Falsifying example" in text


def test_asked_for_statistics_a_spec_only_session_keeps_the_plugin(project):
    pytest.importorskip("hypothesis")
    result, counts = project.run("--hypothesis-show-statistics", outcomes={"passed": 8})
    assert "Hypothesis Statistics" in result.stdout.str()
    assert "PROBE-END hypothesis-plugin=True" in result.stdout.str()


def test_a_session_without_edgecheck_items_keeps_the_plugin(pytester, monkeypatch):
    """A project that has edgecheck installed but no spec: Hypothesis' plugin is left alone."""
    pytest.importorskip("hypothesis")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makepyfile(test_plain="def test_ok():\n    assert True\n")
    pytester.makeconftest("""
def pytest_unconfigure(config):
    print("PLUGIN", config.pluginmanager.get_plugin("hypothesispytest") is not None)
""")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "PLUGIN True" in result.stdout.str()


def test_built_in_data_files_read_the_same_with_libyaml(tmp_path):
    """edgecheck's own profiles and tables are parsed by libyaml (no duplicate-key refusal, no lines): each
    must give the same data as the line-tracking reader that refuses duplicates."""
    from edgecheck.spec.loader import read_data_file, read_yaml_file

    files = sorted((ROOT / "edgecheck").rglob("*.yaml"))
    assert len(files) >= 10
    for path in files:
        if "profiles" not in path.parts and "tables" not in path.parts:
            continue
        assert read_data_file(path, "data file", 1_000_000) == read_yaml_file(path, "data file", 1_000_000)[0], path
    outside = tmp_path / "dup.yaml"
    outside.write_text("a: 1\na: 2\n")
    from edgecheck.errors import SpecError

    with pytest.raises(SpecError, match="duplicate key"):
        read_data_file(outside, "data file", 1_000)


def test_tool_versions_need_no_import(monkeypatch):
    """The artifact key's tool versions come from the distribution: asking onnx's imports nothing."""
    from edgecheck.cache import tool_versions

    if "onnx" in sys.modules:
        monkeypatch.delitem(sys.modules, "onnx")
        monkeypatch.setattr("builtins.__import__", _refuse("onnx"))
    from importlib.metadata import version

    assert tool_versions(("onnx",)) == {"onnx": version("onnx")}


def _refuse(name: str):
    import builtins

    real = builtins.__import__

    def guarded(module, *args, **kwargs):
        if module == name:
            raise AssertionError(f"{name} imported")
        return real(module, *args, **kwargs)

    return guarded
