"""Latency and memory budgets, baselines and the files a run writes, as users run them: pytester
sessions on real spec files, real (small) models and worker processes that really time them."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import time

import pytest
import yaml
from conftest import junit_properties as _properties

# Timings here are short: few warm-up runs and no warm-up time.
FAST = "warmup_runs: 2, warmup_s: 0"

# A backend for these tests only: ONNX Runtime that sleeps before each call, cycling through DELAYS_S
# (so (0.001, 0.004) alternates 1 ms and 4 ms: a bimodal latency), and scales every output by SCALE
# (-1 turns each argmax into an argmin: a real accuracy loss). Its behaviour changes between the
# sessions of one test, so it is not deterministic: its outputs are never served from the cache.
TUNED_BACKEND = '''
import time

import numpy as np
from edgecheck.backends import register_backend
from edgecheck.vendors.onnxruntime.backend import OnnxRuntimeBackend, OnnxRuntimeRunner
from edgecheck.backends.registry import unregister_backend

DELAYS_S = {delays!r}
SCALE = {scale!r}


class TunedRunner(OnnxRuntimeRunner):
    calls = 0

    def _pause(self):
        if DELAYS_S:
            time.sleep(DELAYS_S[self.calls % len(DELAYS_S)])
        self.calls += 1

    def _infer_impl(self, feed):
        self._pause()
        outputs = super()._infer_impl(feed)
        return {{k: (v * np.float32(SCALE)).astype(v.dtype) for k, v in outputs.items()}}

    def _bind_impl(self, feed):
        run = super()._bind_impl(feed)

        def call():
            self._pause()
            return run()
        return call


@register_backend
class TunedBackend(OnnxRuntimeBackend):
    name = "tuned"
    deterministic = False

    def _load_impl(self, artifact, options):
        runner = super()._load_impl(artifact, options)
        tuned = TunedRunner(runner._session, artifact)
        tuned.backend = self.name
        return tuned


def pytest_unconfigure(config):
    unregister_backend("tuned")
'''


def _spec(budgets: str, target: str = "host", backend: str = "onnxruntime", threads: str | None = "1",
          compress: str = "") -> str:
    """A spec for models/clf.onnx with one target; `budgets` are YAML lines (no indent)."""
    lines = "\n".join("      " + line for line in budgets.strip().splitlines())
    return ("edgecheck: 1\nmodel: {path: ../models/clf.onnx}\ndata:\n  evaluation: {path: ../models/eval.npz}\n"
            + (f"compress: {compress}\n" if compress else "")
            + f"targets:\n  {target}:\n    backends: [{backend}]\n"
            + (f"    threads: {threads}\n" if threads is not None else "")
            + f"    budgets:\n{lines}\n")


def _tuned(pytester: pytest.Pytester, delays: tuple[float, ...] = (), scale: float = 1.0) -> None:
    pytester.makeconftest(TUNED_BACKEND.format(delays=tuple(delays), scale=float(scale)))


def _window(text: str) -> tuple[float, float]:
    start, end = text.split("..")
    return float(start), float(end)


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# 1. host latency and memory budgets


def test_generous_host_budgets_pass_and_the_junit_xml_carries_sane_figures(pytester, spec_project):
    spec_project(_spec(f"latency_ms: {{p50: 1000, p95: 1000, {FAST}}}\nmemory_mb: {{peak: 4096, process: 8192}}",
                       threads="{onnxruntime: 3}"))
    started = time.time()
    result = pytester.runpytest("specs", "-v", "--junitxml=report.xml")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*model.yaml::host-onnxruntime-none-latency PASSED*",
                                 "*model.yaml::host-onnxruntime-none-memory PASSED*"])
    cases = _properties(pytester.path / "report.xml")

    latency = cases["host-onnxruntime-none-latency"]
    assert latency["edge.check"] == "latency" and latency["edge.verdict"] == "pass"
    p50, p95 = float(latency["edge.latency.p50"]), float(latency["edge.latency.p95"])
    assert 0 < p50 <= p95 < 1000
    assert float(latency["edge.latency.p50.ci_low"]) <= p50 <= float(latency["edge.latency.p50.ci_high"])
    assert float(latency["edge.latency.p95.ci_low"]) <= p95 <= float(latency["edge.latency.p95.ci_high"])
    assert latency["edge.latency.p50.unit"] == "ms"
    assert latency["edge.latency.p50.budget"] == "<= 1000 ms" and latency["edge.latency.p95.budget"] == "<= 1000 ms"
    samples = float(latency["edge.latency.samples"])
    assert samples == int(samples) >= 130  # no samples given: the default for p95 (MLPerf's rule)
    stats = json.loads(latency["edge.latency.stats"])  # pytest-benchmark's stats, in seconds
    assert stats["rounds"] == samples
    assert stats["median"] * 1000 == pytest.approx(p50, rel=0.5)
    assert stats["min"] <= stats["median"] <= stats["max"]
    start, end = _window(latency["edge.latency.window"])
    assert started - 1 <= start <= end <= time.time() + 1
    assert end - start >= samples * float(latency["edge.latency.min"]) / 1000 * 0.99  # the timed runs fit in it
    assert latency["edge.measured_on"] == "host"
    assert latency["edge.env.machine"]
    assert latency["edge.threads"] == "3" and latency["edge.runtime"].endswith("3 threads")  # the spec's threads

    memory = cases["host-onnxruntime-none-memory"]
    assert memory["edge.verdict"] == "pass" and memory["edge.measured_on"] == "host"
    peak, process = float(memory["edge.memory.peak"]), float(memory["edge.memory.process"])
    baseline = float(memory["edge.memory.baseline"])
    assert 0 <= peak < process < 8192
    assert baseline > 0 and process >= baseline + peak - 0.01  # the process's peak holds the idle worker and the model
    assert float(memory["edge.memory.model_file"]) == pytest.approx(
        (pytester.path / "models" / "clf.onnx").stat().st_size / 2**20)
    assert memory["edge.memory.peak.budget"] == "<= 4096 MiB" and memory["edge.memory.process.budget"] == "<= 8192 MiB"
    assert memory["edge.threads"] == "3"


def test_tight_latency_and_memory_budgets_fail_naming_figure_value_and_budget(pytester, spec_project):
    spec_project(_spec(f"latency_ms: {{p50: 0.00001, samples: 64, {FAST}}}\nmemory_mb: {{process: 1}}"))
    result = pytester.runpytest("specs", "--junitxml=report.xml")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(failed=2)
    cases = _properties(pytester.path / "report.xml")
    latency, memory = cases["host-onnxruntime-none-latency"], cases["host-onnxruntime-none-memory"]
    assert latency["edge.verdict"] == "fail" and memory["edge.verdict"] == "fail"

    output = result.stdout.str()
    assert "latency budget breached: model.yaml target host, backend onnxruntime, recipe none" in output
    # in the unit that suits the figure (3 significant digits), the budget in its own, the margin with its unit
    row = re.search(r"latency\.p50\s+(\S+) (ns|µs|ms|s) \(95% CI [^)]+\)\s+≤ 10 ns\s+over by \S+ (?:ns|µs|ms|s)\s+"
                    r"BREACH", output)
    assert row, output
    in_ms = float(row.group(1)) * {"ns": 1e-6, "µs": 1e-3, "ms": 1.0, "s": 1e3}[row.group(2)]
    assert in_ms == pytest.approx(float(latency["edge.latency.p50"]), rel=5e-3)

    assert "memory budget breached: model.yaml target host, backend onnxruntime, recipe none" in output
    row = re.search(r"memory\.process\s+(\S+) (KiB|MiB|GiB)\s+≤ 1 MiB\s+over by \S+ (?:KiB|MiB|GiB)\s+BREACH", output)
    assert row, output
    in_mib = float(row.group(1)) * {"KiB": 2**-10, "MiB": 1.0, "GiB": 2**10}[row.group(2)]
    assert in_mib == pytest.approx(float(memory["edge.memory.process"]), rel=5e-3)
    # the summary table says the same in one row each
    result.stdout.fnmatch_lines(["  FAIL*latency*onnxruntime*none*p50 * (95% CI *)*≤ 10 ns*over by *",
                                 "  FAIL*memory*onnxruntime*none*process * ?iB*≤ 1 MiB*over by * ?iB"])


# 2. a budget inside the measurement's noise


# modes far apart (1 ms and 50 ms) and the budget between them with room on both sides: on a loaded
# machine a 1 ms sleep wakes late, and the verdict must still be the noise's, not the load's
INCONCLUSIVE = f"latency_ms: {{p50: 15, samples: 64, {FAST}}}"


def test_a_budget_inside_the_noise_is_inconclusive_and_passes_with_a_warning(pytester, spec_project):
    spec_project(_spec(INCONCLUSIVE, backend="tuned"))
    _tuned(pytester, delays=(0.001, 0.05))  # half the runs take 1 ms, half 50 ms: the median could be either
    result = pytester.runpytest("specs", "--junitxml=report.xml")
    result.assert_outcomes(passed=1, warnings=1)
    # the warning points at the spec's budget line and shows it, not edgecheck's own source line
    result.stdout.fnmatch_lines(["*warnings summary*", "specs/model.yaml::host-tuned-none-latency",
                                 f"  {pytester.path / 'specs' / 'model.yaml'}:*: InconclusiveWarning: p50 * ms (95% CI "
                                 "*–* ms), budget ≤ 15 ms: the budget lies within the measurement's noise (passed: "
                                 "--edge-inconclusive=fail or latency_ms.inconclusive: fail fails it)",
                                 "    latency_ms: {p50: 15, samples: 64*"])
    assert "edgecheck/plugin.py" not in result.stdout.str() and "warnings.warn" not in result.stdout.str()
    # the table: the verdict, and its whole reason under the row
    result.stdout.fnmatch_lines(["  inconclusive*latency*tuned*none*p50 * ms (95% CI *–* ms)*≤ 15 ms",
                                 "      the budget lies within the measurement's noise"])
    latency = _properties(pytester.path / "report.xml")["host-tuned-none-latency"]
    assert latency["edge.verdict"] == "inconclusive"
    assert float(latency["edge.latency.p50.ci_low"]) < 15 < float(latency["edge.latency.p50.ci_high"])
    assert float(latency["edge.latency.samples"]) == 64

    strict = pytester.runpytest("specs", "--edge-inconclusive=fail")
    strict.assert_outcomes(failed=1)
    strict.stdout.fnmatch_lines(["*latency verdict inconclusive (the budget lies within the noise)*",
                                 "*latency.p50*≤ 15 ms*INCONCLUSIVE*"])


def test_the_spec_can_make_inconclusive_fail_and_wins_over_the_option(pytester, spec_project):
    spec_project(_spec(INCONCLUSIVE.replace("}", ", inconclusive: fail}"), backend="tuned"))
    _tuned(pytester, delays=(0.001, 0.05))
    result = pytester.runpytest("specs")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*latency verdict inconclusive*", "*latency.p50*INCONCLUSIVE*"])
    pytester.runpytest("specs", "--edge-inconclusive=warn").assert_outcomes(failed=1)


# 3. device targets


def test_a_device_latency_budget_is_not_judged_on_the_host_unless_the_spec_says_so(pytester, spec_project):
    budgets = f"latency_ms: {{p50: 1000, samples: 64, {FAST}}}"
    spec_project(_spec(budgets, target="rk3588", threads=None))
    skipped = pytester.runpytest("specs", "-rs")
    skipped.assert_outcomes(skipped=1)
    skipped.stdout.fnmatch_lines(["SKIPPED*cannot judge rk3588 latency here: no rk3588 to measure on*"
                                  "add source: host to latency_ms*"])

    strict = pytester.runpytest("specs", "--edge-strict")
    strict.assert_outcomes(failed=1)
    strict.stdout.fnmatch_lines(["*cannot judge rk3588 latency here*--edge-strict turns this skip into a failure*"])

    spec_project(_spec(budgets.replace("}", ", source: host}"), target="rk3588", threads=None))
    measured = pytester.runpytest("specs", "--junitxml=report.xml")
    measured.assert_outcomes(passed=1)
    latency = _properties(pytester.path / "report.xml")["rk3588-onnxruntime-none-latency"]
    assert latency["edge.measured_on"].startswith("host, as a stand-in for rk3588")
    assert float(latency["edge.latency.p50"]) > 0
    assert latency["edge.threads"] == "4"  # the rk3588 profile's ONNX Runtime threads


# 4. baselines


BASELINE_BUDGETS = f"""
accuracy_drop: 100
latency_ms: {{p50: 1000, samples: 64, {FAST}}}
memory_mb: {{peak: 4096}}
regression: {{latency: "200%", memory: "200%", accuracy: 0.5}}
"""


def test_save_baseline_writes_every_record_and_never_clobbers_one(pytester, spec_project):
    spec_project(_spec(BASELINE_BUDGETS))
    saved = pytester.runpytest("specs", "--edge-save-baseline", "main")
    saved.assert_outcomes(passed=3)
    saved.stdout.fnmatch_lines(["edgecheck: baseline 'main' saved: 3 checks' figures in *main.json"])
    path = pytester.path / ".edgecheck" / "baselines" / "main.json"
    document = json.loads(path.read_text())
    assert document["name"] == "main" and document["edgecheck_baseline"] == 1
    records = document["records"]
    assert set(records) == {f"specs/model.yaml::host-onnxruntime-none-{check}"
                            for check in ("accuracy", "latency", "memory")}
    assert records["specs/model.yaml::host-onnxruntime-none-latency"]["latency.p50"] > 0
    assert records["specs/model.yaml::host-onnxruntime-none-memory"]["memory.peak"] >= 0
    assert records["specs/model.yaml::host-onnxruntime-none-accuracy"]["accuracy"] == 100
    assert document["environment"]["machine"]

    before = path.read_bytes()
    again = pytester.runpytest("specs", "--edge-save-baseline", "main")
    assert again.ret == pytest.ExitCode.USAGE_ERROR
    again.stderr.fnmatch_lines(["*--edge-save-baseline: baseline 'main' exists*--edge-overwrite-baseline*"])
    assert path.read_bytes() == before

    # a record no run makes: gone once the baseline is replaced
    keys = set(records)
    document["records"]["specs/model.yaml::sentinel"] = {"x": 1.0}
    path.write_text(json.dumps(document))
    replaced = pytester.runpytest("specs", "--edge-save-baseline", "main", "--edge-overwrite-baseline")
    replaced.assert_outcomes(passed=3)
    assert set(json.loads(path.read_text())["records"]) == keys

    missing = pytester.runpytest("specs", "--edge-baseline", "nope")
    assert missing.ret == pytest.ExitCode.USAGE_ERROR
    missing.stderr.fnmatch_lines(["*--edge-baseline: *no baseline named 'nope'*(baselines in *: main)*"])


def test_latency_regression_against_a_baseline(pytester, spec_project):
    spec_project(_spec(BASELINE_BUDGETS, backend="tuned"))
    _tuned(pytester, delays=(0.001,))  # a steady 1 ms per call: small noise against the 200% allowed
    pytester.runpytest("specs", "--edge-save-baseline", "main").assert_outcomes(passed=3)

    same = pytester.runpytest("specs", "--edge-baseline", "main", "--junitxml=same.xml")
    same.assert_outcomes(passed=3)
    cases = _properties(pytester.path / "same.xml")
    latency = cases["host-tuned-none-latency"]
    assert -50 < float(latency["edge.regression.latency.p50"]) < 200
    assert latency["edge.regression.latency.p50.unit"] == "%"
    assert latency["edge.regression.latency.p50.budget"].startswith("<= 200% slower than baseline 'main'")
    assert "edge.regression.memory.peak" in cases["host-tuned-none-memory"]
    assert float(cases["host-tuned-none-accuracy"]["edge.regression.accuracy"]) == 0
    # the summary table gets a column of the changes against the baseline
    same.stdout.fnmatch_lines(["*verdict*check*backend*recipe*measured*budget*margin*vs baseline",
                               "  pass*accuracy*tuned*none*top1 100 % → 100 % (±0 pt)*top1 ±0 pt",
                               "  pass*latency*tuned*none*p50 * ms*p50 [+−±]*%*"])

    spec_project(_spec(BASELINE_BUDGETS.replace('latency: "200%"', 'latency: "10%"'), backend="tuned"))
    _tuned(pytester, delays=(0.006,))  # 5 ms slower per call
    slower = pytester.runpytest("specs", "--edge-baseline", "main", "--junitxml=slower.xml")
    slower.assert_outcomes(passed=2, failed=1)
    slower.stdout.fnmatch_lines(["*latency budget breached*backend tuned*",
                                 "*regression.latency.p50*≤ 10% slower than baseline 'main'*BREACH*"])
    # the row shows its own figure and the change; the breached change is the reason under it
    slower.stdout.fnmatch_lines(["  FAIL*latency*tuned*none*p50 * ms*p50 +*%",
                                 "      p50 vs baseline +*%, budget ≤ 10% slower than baseline*", "*over by *%"])
    latency = _properties(pytester.path / "slower.xml")["host-tuned-none-latency"]
    assert latency["edge.verdict"] == "fail"
    assert float(latency["edge.regression.latency.p50"]) > 200
    assert float(latency["edge.latency.p50"]) < 1000  # the absolute budget still passes: the regression fails it


def test_accuracy_regression_against_a_baseline(pytester, spec_project):
    spec_project(_spec('accuracy_drop: 100\nregression: {accuracy: 0.5}', backend="tuned"))
    _tuned(pytester)
    pytester.runpytest("specs", "--edge-save-baseline", "main").assert_outcomes(passed=1)
    pytester.runpytest("specs", "--edge-baseline", "main").assert_outcomes(passed=1)

    _tuned(pytester, scale=-1.0)  # every argmax becomes an argmin
    worse = pytester.runpytest("specs", "--edge-baseline", "main", "--junitxml=worse.xml")
    worse.assert_outcomes(failed=1)
    worse.stdout.fnmatch_lines(["*accuracy budget breached*backend tuned*",
                                "*regression.accuracy*100 pt*≤ 0.5 pts below baseline 'main' (100)*over by 99.5 pt*BREACH*"])
    worse.stdout.fnmatch_lines(["  FAIL*accuracy*tuned*none*top1 100 % → 0 % (−100 pt)*drop ≤ 100 pt*at budget*top1 −100 pt",
                                "      drop vs baseline 100 pt, budget ≤ 0.5 pts below baseline 'main' (100):",
                                "      over by 99.5 pt"])  # wrapped to the terminal's 80 columns, whole
    accuracy = _properties(pytester.path / "worse.xml")["host-tuned-none-accuracy"]
    assert float(accuracy["edge.regression.accuracy"]) > 0.5
    assert float(accuracy["edge.accuracy_drop"]) <= 100  # the drop budget itself passes


# 5. under pytest-xdist


def test_under_xdist_files_are_written_once_and_timings_never_overlap(pytester, spec_project):
    pytest.importorskip("xdist")
    spec_project(_spec(f"latency_ms: {{p50: 1000, samples: 48, {FAST}}}\nmemory_mb: {{peak: 4096}}",
                       backend="tuned", compress="[fp16, int8-dynamic, {prune: {sparsity: 0.5}}]"))
    _tuned(pytester, delays=(0.001,))  # ~50 ms of timed runs per item: long enough to overlap, were they not locked
    result = pytester.runpytest_subprocess("specs", "-n", "2", "-v", "--junitxml=report.xml",
                                           "--edge-save-baseline", "xd")
    result.assert_outcomes(passed=8)
    workers = set(re.findall(r"\[(gw\d)\] .*PASSED", result.stdout.str()))
    assert workers == {"gw0", "gw1"}, result.stdout.str()
    assert result.stdout.str().count("baseline 'xd' saved: 8 checks' figures") == 1
    assert "NOT saved" not in result.stdout.str()

    cases = _properties(pytester.path / "report.xml")
    ids = {f"host-tuned-{recipe}-{check}" for recipe in ("none", "fp16", "int8-dynamic", "prune")
           for check in ("latency", "memory")}
    assert set(cases) == ids
    records = json.loads((pytester.path / ".edgecheck" / "baselines" / "xd.json").read_text())["records"]
    assert set(records) == {f"specs/model.yaml::{item}" for item in ids}

    windows = sorted(_window(case["edge.latency.window"]) for case in cases.values()
                     if case["edge.check"] == "latency")
    assert len(windows) == 4
    for (_, end), (start, _) in zip(windows, windows[1:]):
        assert end <= start, windows


# 6. pytest-benchmark's JSON


def test_benchmark_json_is_read_by_pytest_benchmark_compare(pytester, spec_project, tmp_path_factory):
    spec_project(_spec(f"latency_ms: {{p50: 1000, samples: 64, {FAST}}}\nsize_mb: 1", compress="[fp16]"))
    result = pytester.runpytest("specs", "--edge-benchmark-json", "out.json")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["edgecheck: 2 latency results written in pytest-benchmark's format to out.json"])
    out = pytester.path / "out.json"
    document = json.loads(out.read_text())
    benchmarks = {b["fullname"]: b for b in document["benchmarks"]}
    assert set(benchmarks) == {"specs/model.yaml::host-onnxruntime-none-latency",
                               "specs/model.yaml::host-onnxruntime-fp16-latency"}
    for entry in benchmarks.values():
        assert entry["stats"]["rounds"] == 64 and 0 < entry["stats"]["min"] <= entry["stats"]["max"]
        assert entry["group"] == "model host" and entry["extra_info"]["measured_on"] == "host"

    pytest.importorskip("pytest_benchmark", reason="pytest-benchmark is not installed: its compare cannot be run")
    outside = tmp_path_factory.mktemp("compare")  # no conftest.py, no spec project: only the file
    compare = subprocess.run([sys.executable, "-m", "pytest_benchmark", "compare", str(out)], cwd=outside,
                             capture_output=True, text=True, timeout=120)
    assert compare.returncode == 0, compare.stdout + compare.stderr
    assert "host-onnxruntime-none" in compare.stdout and "host-onnxruntime-fp16" in compare.stdout


# 7. suggested budgets


def test_suggested_budgets_parse_and_validate_and_the_spec_is_untouched(pytester, spec_project):
    from edgecheck.spec.schema import Budgets

    spec = spec_project(_spec(f"""
