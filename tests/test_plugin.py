"""The plugin as users run it: real pytest sessions (pytester) on real spec files and models."""

from __future__ import annotations

import pytest
from conftest import INT8_SPEC
from conftest import junit_properties as _properties

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
      accuracy_min: 95
      parity: {atol: 1.0e-5, cosine: 0.9999}
      size_mb: 1
"""


def test_passing_spec_passes_with_one_item_per_check(pytester, spec_project):
    spec_project(SPEC)
    result = pytester.runpytest("specs", "-v")
    result.assert_outcomes(passed=2)
    # no parity item for the model itself on its reference backend: the reference against itself says nothing
    result.stdout.no_fnmatch_line("*none-parity*")
    result.stdout.fnmatch_lines([
        "*model.yaml::host-onnxruntime-none-accuracy PASSED*",
        "*model.yaml::host-onnxruntime-none-size PASSED*",
        "*edgecheck summary*",
        "target host: specs/model.yaml",
        "*verdict*check*backend*recipe*measured*budget*margin",
        # the original's figure beside the artifact's, budget and margin in their units
        "  pass*accuracy*onnxruntime*none*top1 100 % → 100 % (±0 pt)*drop ≤ 1 pt*1 pt under",
    ])


def test_tightened_size_budget_fails_with_metric_value_and_budget(pytester, spec_project):
    spec_project(SPEC.replace("size_mb: 1", "size_mb: 0.0001"))
    result = pytester.runpytest("specs")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*size budget breached: model.yaml target host, backend onnxruntime, recipe none*",
        "*metric*measured*budget*margin*",
        "*size_mb*211 B*≤ 105 B*over by 106 B*BREACH*",  # human units, the margin with its unit
    ])


def test_accuracy_drop_breach_names_points_and_both_accuracies(pytester, spec_project):
    # outputs shifted so that many argmaxes change: a real drop against the original
    spec_project(SPEC.replace("[onnxruntime]", "[perturbed]"), perturb=(-1.0, 0.0))
    result = pytester.runpytest("specs")
    result.assert_outcomes(failed=2, passed=1)
    result.stdout.fnmatch_lines([
        "*accuracy budget breached*backend perturbed*",
        "*accuracy_drop*pt*≤ 1 pt*over by*pt*BREACH*",
        "*accuracy.original = 100 %*",
    ])


def test_relative_drop_is_judged_as_percent_of_original(pytester, spec_project):
    spec = SPEC.replace("accuracy_drop: 1.0", "accuracy_drop: '1%'").replace("      accuracy_min: 95\n", "")
    spec_project(spec.replace("[onnxruntime]", "[perturbed]"), perturb=(-1.0, 0.0))
    result = pytester.runpytest("specs", "-k", "accuracy")
    result.assert_outcomes(failed=1, deselected=2)
    result.stdout.fnmatch_lines(["*accuracy_drop_relative*%*≤ 1 %*over by*%*BREACH*"])
    # the summary shows the drop the budget judges: relative to the original's figure
    result.stdout.fnmatch_lines(["*FAIL*accuracy*perturbed*none*top1 100 % → * % (−* %)*drop ≤ 1 %*over by * %"])


def test_cosine_alone_misses_a_scale_error_and_rel_l2_catches_it(pytester, spec_project):
    # every output 10x too large: cosine stays 1.0, the Euclidean error is huge
    spec = SPEC.replace("[onnxruntime]", "[perturbed]").replace("atol: 1.0e-5, cosine: 0.9999", "cosine: 0.9999")
    spec_project(spec, perturb=(10.0, 0.0))
    passing = pytester.runpytest("specs", "-k", "parity", "--junitxml=cosine.xml")
    passing.assert_outcomes(passed=1, deselected=2)
    properties = _properties(pytester.path / "cosine.xml")["host-perturbed-none-parity"]
    assert float(properties["edge.parity.scores.cosine"]) == pytest.approx(1.0)
    assert float(properties["edge.parity.scores.rel_l2"]) == pytest.approx(9.0, rel=1e-3)
    assert "ignores scale" in properties["edge.note.0"]

    spec_project(spec.replace("cosine: 0.9999", "cosine: 0.9999, rel_l2: 0.01"))
    failing = pytester.runpytest("specs", "-k", "parity")
    failing.assert_outcomes(failed=1, deselected=2)
    failing.stdout.fnmatch_lines(["*parity.scores.rel_l2*9*≤ 0.01*over by 8.99*BREACH*"])


def test_junit_xml_carries_every_figure_and_where_it_was_measured(pytester, spec_project):
    # parity of the model itself is measured on a backend other than its reference (ONNX Runtime)
    spec_project(SPEC.replace("[onnxruntime]", "[onnxruntime, perturbed]"), perturb=(1.0, 0.0))
    pytester.runpytest("specs", "--junitxml=report.xml").assert_outcomes(passed=5)
    cases = _properties(pytester.path / "report.xml")
    accuracy = cases["host-onnxruntime-none-accuracy"]
    assert accuracy["edge.target"] == "host"
    assert accuracy["edge.spec_name"] == "model"  # no name: in the spec: the file name
    assert accuracy["edge.backend"] == "onnxruntime"
    assert accuracy["edge.recipe"] == "none"
    assert float(accuracy["edge.accuracy"]) == 100.0
    assert float(accuracy["edge.accuracy_drop"]) == 0.0
    assert accuracy["edge.accuracy_drop.budget"] == "<= 1 pts"
    assert accuracy["edge.measured_on"] == "host"
    assert accuracy["edge.runtime"].startswith("onnxruntime ")
    parity = cases["host-perturbed-none-parity"]
    for stat in ("max_abs", "max_rel", "rel_l2", "cosine", "snr_db", "top1_agreement", "mean_abs"):
        assert f"edge.parity.scores.{stat}" in parity
    assert float(cases["host-onnxruntime-none-size"]["edge.size_mb"]) > 0


def test_junit_xml_stays_valid_whatever_the_model_names_contain(pytester, spec_project):
    from conftest import make_classifier, make_eval_data

    odd = 'out<&"\x01é\u2603>'
    make_eval_data(pytester.path / "models" / "odd.npz",
                   make_classifier(pytester.path / "models" / "odd.onnx", output_name=odd))
    spec_project(SPEC.replace("clf.onnx", "odd.onnx").replace("eval.npz", "odd.npz")
                 .replace("[onnxruntime]", "[perturbed]"), perturb=(1.0, 0.0))
    pytester.runpytest("specs", "--junitxml=odd.xml").assert_outcomes(passed=3)
    parity = _properties(pytester.path / "odd.xml")["host-perturbed-none-parity"]
    names = [name for name in parity if name.endswith(".cosine")]
    assert names == ['edge.parity.out<&"\\x01é\u2603>.cosine']


def test_k_and_m_select_by_target_backend_recipe_and_check(pytester, spec_project):
    spec_project(SPEC + "  rk3588:\n    backends: [onnxruntime]\n    budgets: {size_mb: 1}\n")
    pytester.runpytest("specs", "-m", "edge(check='accuracy')").assert_outcomes(passed=1, deselected=2)
    pytester.runpytest("specs", "-m", "edge(target='rk3588')").assert_outcomes(passed=1, deselected=2)
    pytester.runpytest("specs", "-m", "edge(backend='onnxruntime', recipe='none')").assert_outcomes(passed=3)
    pytester.runpytest("specs", "-k", "host and size").assert_outcomes(passed=1, deselected=2)
    pytester.runpytest("specs", "--strict-markers", "-k", "rk3588").assert_outcomes(passed=1, deselected=2)


def test_edge_target_selects_spec_sections(pytester, spec_project):
    spec_project(SPEC + "  rk3588:\n    backends: [onnxruntime]\n    budgets: {size_mb: 1}\n")
    pytester.runpytest("specs", "--edge-target=rk3588").assert_outcomes(passed=1)
    pytester.runpytest("specs", "--edge-target=host", "--edge-target=rk3588").assert_outcomes(passed=3)
    pytester.runpytest("specs", "--edge-target=all").assert_outcomes(passed=3)


def test_unknown_edge_target_is_a_usage_error_listing_known_devices(pytester, spec_project):
    spec_project(SPEC)
    result = pytester.runpytest("specs", "--edge-target=rk3589")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    # a near miss is named first, then every device it knows
    result.stderr.fnmatch_lines(["*unknown device 'rk3589'; did you mean rk3588? (known: *, or 'all')*"])
    known = result.stderr.str().split("known: ", 1)[1].split(", or 'all')")[0]
    shipped = ["host", "jetson-nano", "jetson-xavier-nx", "raspberry-pi-4b", "rk3562", "rk3566", "rk3568", "rk3576",
               "rk3588"]
    assert set(shipped) <= set(known.split(", "))


def test_unavailable_backend_skips_with_reason_and_strict_fails(pytester, spec_project):
    # ONNX Runtime's CUDA provider: this onnxruntime build has only the CPU one
    spec_project(SPEC.replace("backends: [onnxruntime]", "backends: [onnxruntime, onnxruntime-cuda]"))
    result = pytester.runpytest("specs", "-rs")
    result.assert_outcomes(passed=2, skipped=3)
    # one row for the three skips, saying which checks, with the whole reason under it
    result.stdout.fnmatch_lines(["*edgecheck summary*", "  skip*3 checks*onnxruntime-cuda*none",
                                 "      onnxruntime-cuda cannot run here: this onnxruntime * has no*",
                                 "*checks: accuracy, parity, size"])
    # -rs names the spec's line (the target's), not edgecheck's source line that raised the skip
    result.stdout.fnmatch_lines(["SKIPPED [[]3[]] specs/model.yaml:*: onnxruntime-cuda cannot run here: this onnxruntime * has no "
                                 "CUDAExecutionProvider (it has *CPUExecutionProvider*): onnxruntime-cuda needs onnxruntime-gpu*"])
    assert "edgecheck/plugin.py" not in result.stdout.str()
    strict = pytester.runpytest("specs", "--edge-strict")
    strict.assert_outcomes(passed=2, failed=3)
    strict.stdout.fnmatch_lines(["*--edge-strict turns this skip into a failure*"])


BAD_SPECS = {
    "not_yaml": ("edgecheck: 1\nmodel: [\n", "not valid YAML"),
    "unknown_key": (SPEC.replace("budgets:", "budgetz:"), "targets.host.budgetz: unknown key 'budgetz' (known: backends, budgets, threads, recipes)"),
    "wrong_type": (SPEC.replace("size_mb: 1", "size_mb: small"), "targets.host.budgets.size_mb: a number of MiB (2**20 bytes), e.g. 0.5; got 'small'"),
    "duplicate_key": (SPEC.replace("size_mb: 1", "size_mb: 1\n      size_mb: 2"), "targets.host.budgets.size_mb: duplicate key 'size_mb'"),
    "missing_model": (SPEC.replace("clf.onnx", "gone.onnx"), "model.path: file not found"),
    "missing_data": (SPEC.replace("eval.npz", "gone.npz"), "data.evaluation.path: file not found"),
    "escaping_path": (SPEC.replace("../models/clf.onnx", "../../outside.onnx"), "outside the project folder"),
    "unknown_input": (SPEC + "inputs: {image: {shape: [1, 4]}}\n", "inputs.image: the model has no input named 'image' (inputs: x)"),
    "unknown_target": (SPEC.replace("  host:", "  hots:"), "targets.hots: unknown device 'hots' (known: host, jetson-nano"),
    "unknown_recipe": (SPEC + "compress: [int3-magic]\n", "compress[[]0[]]: unknown recipe 'int3-magic' (known: fp16, int8-dynamic, int8-static, lowrank, none, prune, rknn-fp16, rknn-int8, tensorrt-fp16, tensorrt-fp32, tensorrt-int8, tflite-fp16, tflite-fp32, tflite-int8-dynamic, tflite-int8-static)"),
}


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_bad_spec_fails_with_file_line_and_field_and_other_specs_still_run(pytester, spec_project, case):
    text, message = BAD_SPECS[case]
    (pytester.path / "outside.onnx").write_bytes((pytester.path / "models" / "clf.onnx").read_bytes())
    spec_project(SPEC, name="good")
    bad = spec_project(text, name="bad")
    before = bad.read_bytes()
    result = pytester.runpytest("specs")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines([f"*invalid spec: *specs/bad.yaml:*{message}*"])
    assert bad.read_bytes() == before  # nothing the user wrote is modified


@pytest.mark.parametrize("content", [b"", b"\x08\x01garbage that is not protobuf" * 10, None],
                         ids=["empty", "garbage", "truncated"])
def test_invalid_model_fails_that_spec_only(pytester, spec_project, content):
    model = pytester.path / "models" / "broken.onnx"
    original = (pytester.path / "models" / "clf.onnx").read_bytes()
    model.write_bytes(original[: len(original) // 2] if content is None else content)
    spec_project(SPEC, name="good")
    spec_project(SPEC.replace("clf.onnx", "broken.onnx"), name="broken")
    result = pytester.runpytest("specs")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*invalid spec: *broken.onnx: *"])


def test_python_tests_can_use_the_device_and_run_fixtures(pytester, spec_project):
    spec_project(SPEC)
    pytester.makepyfile(test_mine="""
        import numpy as np

        def test_runs_on_device(edge_device, edge_run):
            assert edge_device.name in ("host", "rk3588")
            out = edge_run("models/clf.onnx", {"x": np.ones((2, 4), np.float32)}, threads=edge_device.threads_for("onnxruntime"))
            assert out["scores"].shape == (2, 3)
    """)
    result = pytester.runpytest("test_mine.py", "--edge-target=host", "--edge-target=rk3588", "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_runs_on_device[[]host[]] PASSED*", "*test_runs_on_device[[]rk3588[]] PASSED*"])


def test_project_device_profiles_extend_the_built_in_ones(pytester, spec_project):
    pytester.makeini("[pytest]\nedge_devices_dir = devices\n")
    (pytester.path / "devices").mkdir()
    (pytester.path / "devices" / "rk3588-2core.yaml").write_text(
        "name: rk3588-2core\nextends: rk3588\nbackends:\n  onnxruntime: {precisions: [fp32], threads: 2}\n")
    spec_project(SPEC.replace("  host:", "  rk3588-2core:"))
    result = pytester.runpytest("specs", "--edge-target=rk3588-2core", "--junitxml=r.xml")
    result.assert_outcomes(passed=3)  # a device target keeps the original's parity (a board of it may run it)
    assert "2 threads" in _properties(pytester.path / "r.xml")["rk3588-2core-onnxruntime-none-parity"]["edge.runtime"]


def test_a_plain_run_without_specs_leaves_no_trace(pytester):
    pytester.makepyfile(test_plain="def test_ok():\n    assert True\n")
    # pytest-benchmark (a dev dependency) makes .benchmarks/ in every run: not ours to judge
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:benchmark")
    result.assert_outcomes(passed=1)
    assert "edgecheck" not in result.stdout.str().split("collected")[1]
    assert sorted(p.name for p in pytester.path.iterdir()) == ["test_plain.py"]


def test_a_plain_run_imports_nothing_heavy(pytester):
    """Not only importing the plugin: a whole run with no edgecheck setting checks none (nothing to check)."""
    pytester.makeconftest("import sys\n\n"
                          "def pytest_unconfigure(config):\n"
                          "    heavy = sorted(m for m in ('onnx', 'onnxruntime', 'pydantic', 'edgecheck.session', 'edgecheck.execute')"
                          " if m in sys.modules)\n"
                          "    print('HEAVY', heavy)\n")
    pytester.makepyfile(test_plain="def test_ok():\n    assert True\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:benchmark", "-s")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["HEAVY []"])


@pytest.mark.parametrize(("args", "ini", "named"), [
    (["--edge-cache-dir=afile"], "", "--edge-cache-dir: */afile is a file, not a folder*"),
    ([], "edge_cache_dir = afile", "edge_cache_dir: */afile is a file, not a folder*"),
    (["--edge-benchmark-json=missing/latency.json"], "", "--edge-benchmark-json: the folder */missing does not exist*"),
    (["--edge-benchmark-json=."], "", "--edge-benchmark-json: . is a folder*"),
    ([], "edge_spec_patterns =", "edge_spec_patterns: no patterns, so no spec would be collected*"),
    ([], "edge_baseline_dir = afile", "edge_baseline_dir: */afile is a file, not a folder of baselines*"),
])
def test_any_edgecheck_setting_given_is_checked_before_collection(pytester, spec_project, args, ini, named):
    spec_project(SPEC)
    (pytester.path / "afile").write_text("not a folder")
    if ini:
        pytester.makeini(f"[pytest]\n{ini}\n")
    result = pytester.runpytest("specs", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{named}"])
    result.stdout.no_fnmatch_line("*collected*")


def test_every_declared_option_and_ini_setting_counts_as_given(pytester):
    """The settings that trigger the check come from the option group and the ini names, never a hand list."""
    import re

    from edgecheck import plugin

    config = pytester.parseconfig("--edge-no-cache", "--edge-suggest-margin=0.2", "-o", "edge_strict=true")
    assert plugin.given_settings(config) == ["edge_no_cache", "edge_suggest_margin", "edge_strict"]
    assert plugin.given_settings(pytester.parseconfig()) == []
    assert set(plugin._OPTION_DEFAULTS) == {name for name in vars(config.option) if name.startswith("edge_")}
    helped = pytester.runpytest("--help").stdout.str()
    assert set(plugin._INI_DEFAULTS) == set(re.findall(r"^  (edge_\w+)", helped, re.MULTILINE))


def test_plugin_import_loads_nothing_heavy(pytester):
    result = pytester.run(
        __import__("sys").executable, "-c",
        "import sys, edgecheck.plugin; print(sorted(m for m in ('onnx', 'onnxruntime', 'pydantic', 'numpy') "
        "if m in sys.modules))")
    assert result.outlines[-1] == "[]"


def test_xdist_workers_report_into_one_summary(pytester, spec_project):
    pytest.importorskip("xdist")
    spec_project(SPEC)
    result = pytester.runpytest_subprocess("specs", "-n", "2", "--junitxml=x.xml")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*edgecheck summary*", "*pass*size*onnxruntime*none*size 211 B*"])
    assert len(_properties(pytester.path / "x.xml")) == 2


SYNTHETIC = """
edgecheck: 1
model: {path: ../models/fixed.onnx}
data: {parity_samples: 8, seed: 3}
compress: [fp16]
targets:
  host:
    backends: [onnxruntime]
    budgets:
      parity: {atol: 1.0e-2}
