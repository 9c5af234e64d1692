"""Hostile and mistaken specs, device profiles, operator tables, baselines and options (issue 14,
section 3), as users meet them: real pytest sessions (pytester) on files written here. Each one fails
its own spec, or the session start, naming the file and the cause: never an INTERNALERROR (exit 3),
never a hang on a FIFO or /dev/zero, never a read of more than the limit."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import junit_properties

from edgecheck.baseline import BaselineError, load_baseline
from edgecheck.errors import SpecError
from edgecheck.spec import load_spec, load_spec_text
from edgecheck.spec.loader import MAX_BYTES, MAX_DEPTH

SIZE_ONLY = """
edgecheck: 1
model: {path: ../models/clf.onnx}
targets:
  host:
    backends: [onnxruntime]
    budgets:
      size_mb: 1
"""

NESTED = 20_000


def _session(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """A session over specs/ writing r.xml; never an internal error, whatever the files."""
    result = pytester.runpytest("specs", "-p", "no:cacheprovider", "--junitxml=r.xml", *args)
    assert result.ret != pytest.ExitCode.INTERNAL_ERROR, result.stdout.str()[-3000:]
    return result


def _failures(pytester: pytest.Pytester) -> dict[str, str]:
    """JUnit failure messages of each case, by 'file::name' (the XML must exist and parse)."""
    import xml.etree.ElementTree as ET

    found = {}
    for case in ET.parse(pytester.path / "r.xml").iter("testcase"):
        failure = case.find("failure")
        if failure is not None:
            found[f"{case.get('classname')}::{case.get('name')}"] = (failure.get("message") or "") + (failure.text or "")
    return found


def _usage_error(result: pytest.RunResult, *needles: str) -> str:
    """A usage error (exit 4) before collection; pytest writes no JUnit XML then, by design."""
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()[-3000:] + result.stderr.str()[-3000:]
    text = result.stderr.str()
    for needle in needles:
        assert needle in text, text
    return text


# 1. a spec that is huge or not a regular file


def test_a_300_mb_spec_fails_alone_and_is_never_read(pytester, spec_project):
    spec_project(SIZE_ONLY, name="good")
    huge = spec_project(SIZE_ONLY, name="huge")
    with huge.open("r+b") as stream:  # sparse: 300 MB by its size, nothing on disk
        stream.truncate(300 * 2**20)
    result = _session(pytester)
    result.assert_outcomes(passed=1, failed=1)
    message = _failures(pytester)["specs.huge.yaml::spec"]
    assert str(huge) in message and f"larger than {MAX_BYTES} bytes" in message and "nothing was read" in message


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "directory"])
def test_a_spec_that_is_not_a_regular_file_is_refused_without_reading(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "spec.yaml"
    if kind == "fifo":
        os.mkfifo(path)  # nobody writes: a plain open would wait forever
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")  # a plain read would never end
    else:
        path.mkdir()
    with pytest.raises(SpecError) as caught:
        load_spec(path, tmp_path)
    expected = {"fifo": "a FIFO", "dev-zero": "a character device", "directory": "a directory"}[kind]
    assert caught.value.path == path and expected in caught.value.reason


def test_a_spec_nested_thousands_deep_is_a_spec_error_at_its_line(pytester, spec_project):
    spec_project(SIZE_ONLY, name="good")
    spec_project(SIZE_ONLY + "name: " + "[" * NESTED + "]" * NESTED + "\n", name="deep")
    result = _session(pytester)
    result.assert_outcomes(passed=1, failed=1)
    message = _failures(pytester)["specs.deep.yaml::spec"]
    assert "deep.yaml:8" in message and f"nested deeper than {MAX_DEPTH} levels" in message


def test_aliases_cannot_nest_deeper_than_the_text(tmp_path: Path) -> None:
    text = SIZE_ONLY + "x-chain:\n" + "".join(f"  a{i}: &a{i} [{f'*a{i - 1}' if i else 1}]\n" for i in range(500))
    with pytest.raises(SpecError, match=f"nested deeper than {MAX_DEPTH} levels"):
        load_spec_text(text, tmp_path / "s.yaml", tmp_path)


# 2. baselines: links to devices, FIFOs, deep nesting


def _baselines(pytester: pytest.Pytester) -> Path:
    folder = pytester.path / ".edgecheck" / "baselines"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.mark.parametrize("kind, cause", [
    ("dev-zero", "it is a character device, not a regular file"),
    ("fifo", "it is a FIFO (named pipe), not a regular file"),
    ("nested", "nested too deeply"),
    ("huge", "larger than 67108864 bytes"),
])
def test_a_hostile_baseline_is_a_usage_error_naming_the_file(pytester, spec_project, kind, cause):
    spec_project(SIZE_ONLY)
    path = _baselines(pytester) / "main.json"
    if kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "nested":
        path.write_text("[" * 100_000 + "]" * 100_000)
    else:
        with path.open("wb") as stream:
            stream.truncate(300 * 2**20)
    result = _session(pytester, "--edge-baseline", "main")
    _usage_error(result, f"--edge-baseline: {path}: ", cause)


@pytest.mark.parametrize("text", ["[" * 100_000, '{"records": ' * 50_000 + "1" + "}" * 50_000])
def test_deeply_nested_json_is_a_baseline_error(tmp_path: Path, text: str) -> None:
    (tmp_path / "main.json").write_text(text)
    with pytest.raises(BaselineError, match="nested too deeply") as caught:
        load_baseline(tmp_path, "main")
    assert str(caught.value).startswith(f"{tmp_path / 'main.json'}: ")


# 3. device profiles


def _devices(pytester: pytest.Pytester, **files: str) -> None:
    pytester.makeini("[pytest]\nedge_devices_dir = devices\n")
    folder = pytester.path / "devices"
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / f"{name}.yaml").write_text(text)


BOARD = "name: board\nextends: host\nbackends:\n  onnxruntime: {precisions: [fp32], threads: 2}\n"


@pytest.mark.parametrize("text, line, cause", [
    ("name: board\nextends: [host]\n", "board.yaml: ", "extends: give the name of one profile, not list ['host']"),
    ("name: board\nextends: {host: 1}\n", "board.yaml: ", "extends: give the name of one profile, not dict"),
    ("name: board\nextends: host\nsource: " + "[" * NESTED + "]" * NESTED + "\n", "board.yaml:3: ",
     f"nested deeper than {MAX_DEPTH} levels"),
    ("name: board\nextends: host\nsource:\n" + "- " * NESTED + "1\n", "board.yaml:4: ",
     f"nested deeper than {MAX_DEPTH} levels"),
    (BOARD + "  onnxruntime: {precisions: [fp16]}\n", "board.yaml:5: backends.onnxruntime: ",
     "duplicate key 'onnxruntime'"),
    (BOARD.replace("threads: 2", "threads: true"), "board.yaml: ", "expected a number, not true"),
    (BOARD + "params_m: [1, false]\n", "board.yaml: ", "expected a number at [1], not false"),
    ("- name: board\n", "board.yaml: ", "the device profile must be a mapping of fields, not list"),
])
def test_a_broken_device_profile_is_a_usage_error_naming_the_file(pytester, spec_project, text, line, cause):
    spec_project(SIZE_ONLY)
    _devices(pytester, board=text)
    _usage_error(_session(pytester), str(pytester.path / "devices" / line), cause)


def test_an_extends_chain_deeper_than_any_board_needs_is_refused(pytester, spec_project):
    spec_project(SIZE_ONLY)
    chain = {f"b{i}": f"name: b{i}\nextends: {'host' if i == 0 else f'b{i - 1}'}\n" for i in range(200)}
    _devices(pytester, **chain)
    _usage_error(_session(pytester), "extends: a chain of more than 32 profiles")


def test_a_good_project_profile_still_loads(pytester, spec_project):
    spec_project(SIZE_ONLY.replace("  host:", "  board:"))
    _devices(pytester, board=BOARD)
    _session(pytester, "--edge-target=board").assert_outcomes(passed=1)


# 4. operator tables in edge_ops_dir


TABLE = """\
name: project-ort
title: Project ONNX Runtime table
backend: onnxruntime
version: "1"
source: this test
unlisted: {status: supported, reason: everything else runs}
ops:
  NonZero: {status: unsupported, note: not on our build}
