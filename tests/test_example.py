"""The shipped example, run the way the README runs it."""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import junit_properties as _cases

from edgecheck.envs import find_env


def _tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_example_passes_for_rk3588_and_reports_its_figures(pytester, digits_project):
    before = _tree_digest(digits_project)
    result = pytester.runpytest("specs", "--edge-target=rk3588", "--junitxml=report.xml")
    # 10 ONNX artifacts (none, candidate and 8 compress entries) and 3 .rknn ones. onnxruntime runs
    # accuracy, parity, size and ops for real (40) and judges latency on the labelled estimate (9: fp16's
    # latency is dropped by the spec, the profile has no FP16 cost model for the CPU). rknn judges each ONNX
    # artifact statically: ops against Rockchip's table (10) and the estimate (9). Each .rknn artifact gets
    # accuracy, parity, size, the compiler's placement, latency and memory (18), or, without the toolkit's
    # environment, 18 skips that say how to create it. Nothing else skips: the example passes --edge-strict.
    rknn = find_env("rknn") is not None
    result.assert_outcomes(passed=68 + (18 if rknn else 0), skipped=0 if rknn else 18)
    cases = _cases(digits_project / "report.xml")
    estimated = cases["rk3588-rknn-int8-static-latency"]
    assert estimated["edge.measured_on"].startswith("estimate, not a measurement: analytical cost model for rk3588 "
                                                    "rknn int8 (calibrated")
    # the digits CNN is far below the calibration's smallest model: a lower bound, from the estimate up (issue 17)
    assert float(estimated["edge.latency.estimate.p95.range_low"]) == float(estimated["edge.latency.estimate.p95"])
    assert estimated["edge.latency.estimate.p95.range_high"] == "inf"
    assert "edge.latency.p95" not in estimated  # never named like a measurement
    ops = cases["rk3588-rknn-int8-static-ops"]
    assert ops["edge.ops.table"].startswith("rknn-rk3588: ") and ops["edge.ops.unsupported"] == "0"
    assert ops["edge.measured_on"].startswith("nowhere: static analysis")
    assert int(ops["edge.model.macs"]) > 0 and ops["edge.model.precision"] == "int8"
    dynamic = cases["rk3588-rknn-int8-dynamic-ops"]  # ORT's dynamic quantization is not on Rockchip's list
    assert int(dynamic["edge.ops.unsupported"]) > 0 and "DynamicQuantizeLinear" in dynamic["edge.note.0"]
    recipes = {c["edge.recipe"] for c in cases.values()}
    assert recipes == {"none", "candidate", "fp16", "int8-dynamic", "int8-static", "int8-static-pc", "prune",
                       "lowrank", "slim-int8", "candidate+int8-static", "rknn-fp16", "rknn-int8", "rknn-int8-mmse"}
    steps = {c["edge.recipe"]: c.get("edge.recipe.steps") for c in cases.values()
             if c["edge.backend"] == "onnxruntime" and c["edge.check"] in ("accuracy", "parity", "size")}
    assert steps["slim-int8"] == "prune(sparsity=0.125, structured=True) -> int8-static"
    assert steps["candidate"] == "candidate (student.onnx)"
    slim = cases["rk3588-onnxruntime-slim-int8-size"]
    assert float(slim["edge.size_ratio"]) >= 3 and slim["edge.size_ratio.budget"] == ">= 3 x"
    assert int(slim["edge.parameters"]) < int(slim["edge.parameters.original"])  # channels really removed
    student = cases["rk3588-onnxruntime-candidate-accuracy"]
    assert student["edge.artifact"] == "student.onnx" and float(student["edge.accuracy"]) >= 95
    fp16 = cases["rk3588-onnxruntime-fp16-parity"]
    assert fp16["edge.parity.logits.rel_l2.budget"] == "<= 0.005 (rel_l2)"  # the per-recipe override
    original = cases["rk3588-onnxruntime-none-accuracy"]
    assert float(original["edge.accuracy"]) >= 95.0
    static = cases["rk3588-onnxruntime-int8-static-accuracy"]
    assert float(static["edge.accuracy.original"]) == float(original["edge.accuracy"])
    size = cases["rk3588-onnxruntime-int8-static-size"]
    assert float(size["edge.size_ratio"]) > 2.0  # INT8 weights: about 2.7x smaller on this small model
    names = {case.get("name") for case in ET.parse(digits_project / "report.xml").iter("testcase")}
    assert "rk3588-rknn-none-size" not in names  # rknn runs .rknn files; ONNX ones only by the graph
    if rknn:
        parity = cases["rk3588-rknn-rknn-int8-parity"]
        assert parity["edge.measured_on"].startswith("rknn-toolkit2 simulator")  # never called a board figure
        assert float(parity["edge.parity.logits.rel_l2"]) < 0.08
        ops = cases["rk3588-rknn-rknn-int8-ops"]
        assert ops["edge.ops.table"].startswith("rknn-toolkit2 2.5.0 building for rk3588: the compiler's placement")
        assert ops["edge.ops.fallback"] == "1" and "Reshape" in ops["edge.note.0"]
        latency = cases["rk3588-rknn-rknn-int8-latency"]
        assert latency["edge.measured_on"].startswith("estimate, not a measurement: rknn-toolkit2")
        assert float(latency["edge.latency.estimate.cycles"]) > 0
        memory = cases["rk3588-rknn-rknn-int8-memory"]
        assert 0 < float(memory["edge.memory.estimate.peak"]) < 1
    after = {k: v for k, v in _tree_digest(digits_project).items() if k.startswith(("examples/", "specs/"))}
    assert after == before  # the example and the spec are never modified


def test_lowering_accuracy_drop_below_the_real_drop_fails_readably(pytester, digits_project):
    spec = digits_project / "specs" / "digits.yaml"
    spec.write_text(spec.read_text().replace("accuracy_drop: 1.0 ", "accuracy_drop: 0.1 "))
    result = pytester.runpytest("specs", "--edge-target=rk3588", "-k", "accuracy")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([
        "*accuracy budget breached: digits.yaml target rk3588, backend onnxruntime, recipe int8-*",
        "*accuracy_drop*pt*≤ 0.1 pt*over by * pt*BREACH*",
    ])
