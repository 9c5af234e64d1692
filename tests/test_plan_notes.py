"""A compress entry that no target of its spec runs does not vanish silently: the run says, at the entry's
line, which targets were asked, what format the entry makes and which backends serve those targets."""

from __future__ import annotations

import numpy as np
import pytest

SPEC = """\
edgecheck: 1
model: {{path: ../models/clf.onnx}}
data:
  calibration: ../models/calibration.npz
compress:
  - fp16
  - {entry}
targets:
{targets}
"""
HOST = "  host:\n    backends: [onnxruntime]\n    budgets: {size_mb: 1}\n"


@pytest.fixture
def calibrated(spec_project, pytester):
    x = np.random.default_rng(0).uniform(0, 1, size=(16, 4)).astype(np.float32)
    np.savez(pytester.path / "models" / "calibration.npz", x=x)
    return spec_project


def test_an_rknn_entry_on_targets_that_cannot_run_it_is_noted(pytester, calibrated):
    calibrated(SPEC.format(entry="rknn-int8", targets=HOST))
    result = pytester.runpytest("specs", "-p", "no:cacheprovider", "-k", "size")
    result.assert_outcomes(passed=2)  # the model and fp16: rknn-int8 has no item
    assert "rknn-int8-size" not in result.stdout.str()
    text = " ".join(result.stdout.str().split())
    assert "EntryNotRunWarning" in text
    assert ("model.yaml: compress[1] rknn-int8 makes .rknn files built for rk3588, which none of this spec's "
            "targets runs (host: onnxruntime runs .onnx): it is neither built nor checked; add a target that runs "
            "them (rk3588), or remove the entry") in text
    result.stdout.fnmatch_lines(["*specs/model.yaml:7: EntryNotRunWarning*"])  # at the entry's own line


def test_an_entry_built_for_another_chip_is_noted(pytester, calibrated):
    targets = HOST + "  rk3588:\n    backends: [rknn]\n    budgets: {size_mb: 1}\n"
    calibrated(SPEC.format(entry="{name: rknn-66, steps: [rknn-fp16: {platform: rk3566}]}", targets=targets)
               .replace("  - fp16\n", "  - rknn-fp16\n"))
    result = pytester.runpytest("specs", "-p", "no:cacheprovider", "--collect-only", "-q")
    text = " ".join(result.stdout.str().split())
    assert "compress[1] rknn-66 makes .rknn files built for rk3566, which none of this spec's targets runs" in text
    assert "rk3588: rknn runs .rknn built for rk3588" in text and "add a target that runs them (rk3566)" in text


def test_an_entry_some_target_runs_is_not_noted(pytester, calibrated):
    targets = HOST + "  rk3588:\n    backends: [rknn]\n    budgets: {size_mb: 1}\n"
    calibrated(SPEC.format(entry="rknn-int8", targets=targets))
    result = pytester.runpytest("specs", "-p", "no:cacheprovider", "--collect-only", "-q",
                                "--edge-target=host")  # this run selects host only: the spec still runs it
    assert "EntryNotRunWarning" not in result.stdout.str()
    assert "host-onnxruntime-fp16-size" in result.stdout.str()