accuracy_drop: 1
parity: {{atol: 0.001}}
size_mb: 1
latency_ms: {{p50: 1000, p95: 1000, {FAST}}}
memory_mb: {{peak: 4096}}
""", compress="[fp16]"))
    before = _digest(spec)
    result = pytester.runpytest("specs", "--edge-suggest")
    result.assert_outcomes(passed=9)
    lines = result.stdout.lines
    start = next(i for i, line in enumerate(lines) if "edgecheck suggested budgets" in line)
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("=="))
    suggested = yaml.safe_load("\n".join(lines[start + 1:end]))
    recipes = suggested["host"]["recipes"]
    assert set(recipes) == {"none", "fp16"}
    for name, budgets in recipes.items():
        wanted = {"accuracy_drop", "parity", "size_mb", "latency_ms", "memory_mb"} - ({"parity"} if name == "none" else set())
        assert wanted <= set(budgets), name  # no parity item for the original on its reference backend: no figure
        Budgets.model_validate(budgets)
        assert budgets["latency_ms"]["p50"] > 0 and budgets["memory_mb"]["peak"] >= 0
    assert _digest(spec) == before


# 8. the shipped example


def test_the_example_measures_on_the_host_and_stands_in_only_where_it_says_so(pytester, digits_project):
    host = pytester.runpytest("specs", "--edge-target=host", "--edge-backend=onnxruntime", "--junitxml=host.xml")
    host.assert_outcomes(passed=59)  # 10 ONNX artifacts x (accuracy, parity, size, latency, memory, ops), less the
    # original's parity (the reference against itself is not planned)
    cases = _properties(digits_project / "host.xml")
    for check in ("latency", "memory"):
        mine = [case for case in cases.values() if case["edge.check"] == check]
        assert len(mine) == 10, check
        assert {case["edge.measured_on"] for case in mine} == {"host"}
        assert {case["edge.verdict"] for case in mine} <= {"pass", "inconclusive"}

    pi = pytester.runpytest("specs", "--edge-target=raspberry-pi-4b", "--edge-backend=onnxruntime", "-rs",
                            "-m", "edge(check='latency') or edge(check='memory')", "--junitxml=pi.xml")
    pi.assert_outcomes(passed=20, deselected=40)  # the spec says source: host for both on the Pi
    figures = [case for case in _properties(digits_project / "pi.xml").values()]
    assert len(figures) == 20
    for case in figures:
        assert case["edge.measured_on"].startswith("host, as a stand-in for raspberry-pi-4b"), case
        assert case["edge.verdict"] in ("pass", "inconclusive")
    assert all(float(c["edge.memory.peak"]) <= 32 for c in figures if c["edge.check"] == "memory")


# Found while writing these tests, and fixed.


@pytest.mark.parametrize("ini, message", [
    ("edge_inconclusive = fial", "edge_inconclusive: 'fial' is neither warn nor fail"),
    ("edge_worker_timeout = abc", "edge_worker_timeout / edge_worker_memory: *'abc'"),
], ids=["inconclusive", "worker_timeout"])
def test_a_mistyped_ini_measurement_option_is_a_usage_error(pytester, spec_project, ini, message):
    spec_project(_spec(f"latency_ms: {{p50: 1000, samples: 64, {FAST}}}"))
    pytester.makeini(f"[pytest]\n{ini}\n")
    result = pytester.runpytest("specs")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])


@pytest.mark.parametrize("selection", [["--co"], ["-k", "nothing-matches-this"]], ids=["collect_only", "deselected"])
def test_a_run_in_which_no_check_ran_saves_no_baseline(pytester, spec_project, selection):
    spec_project(_spec(f"latency_ms: {{p50: 1000, samples: 64, {FAST}}}"))
    pytester.runpytest("specs", *selection, "--edge-save-baseline", "main")
    assert not (pytester.path / ".edgecheck" / "baselines" / "main.json").exists()


def test_a_worker_loads_an_artifact_without_reading_the_format_registry(tmp_path):
    """A memory figure is the load's own: the registry's entry point scan (about 1.4 MiB) must not happen
    inside the measured load, so the session hands the worker the suffixes its backend runs."""
    import subprocess
    import sys

    from conftest import make_classifier

    make_classifier(tmp_path / "clf.onnx")
    code = ("import sys\nimport edgecheck.worker.main\n"
            "from edgecheck.backends.base import RunOptions\n"
            "from edgecheck.vendors.onnxruntime.backend import OnnxRuntimeBackend\n"
            f"OnnxRuntimeBackend().load({str(tmp_path / 'clf.onnx')!r}, RunOptions(suffixes=('.onnx',))).close()\n"
            "print(sorted(m for m in sys.modules if m.startswith(('edgecheck.formats', 'edgecheck.model'))))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
