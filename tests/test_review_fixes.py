"""Inputs and situations that once gave a wrong verdict or a raw traceback (found in review)."""

from __future__ import annotations

import tempfile

import numpy as np
import pytest
from conftest import junit_properties, make_classifier, make_eval_data

SPEC = """
edgecheck: 1
model: {path: ../models/clf.onnx}
data:
  evaluation: {path: ../models/eval.npz}
compress: [int8-dynamic]
targets:
  host:
    backends: [onnxruntime]
    budgets:
      accuracy_drop: 50
      parity: {rel_l2: 0.5}
      size_mb: 1
"""


def _properties(path) -> dict[str, dict[str, str]]:
    return junit_properties(path, qualified=True)


def test_two_specs_with_the_same_name_and_model_file_name_never_share_artifacts(pytester, spec_project):
    (pytester.path / "other").mkdir()
    make_eval_data(pytester.path / "other" / "eval.npz", make_classifier(pytester.path / "other" / "clf.onnx",
                                                                         features=64, classes=10))
    spec_project("name: same\n" + SPEC, name="a")
    spec_project("name: same\n" + SPEC.replace("../models/", "../other/"), name="b")
    pytester.runpytest("specs", "--junitxml=r.xml").assert_outcomes(passed=12)
    sizes = {case: float(props["edge.size_bytes"]) for case, props in _properties(pytester.path / "r.xml").items()
             if case.endswith("int8-dynamic-size")}
    assert len(set(sizes.values())) == 2, sizes  # each spec measured its own artifact


def test_scratch_artifacts_are_removed_at_the_end_of_the_session(pytester, spec_project, monkeypatch):
    scratch = pytester.path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where the in-process session makes its folder
    spec_project(SPEC)
    pytester.runpytest("specs").assert_outcomes(passed=6)
    # only the per-machine timing lock folder is meant to outlive the session
    assert [p.name for p in scratch.iterdir() if not p.name.startswith("edgecheck-locks-")] == []


def test_zero_evaluation_samples_fail_instead_of_passing_parity(pytester, spec_project):
    np.savez(pytester.path / "models" / "empty.npz", x=np.zeros((0, 4), np.float32), labels=np.zeros(0, np.int64))
    spec_project(SPEC.replace("eval.npz", "empty.npz"))
    result = pytester.runpytest("specs", "-k", "parity")
    result.assert_outcomes(failed=1)  # refused once, when the spec loads
    result.stdout.fnmatch_lines(["invalid spec: *data.evaluation.path: *empty.npz: labels array 'labels' holds no samples*"])


@pytest.mark.parametrize("batch, used", [(64, 64), (48, 96)])
def test_models_with_a_fixed_batch_over_32_get_whole_batches(pytester, spec_project, batch, used):
    make_eval_data(pytester.path / "models" / "b.npz",
                   make_classifier(pytester.path / "models" / "b.onnx", batch=batch), samples=100)
    spec_project(SPEC.replace("clf.onnx", "b.onnx").replace("eval.npz", "b.npz"))
    pytester.runpytest("specs", "--junitxml=b.xml").assert_outcomes(passed=6)
    inputs = _properties(pytester.path / "b.xml")["specs.model.yaml::host-onnxruntime-none-accuracy"]["edge.inputs"]
    assert inputs == f"b.npz ({used} of 100 samples)"  # whole batches only


@pytest.mark.parametrize("bound, message", [
    ("accuracy_min: 0.95", "top1 is in percent, 0-100: 0.95 cannot be meant (did you mean 95?)"),
    ("accuracy_min: 120", "top1 is in percent, 0-100: 120 cannot be meant"),
])
def test_accuracy_bounds_in_the_wrong_unit_are_refused(pytester, spec_project, bound, message):
    spec_project(SPEC.replace("accuracy_drop: 50", f"accuracy_drop: 50\n      {bound}"))
    result = pytester.runpytest("specs")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"*targets.host.budgets.accuracy_min: {message}*"])


@pytest.mark.parametrize("labels, message", [
    (np.eye(3, dtype=np.float32)[np.zeros(64, int)], "has shape ?64, 3?; top1 needs one class index per sample"),
    (np.array(["a"] * 64), "is str32; top1 needs integer class indices"),
])
def test_labels_of_the_wrong_kind_are_a_named_data_error(pytester, spec_project, labels, message):
    x = np.random.default_rng(0).uniform(size=(64, 4)).astype(np.float32)
    np.savez(pytester.path / "models" / "odd.npz", x=x, labels=labels)
    spec_project(SPEC.replace("eval.npz", "odd.npz"))
    result = pytester.runpytest("specs", "-k", "accuracy")
    result.assert_outcomes(failed=1)  # refused once, when the spec loads
    result.stdout.fnmatch_lines([f"invalid spec: *odd.npz: labels array 'labels' {message}*"])


def test_yaml_files_outside_the_spec_patterns_are_not_claimed(pytester, spec_project):
    spec_project(SPEC)
    (pytester.path / "docs" / "specs").mkdir(parents=True)
    (pytester.path / "docs" / "specs" / "api.yaml").write_text("openapi: 3.0.0\n")
    pytester.runpytest().assert_outcomes(passed=6)
    pytester.makeini("[pytest]\nedge_spec_patterns = specs/*.yaml docs/specs/*.yaml\n")
    result = pytester.runpytest()
    result.assert_outcomes(passed=6, failed=1)  # now claimed, and reported as not a spec
    result.stdout.fnmatch_lines(["*api.yaml*edgecheck: required field is missing*"])


def test_a_mistyped_backend_is_a_usage_error(pytester, spec_project):
    spec_project(SPEC)
    result = pytester.runpytest("specs", "--edge-backend=onnxruntim")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--edge-backend: unknown backend 'onnxruntim'; known: *onnxruntime*"])


def test_a_backend_whose_availability_raises_skips_with_the_reason(pytester, spec_project):
    spec_project(SPEC.replace("[onnxruntime]", "[onnxruntime, flaky]"))
    pytester.makeconftest("""
        from edgecheck.backends import register_backend
        from edgecheck.vendors.onnxruntime.backend import OnnxRuntimeBackend

        @register_backend
        class Flaky(OnnxRuntimeBackend):
            name = "flaky"

            def availability(self):
                raise OSError("driver not loaded")
    """)
    result = pytester.runpytest("specs", "-rs")
    result.assert_outcomes(passed=6, skipped=6)
    result.stdout.fnmatch_lines(["*flaky cannot run here: availability() raised OSError: driver not loaded*"])


def test_backends_registered_in_one_session_do_not_leak_into_the_next(pytester, spec_project):
    test_a_backend_whose_availability_raises_skips_with_the_reason(pytester, spec_project)
    (pytester.path / "conftest.py").unlink()
    result = pytester.runpytest("specs")
    result.assert_outcomes(failed=1)  # 'flaky' is unknown again: the spec is refused
    result.stdout.fnmatch_lines(["*unknown backend 'flaky'*"])