"""


def test_without_evaluation_data_parity_uses_seeded_synthetic_inputs(pytester, spec_project):
    from conftest import make_classifier

    make_classifier(pytester.path / "models" / "fixed.onnx", batch=1)
    spec_project(SYNTHETIC)
    pytester.runpytest("specs", "--junitxml=s.xml").assert_outcomes(passed=1)
    parity = _properties(pytester.path / "s.xml")["host-onnxruntime-fp16-parity"]
    assert parity["edge.inputs"] == "synthetic (8 inputs, seed 3)"


def test_dynamic_dimensions_need_a_shape_in_the_spec(pytester, spec_project):
    from conftest import make_classifier

    make_classifier(pytester.path / "models" / "fixed.onnx", batch=1, features=4)
    import onnx

    model = onnx.load(str(pytester.path / "models" / "fixed.onnx"))
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "F"
    onnx.save(model, str(pytester.path / "models" / "fixed.onnx"))
    spec_project(SYNTHETIC)
    result = pytester.runpytest("specs")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*model.yaml:1: inputs.x: model input 'x' has dynamic dimensions *'F'* in *1, F*: "
                                 "give inputs.x.shape in the spec*"])
    spec_project(SYNTHETIC + "inputs: {x: {shape: [1, 4], range: [-1, 1]}}\n")
    pytester.runpytest("specs").assert_outcomes(passed=1)


def test_fixed_batch_models_are_fed_one_sample_at_a_time(pytester, spec_project):
    from conftest import make_classifier, make_eval_data

    make_eval_data(pytester.path / "models" / "fixed.npz",
                   make_classifier(pytester.path / "models" / "fixed.onnx", batch=1), samples=10, wrong=1)
    spec_project(SPEC.replace("clf.onnx", "fixed.onnx").replace("eval.npz", "fixed.npz")
                 .replace("accuracy_min: 95", "accuracy_min: 90"))
    result = pytester.runpytest("specs", "--junitxml=f.xml")
    result.assert_outcomes(passed=2)
    accuracy = _properties(pytester.path / "f.xml")["host-onnxruntime-none-accuracy"]
    assert float(accuracy["edge.accuracy"]) == 90.0  # one label of ten deliberately wrong
    assert accuracy["edge.inputs"] == "fixed.npz (10 of 10 samples)"


def test_a_model_the_runtime_cannot_load_fails_its_checks_with_the_runtime_message(pytester, spec_project):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Frobnicate", ["x"], ["scores"], domain="com.example", name="frob")], "custom",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.example", 1)])
    model.ir_version = 8
    onnx.save(model, str(pytester.path / "models" / "custom.onnx"))
    spec_project(SPEC, name="good")
    spec_project(SPEC.replace("clf.onnx", "custom.onnx"), name="custom")
    result = pytester.runpytest("specs")
    result.assert_outcomes(passed=3, failed=1)  # custom's size check passes: it needs no runtime
    result.stdout.fnmatch_lines(["*host-onnxruntime-none-accuracy: onnxruntime failed while loading custom.onnx: *"
                                 "Frobnicate*"])


def test_custom_metric_is_imported_and_its_errors_are_named(pytester, spec_project):
    pytester.makepyfile(mymetrics="""
        import numpy as np

        def agreement(outputs, labels):
            return float(np.mean(np.argmax(outputs["scores"], axis=1) == labels))

        def boom(outputs, labels):
            return 1 / 0
    """)
    pytester.syspathinsert()
    spec = SPEC.replace("{path: ../models/eval.npz}",
                        "{path: ../models/eval.npz, metric: 'mymetrics:agreement', higher_is_better: true}")
    spec_project(spec.replace("accuracy_min: 95", "accuracy_min: 0.95"))
    result = pytester.runpytest("specs", "-k", "accuracy", "--junitxml=m.xml")
    result.assert_outcomes(passed=1, deselected=1)
    assert float(_properties(pytester.path / "m.xml")["host-onnxruntime-none-accuracy"]["edge.accuracy"]) == 1.0
    spec_project(spec.replace("agreement", "boom"))
    failing = pytester.runpytest("specs", "-k", "accuracy")
    failing.assert_outcomes(failed=1, deselected=1)
    failing.stdout.fnmatch_lines(["*custom metric 'mymetrics:boom' raised ZeroDivisionError: division by zero*"])


def test_yaml_files_outside_the_spec_patterns_are_not_claimed(pytester, spec_project):
    spec_project(INT8_SPEC)
    (pytester.path / "docs" / "specs").mkdir(parents=True)
    (pytester.path / "docs" / "specs" / "api.yaml").write_text("openapi: 3.0.0\n")
    pytester.runpytest().assert_outcomes(passed=5)
    pytester.makeini("[pytest]\nedge_spec_patterns = specs/*.yaml docs/specs/*.yaml\n")
    result = pytester.runpytest()
    result.assert_outcomes(passed=5, failed=1)  # now claimed, and reported as not a spec
    result.stdout.fnmatch_lines(["*api.yaml*edgecheck: required field is missing*"])


def test_a_spec_named_on_the_command_line_outside_the_patterns_runs_and_says_so(pytester, spec_project):
    """Issue 18: a spec outside edge_spec_patterns got pytest's bare "not found"; named, it runs with a note on
    how to make its folder's run collect it. A YAML file that is not a spec is still never claimed."""
    spec_project(INT8_SPEC)
    (pytester.path / "models" / "gate.yaml").write_text((pytester.path / "specs" / "model.yaml").read_text()
                                                        .replace("../models/", ""))
    result = pytester.runpytest("models/gate.yaml", "-W", "default")
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(["*SpecLocationWarning*gate.yaml is outside edge_spec_patterns (specs/*.yaml "
                                 "specs/*.yml)*add a pattern*"])
    (pytester.path / "models" / "other.yaml").write_text("openapi: 3.0.0\n")
    assert pytester.runpytest("models/other.yaml").ret == pytest.ExitCode.USAGE_ERROR  # pytest's "not found"


def test_a_mistyped_backend_is_a_usage_error(pytester, spec_project):
    spec_project(INT8_SPEC)
    result = pytester.runpytest("specs", "--edge-backend=onnxruntim")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--edge-backend: unknown backend 'onnxruntim'; known: *onnxruntime*"])


def test_a_near_miss_of_a_device_or_recipe_name_is_named(pytester, spec_project):
    """A new user's typos (raspbery-pi-4b, fp61) get the name they meant, after the list of known ones."""
    spec_project(SPEC.replace("  host:", "  hots:"), name="target")
    spec_project(SPEC.replace("targets:", "compress: [fp61]\ntargets:"), name="recipe")
    result = pytester.runpytest("specs")
    result.stdout.fnmatch_lines(["*targets.hots: unknown device 'hots' (known: *); did you mean host?*"])
    result.stdout.fnmatch_lines(["*unknown recipe 'fp61' (known: *); did you mean fp16?*"])
