"""The shipped example, run the way the README runs it."""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import junit_properties as _cases


def _tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_example_passes_for_rk3588_and_reports_its_figures(pytester, digits_project):
    before = _tree_digest(digits_project)
    result = pytester.runpytest("specs", "--edge-target=rk3588", "--junitxml=report.xml")
    # rknn has no backend yet: its 50 checks skip with the reason; onnxruntime's run for real:
    # 10 artifacts (none, candidate and 8 compress entries) x 3 checks; the 20 rk3588 latency and memory
    # checks skip, as no rk3588 board is attached and a host figure is not a board's
    result.assert_outcomes(passed=30, skipped=70)
    result.stdout.fnmatch_lines(["*10 latency*onnxruntime*all*cannot judge rk3588 latency here: no rk3588 to measure on*"])
    cases = _cases(digits_project / "report.xml")
    recipes = {c["edge.recipe"] for c in cases.values()}
    assert recipes == {"none", "candidate", "fp16", "int8-dynamic", "int8-static", "int8-static-pc", "prune",
                       "lowrank", "slim-int8", "candidate+int8-static"}
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
    assert "skipped" in {child.tag for case in ET.parse(digits_project / "report.xml").iter("testcase")
                         if case.get("name") == "rk3588-rknn-none-size" for child in case}
    after = {k: v for k, v in _tree_digest(digits_project).items() if k.startswith(("examples/", "specs/"))}
    assert after == before  # the example and the spec are never modified


def test_lowering_accuracy_drop_below_the_real_drop_fails_readably(pytester, digits_project):
    spec = digits_project / "specs" / "digits.yaml"
    spec.write_text(spec.read_text().replace("accuracy_drop: 1.0 ", "accuracy_drop: 0.1 "))
    result = pytester.runpytest("specs", "--edge-target=rk3588", "-k", "accuracy")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([
        "*accuracy budget breached: digits.yaml target rk3588, backend onnxruntime, recipe int8-*",
        "*accuracy_drop*pts*<= 0.1 pts*BREACH*",
    ])