"""

OPS_SPEC = SIZE_ONLY.replace("size_mb: 1", "ops: {unsupported: 0, table: project-ort}")


def _tables(pytester: pytest.Pytester, folder: str = "ops", **files: str) -> Path:
    pytester.makeini(f"[pytest]\nedge_ops_dir = {folder}\n")
    path = pytester.path / "ops"
    path.mkdir(exist_ok=True)
    for name, text in files.items():
        (path / f"{name}.yaml").write_text(text)
    return path


@pytest.mark.parametrize("text, where, cause", [
    ("- Conv\n- Relu\n", "mine.yaml: ", "the operator table must be a mapping of fields, not list"),
    (TABLE.replace("title: Project ONNX Runtime table\n", ""), "mine.yaml: title: ", "required field is missing"),
    (TABLE + "  NonZero: {status: supported}\n", "mine.yaml:9: ops.NonZero: ", "duplicate key 'NonZero'"),
    (TABLE + "  Conv: {versions: [[true, 11]]}\n", "mine.yaml: ops.Conv.versions: ", "expected a number at [0][0]"),
    (TABLE + "notes: " + "{a: " * NESTED + "1" + "}" * NESTED + "\n", "mine.yaml:9: ", "nested deeper than"),
])
def test_a_broken_operator_table_is_a_usage_error_not_a_green_run_of_skips(pytester, spec_project, text, where,
                                                                           cause):
    spec_project(OPS_SPEC)
    folder = _tables(pytester, mine=text)
    _usage_error(_session(pytester), "edge_ops_dir: ", f"{folder}/{where}", cause)


def test_a_mistyped_operator_table_folder_is_a_usage_error(pytester, spec_project):
    spec_project(OPS_SPEC)
    _tables(pytester, folder="opz", mine=TABLE)
    _usage_error(_session(pytester), f"edge_ops_dir: {pytester.path / 'opz'}: operator table folder not found")


def test_a_good_operator_table_judges_the_ops_check(pytester, spec_project):
    spec_project(OPS_SPEC)
    _tables(pytester, mine=TABLE)
    _session(pytester).assert_outcomes(passed=1)
    assert junit_properties(pytester.path / "r.xml")["host-onnxruntime-none-ops"]["edge.ops.table"].startswith(
        "project-ort: ")


# 5. booleans where numbers belong


@pytest.mark.parametrize("change, field, cause", [
    (("    budgets:", "    threads: true\n    budgets:"), "targets.host.threads", "expected a number, not true"),
    (("    budgets:", "    threads: {onnxruntime: yes}\n    budgets:"), "targets.host.threads",
     "expected a number at ['onnxruntime'], not true"),
    (("targets:", "inputs:\n  x: {shape: [true, 4]}\ntargets:"), "inputs.x.shape", "expected a number at [0], not true"),
    (("targets:", "inputs:\n  x: {range: [0, true]}\ntargets:"), "inputs.x.range", "expected a number at [1], not true"),
    (("size_mb: 1", "size_mb: true"), "targets.host.budgets.size_mb", "expected a number, not true"),
    (("size_mb: 1", "latency_ms: {p50: 10, samples: false}"), "targets.host.budgets.latency_ms.samples",
     "expected a number, not false"),
    (("size_mb: 1", "parity: {topk_agreement: {k: true, min: 0.5}}"),
     "targets.host.budgets.parity.topk_agreement.k", "expected a number, not true"),
    (("size_mb: 1", "ops: {unsupported: true}"), "targets.host.budgets.ops.unsupported", "expected a number, not true"),
])
def test_a_boolean_for_a_number_fails_the_spec_naming_the_field(pytester, spec_project, change, field, cause):
    spec_project(SIZE_ONLY, name="good")
    bad = spec_project(SIZE_ONLY.replace(*change), name="bad")
    _session(pytester).assert_outcomes(passed=1, failed=1)
    message = _failures(pytester)["specs.bad.yaml::spec"]
    assert f"{bad}:" in message and f"{field}: {cause}" in message


# 6. an entry's budget override that makes no whole budget


OVERRIDE = SIZE_ONLY.replace("targets:", "compress: [fp16]\ntargets:") + "    recipes:\n      fp16: {OVERRIDE}\n"


@pytest.mark.parametrize("override, field, cause", [
    ("{latency_ms: {source: host}}", "latency_ms", "latency_ms names no bound"),
    ("{latency_ms: {samples: 100}}", "latency_ms", "latency_ms names no bound"),
    ("{memory_mb: {source: host}}", "memory_mb", "memory_mb names no bound"),
    ("{parity: {}}", "parity", "parity budget names no bound"),
    ("{regression: {}}", "regression", "regression names no bound"),
])
def test_an_override_without_a_bound_fails_its_spec_at_the_line(pytester, spec_project, override, field, cause):
    spec_project(SIZE_ONLY, name="good")
    bad = spec_project(OVERRIDE.replace("{OVERRIDE}", override), name="bad")
    _session(pytester).assert_outcomes(passed=1, failed=1)
    message = _failures(pytester)["specs.bad.yaml::spec"]
    assert f"{bad}:10: targets.host.recipes.fp16.{field}: {cause}" in message
    assert f"the target's budgets have no {field} for this entry to change" in message


def test_overrides_that_change_a_target_budget_still_load(tmp_path: Path) -> None:
    from conftest import make_classifier

    (tmp_path / "models").mkdir()
    make_classifier(tmp_path / "models" / "clf.onnx")
    text = (SIZE_ONLY.replace("size_mb: 1", "size_mb: 1\n      latency_ms: {p50: 10}\n      regression: "
                              "{latency: 10%, memory: 5%}\n      memory_mb: {peak: 100}")
            .replace("targets:", "compress: [fp16, int8-dynamic]\ntargets:")
            + "    recipes:\n      fp16: {latency_ms: {source: host}, memory_mb: {source: host}, "
              "regression: {latency: null}}\n      int8-dynamic: {latency_ms: {p50: null}, parity: {atol: null}}\n")
    loaded = load_spec_text(text, tmp_path / "specs" / "s.yaml", tmp_path)
    target = loaded.spec.targets["host"]
    fp16 = target.budgets_for("fp16")
    assert fp16.latency_ms.source == "host" and fp16.latency_ms.p50 == 10
    assert fp16.regression.latency is None and fp16.regression.memory == 5
    int8 = target.budgets_for("int8-dynamic")
    assert int8.latency_ms is None and int8.parity is None  # every bound dropped: no such check


# 7. latency samples and rounds


@pytest.mark.parametrize("budgets, recipes, line, cause", [
    ("latency_ms: {p50: 10, samples: 2}", "", 7, "samples (2) is fewer than rounds (3)"),
    ("latency_ms: {p50: 10, samples: 1, rounds: 5}", "", 7, "give samples >= 5 or rounds <= 1"),
    ("latency_ms: {p50: 10, rounds: 4}", "fp16: {latency_ms: {samples: 3}}", 10, "samples (3) is fewer than rounds (4)"),
])
def test_fewer_samples_than_rounds_is_refused_at_load(pytester, spec_project, budgets, recipes, line, cause):
    spec_project(SIZE_ONLY, name="good")
    text = SIZE_ONLY.replace("size_mb: 1", budgets)
    if recipes:
        text = text.replace("targets:", "compress: [fp16]\ntargets:") + f"    recipes:\n      {recipes}\n"
    bad = spec_project(text, name="bad")
    _session(pytester).assert_outcomes(passed=1, failed=1)
    message = _failures(pytester)["specs.bad.yaml::spec"]
    assert f"{bad}:{line}: " in message and "latency_ms" in message and cause in message


def test_a_timing_plan_never_splits_fewer_samples_than_rounds() -> None:
    from edgecheck.measure.runs import TimingPlan

    with pytest.raises(ValueError, match="cannot be split"):
        TimingPlan(samples=2, rounds=3)
    assert TimingPlan(samples=3, rounds=3).rounds == 3
    assert TimingPlan(samples=None, max_seconds=1.0, rounds=3).rounds == 3


# 8. the latency regression check on a mean budget


def test_a_mean_latency_budget_is_compared_with_the_baseline(pytester, spec_project):
    from test_measurement import FAST, _spec, _tuned

    budgets = f'latency_ms: {{mean: 1000, samples: 64, {FAST}}}\nregression: {{latency: "10%"}}'
    spec_project(_spec(budgets, backend="tuned"))
    _tuned(pytester, delays=(0.001,))
    pytester.runpytest("specs", "--edge-save-baseline", "main").assert_outcomes(passed=1)
    _tuned(pytester, delays=(0.006,))  # 5 ms slower per call: far beyond 10 %
    result = _session(pytester, "--edge-baseline", "main")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*regression.latency.mean*≤ 10% slower than baseline 'main'*BREACH*"])
    case = junit_properties(pytester.path / "r.xml")["host-tuned-none-latency"]
    assert float(case["edge.regression.latency.mean"]) > 100
    assert "edge.regression.latency.p50" not in case  # only what the budget bounds is compared


def test_an_ops_budget_with_every_bound_null_fails_its_spec_and_an_override_may_still_drop_one(pytester, spec_project):
    """ops: {unsupported: null} bounds nothing, and its check passed having judged nothing: refused at its line.
    A compress entry's override that drops one bound of several stays allowed."""
    spec_project(SIZE_ONLY.replace("size_mb: 1", "ops: {unsupported: null}"), name="bad")
    kept = OVERRIDE.replace("size_mb: 1", "ops: {unsupported: 0, fallback: 2}").replace(
        "{OVERRIDE}", "{ops: {unsupported: null}}")
    spec_project(kept, name="good")
    result = _session(pytester, "-v")
    result.assert_outcomes(passed=2, failed=1)  # good: the model's and fp16's ops checks
    message = _failures(pytester)["specs.bad.yaml::spec"]
    assert "targets.host.budgets.ops: ops names no bound: give unsupported, fallback or constraint" in message
    loaded = load_spec(pytester.path / "specs" / "good.yaml", project_root=pytester.path)
    assert loaded.spec.targets["host"].budgets_for("fp16").ops.bounds() == {"fallback": 2}
