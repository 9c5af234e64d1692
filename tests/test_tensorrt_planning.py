"""What a TensorRT item does before any board: real pytest sessions on real specs and onnx.helper models.

- A .trtjob whose build settings need a precision or a DLA the target device lacks (INT8 or a DLA core on a Jetson
  Nano, whose profile lists fp32/fp16 and no DLA) skips with the device, the entry and the missing capability, before
  any board or build is used (a failure under --edge-strict).
- A recipe's refusal (tensorrt-int8 on a float graph, a dynamic input without shapes, min > max) fails the item with
  the recipe's words even where no budget reads the graph and the backend cannot run here.
- The board-less latency estimate of a .trtjob computes in its build precision.
- onnxruntime-trt and onnxruntime-cuda have operator tables (TensorRT's parser, then ONNX Runtime's fallback).
- The memory-estimate skip offers `source: host` only where the backend runs here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from conftest import make_classifier, make_eval_data
from test_tensorrt_board import calls, project, run, session  # noqa: F401  (run, session: the board session fixtures)

CONFTEST = """\
from edgecheck.backends import register_backend
from edgecheck.formats import register_format
from edgecheck.vendors.tensorrt.backend import TensorrtBackend
from edgecheck.vendors.tensorrt.format import TensorrtJobFormat
import edgecheck.vendors.tensorrt.recipes  # the installed entry points may predate these (pyproject names them)

register_backend(TensorrtBackend)
register_format(TensorrtJobFormat)
"""
SHAPES = "shapes: {x: {min: [1, 4], opt: [1, 4], max: [8, 4]}}"
NO_BOARD = "Jetson board of the boards file"


def _project(pytester: pytest.Pytester, spec: str) -> Path:
    models = pytester.path / "models"
    models.mkdir(exist_ok=True)
    make_eval_data(models / "eval.npz", make_classifier(models / "clf.onnx"))
    rng = np.random.default_rng(0)
    np.savez(models / "calibration.npz", x=rng.uniform(0, 1, size=(16, 4)).astype(np.float32))
    (pytester.path / "specs").mkdir(exist_ok=True)
    (pytester.path / "specs" / "trt.yaml").write_text(spec)
    pytester.makeconftest(CONFTEST)
    return pytester.path


def _records(path: Path) -> dict[tuple[str, str, str], dict]:
    return {(r["target"], r["recipe"], r["check"]): r for r in json.loads(path.read_text())["records"]}


NANO_SPEC = f"""\
edgecheck: 1
model: {{path: ../models/clf.onnx}}
data: {{calibration: ../models/calibration.npz}}
compress:
  - {{name: q8, steps: [int8-static, tensorrt-int8: {{{SHAPES}}}]}}
  - {{name: dla, steps: [tensorrt-fp16: {{dla_core: 0, {SHAPES}}}]}}
  - {{name: gpu16, steps: [tensorrt-fp16: {{{SHAPES}}}]}}
targets:
  %(target)s:
    backends: [tensorrt]
    budgets:
      parity: {{cosine: 0.99}}
"""


def test_int8_and_dla_jobs_skip_on_a_nano_naming_the_device_entry_and_capability(pytester):
    _project(pytester, NANO_SPEC % {"target": "jetson-nano"})
    result = pytester.runpytest("specs", "-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=3)
    result.stdout.fnmatch_lines([
        "*SKIPPED*jetson-nano cannot run entry 'q8' (int8-static -> tensorrt-int8*) on tensorrt: its build settings "
        "ask for INT8, and jetson-nano's TensorRT runs fp32, fp16 only*",
        "*SKIPPED*jetson-nano cannot run entry 'dla' (*) on tensorrt: its build settings ask for DLA core 0, and "
        "jetson-nano has no DLA*",
        f"*SKIPPED*{NO_BOARD}*",  # gpu16: the device can have it; only this machine cannot build it
    ])
    strict = pytester.runpytest("specs", "--edge-strict", "-p", "no:cacheprovider")
    strict.assert_outcomes(failed=3)
    strict.stdout.fnmatch_lines(["*jetson-nano cannot run entry 'q8'*INT8*--edge-strict*"])


def test_the_same_jobs_are_judged_only_by_the_board_on_a_xavier_nx(pytester):
    _project(pytester, NANO_SPEC % {"target": "jetson-xavier-nx"})  # INT8 and two NVDLA cores: nothing refused
    result = pytester.runpytest("specs", "-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=3)
    assert "cannot run entry" not in result.stdout.str()
    result.stdout.fnmatch_lines([f"*SKIPPED*{NO_BOARD}*"])


REFUSED_SPEC = f"""\
edgecheck: 1
model: {{path: ../models/clf.onnx}}
compress:
  - {{name: float-int8, steps: [tensorrt-int8: {{{SHAPES}}}]}}
  - {{name: no-shapes, steps: [tensorrt-fp16]}}
  - {{name: backwards, steps: [tensorrt-fp16: {{shapes: {{x: {{min: [8, 4], opt: [4, 4], max: [1, 4]}}}}}}]}}
  - {{name: fine, steps: [tensorrt-fp16: {{{SHAPES}}}]}}
targets:
  jetson-xavier-nx:
    backends: [tensorrt]
    budgets:
      parity: {{cosine: 0.99}}
"""


@pytest.mark.parametrize("strict", [False, True])
def test_a_recipes_refusal_fails_the_item_without_an_ops_budget_or_a_board(pytester, strict):
    _project(pytester, REFUSED_SPEC)
    result = pytester.runpytest("specs", "-rs", "-p", "no:cacheprovider", *(["--edge-strict"] if strict else []))
    result.assert_outcomes(failed=4 if strict else 3, skipped=0 if strict else 1)
    out = result.stdout.str()
    # each refused entry fails with the recipe's words (the failure's first line), never the board's
    for entry, words in (("float-int8", "recipe 'tensorrt-int8' takes an explicitly quantized graph"),
                         ("no-shapes", "recipe 'tensorrt-fp16': input 'x' has dynamic dimensions"),
                         ("backwards", "recipe 'tensorrt-fp16': shapes.x: shapes: need min <= opt <= max")):
        item = f"jetson-xavier-nx-tensorrt-{entry}-parity"
        assert re.search(rf"_ {item} _+\n{item}: {re.escape(words)}", out), out[-4000:]
    # the good entry still waits for a board
    line = (f"tensorrt cannot run here*{NO_BOARD}*--edge-strict turns this skip into a failure*" if strict else
            f"SKIPPED*tensorrt cannot run here*{NO_BOARD}*")
    result.stdout.fnmatch_lines([line])


def test_a_trtjob_estimate_computes_in_its_build_precision_and_says_so(pytester):
    _project(pytester, f"""\
edgecheck: 1
model: {{path: ../models/clf.onnx}}
compress:
  - tensorrt-fp16: {{{SHAPES}}}
targets:
  jetson-nano:
    backends: [tensorrt]
    budgets:
      latency_ms: {{p50: 1000, source: estimate}}
""")
    pytester.runpytest("specs", "-p", "no:cacheprovider", "--edge-results", "r.json")
    found = _records(pytester.path / "r.json")
    job = found[("jetson-nano", "tensorrt-fp16", "latency")]["result"]
    assert job["facts"]["estimate.precision"] == "fp16"
    assert "tensorrt fp16" in job["facts"]["measured_on"]
    assert any(n.startswith("estimated in fp16: the precision of clf.tensorrt-fp16.trtjob's build settings")
               for n in job["notes"])
    graph = found[("jetson-nano", "none", "latency")]["result"]  # the ONNX model itself: its graph's own FP32
    assert graph["facts"]["estimate.precision"] == "fp32"


def test_memory_estimate_advice_offers_a_host_stand_in_only_where_the_backend_runs_here(pytester):
    _project(pytester, f"""\
edgecheck: 1
model: {{path: ../models/clf.onnx}}
compress:
  - tensorrt-fp16: {{{SHAPES}}}
targets:
  jetson-nano:
    backends: [tensorrt]
    budgets:
      memory_mb: {{peak: 100, source: estimate}}
""")
    result = pytester.runpytest("specs", "-rs", "-p", "no:cacheprovider")
    out = result.stdout.str()
    assert "no memory estimate for a .trtjob artifact" in out
    assert "tensorrt cannot run on this machine, so source: host would skip as well" in out
    assert "or use source: host" not in out


def test_memory_estimate_advice_keeps_the_host_stand_in_for_a_backend_that_runs_here():
    from edgecheck.static_checks import measure_advice

    assert "or use source: host" in measure_advice("onnxruntime", "raspberry-pi-4b")


def _det_model(path: Path) -> None:
    """Relu (TensorRT takes it), Det (TensorRT's parser does not; ONNX Runtime's CPU kernels do), Bernoulli (neither)."""
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"), helper.make_node("Det", ["r"], ["d"], name="det"),
             helper.make_node("Bernoulli", ["r"], ["b"], name="coin")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])],
                              [helper.make_tensor_value_info("d", TensorProto.FLOAT, []),
                               helper.make_tensor_value_info("b", TensorProto.FLOAT, [2, 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def test_onnxruntime_gpu_backends_have_operator_tables(pytester):
    (pytester.path / "models").mkdir()
    _det_model(pytester.path / "models" / "det.onnx")
    (pytester.path / "specs").mkdir()
    (pytester.path / "specs" / "ops.yaml").write_text("""\
edgecheck: 1
model: {path: ../models/det.onnx}
targets:
  jetson-nano:
    backends: [onnxruntime-trt, onnxruntime-cuda]
    budgets:
      ops: {unsupported: 5, fallback: 5}
""")
    pytester.runpytest("specs", "-p", "no:cacheprovider", "--edge-results", "r.json")
    found = {r["backend"]: r["result"] for r in json.loads((pytester.path / "r.json").read_text())["records"]}
    trt = {m["name"]: m["value"] for m in found["onnxruntime-trt"]["measurements"]}
    assert (trt["ops.supported"], trt["ops.fallback"], trt["ops.unsupported"]) == (1, 1, 1)
    assert found["onnxruntime-trt"]["verdict"] == "pass"
    assert found["onnxruntime-trt"]["facts"]["ops.table"].startswith("onnxruntime-trt:")
    assert any("'det' (Det)" in n and "falls back: ONNX Runtime CPU execution provider runs it" in n
               for n in found["onnxruntime-trt"]["notes"])
    cuda = {m["name"]: m for m in found["onnxruntime-cuda"]["measurements"]}
    assert cuda["ops.unsupported"]["value"] == 1  # Bernoulli: no CPU kernel
    # which nodes CUDA runs this table cannot tell: a fallback budget is inconclusive, never a pass
    assert found["onnxruntime-cuda"]["verdict"] == "inconclusive"
    assert "cannot tell which nodes the CUDA provider runs" in cuda["ops.fallback"]["cannot_judge"]


def test_on_a_nano_board_the_int8_and_dla_jobs_are_never_built(pytester, sshd, board_python, run):
    """The trial's case: a jetson-nano board with a STAND-IN trtexec (tests/test_tensorrt_board.py, never TensorRT).
    The fp16 GPU job goes to the board; the INT8 and DLA jobs skip before any build, so trtexec never sees them."""
    root = project(pytester, sshd, board_python)
    np.savez(root / "models" / "calibration.npz",
             x=np.random.default_rng(0).uniform(0, 1, size=(16, 4)).astype(np.float32))
    (root / "specs" / "nano.yaml").write_text(NANO_SPEC.replace("data: {", "data: {parity_samples: 4, ")
                                               % {"target": "jetson-nano"})
    result = run()
    out = result.stdout.str()
    result.assert_outcomes(passed=1, skipped=2)
    assert "jetson-nano cannot run entry 'q8'" in out and "jetson-nano cannot run entry 'dla'" in out, out[-3000:]
    builds = [argv for argv in calls(root) if any(a.startswith("--onnx=") for a in argv)]
    assert len(builds) == 1 and "--fp16" in builds[0]  # the GPU fp16 job only
    assert not any("--int8" in argv or any(a.startswith("--useDLACore") for a in argv) for argv in calls(root))
