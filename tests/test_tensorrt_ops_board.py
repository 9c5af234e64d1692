"""The ops check of a .trtjob on a target a Jetson board serves: judged on the engine the board built (each layer's
placement from the board's timing run), the tensorrt-onnx-parser table's verdict on the ONNX graph as the cross-check.

The board runs use the localhost SSH board (tests/sshd_server.py) with the STAND-IN trtexec (tests/trtexec_standin.py):
it is never TensorRT and nothing here is a TensorRT result. Its "engine" has three layers (a reformat, "matmul + add",
"head kept in fp32"); trtexec_standin.json's "dla" names the layers it lists under [DlaLayer] when a DLA core is asked.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import make_eval_data
from test_tensorrt_board import calls, facts, figures, session, standin_board  # noqa: F401  (session: a fixture)

REPO = Path(__file__).resolve().parents[1]
SHAPES = "shapes: {x: {min: [1, 4], opt: [1, 4], max: [64, 4]}}"


def classifier_with_det(path: Path) -> tuple:
    """make_classifier's x[N, 4] -> matmul -> add -> scores[N, 3], plus a second output det[N] = Det(x as 2x2):
    Det is 'N' in onnx-tensorrt's support matrix, so the shipped table calls node 'det1' unsupported."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = rng.normal(size=(4, 3)).astype(np.float32)
    bias = rng.normal(size=(3,)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["mm"], name="matmul"),
         helper.make_node("Add", ["mm", "B"], ["scores"], name="add"),
         helper.make_node("Reshape", ["x", "square"], ["sq"], name="reshape1"),
         helper.make_node("Det", ["sq"], ["det"], name="det1")],
        "classifier",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 3]),
         helper.make_tensor_value_info("det", TensorProto.FLOAT, ["N"])],
        [numpy_helper.from_array(weight, "W"), numpy_helper.from_array(bias, "B"),
         numpy_helper.from_array(np.array([-1, 2, 2], dtype=np.int64), "square")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return weight, bias


def lab(root: Path, sshd, python: Path, device: str, spec: str, *, version: str = "8.5.2",
        dla: list[str] | None = None, board: bool = True) -> Path:
    (root / "models").mkdir(exist_ok=True)
    make_eval_data(root / "models" / "eval.npz", classifier_with_det(root / "models" / "clf.onnx"), samples=16)
    (root / "specs").mkdir(exist_ok=True)
    (root / "specs" / "t.yaml").write_text(spec)
    standin_board(root, sshd, python, device, {"version": version, "dla": dla or []})
    (root / "pytest.ini").write_text("[pytest]\n" + ("edge_boards = boards.yaml\n" if board else ""))
    return root


def ops_record(path: Path, recipe: str) -> dict:
    (record,) = [r for r in json.loads(path.read_text())["records"] if r.get("recipe") == recipe and r["check"] == "ops"]
    return record


def spec_of(target: str, entry: str, budgets: str) -> str:
    return f"""\
edgecheck: 1
name: t
model: {{path: ../models/clf.onnx}}
data:
  evaluation: {{path: ../models/eval.npz, labels: labels, metric: top1}}
  parity_samples: 4
compress:
  - {entry}
targets:
  {target}:
    backends: [tensorrt]
    budgets:
{budgets}"""


def test_a_layer_fallen_back_from_the_dla_fails_fallback_0_naming_it(pytester, sshd, board_python, session):
    spec = spec_of("jetson-xavier-nx", f"{{name: trt-dla, steps: [tensorrt-fp16: {{dla_core: 0, {SHAPES}}}]}}",
                   "      ops: {fallback: 0}\n"
                   "      latency_ms: {p50: 100, samples: 30, rounds: 1, warmup_runs: 1, warmup_s: 0}\n")
    root = lab(pytester.path, sshd, board_python, "jetson-xavier-nx", spec, dla=["matmul + add"])
    out = session("jetson-xavier-nx").stdout.str()
    ops = ops_record(root / "r.json", "trt-dla")
    result = ops["result"]
    assert result["verdict"] == "fail", out[-4000:]
    values = figures(ops)
    assert values["ops.fallback"] == 1 and values["ops.unsupported"] == 0 and values["ops.nodes"] == 3, values
    assert any(n.startswith("fallback: node 'head kept in fp32'") and "GPU (fallback from DLA)" in n
               for n in result["notes"]), result["notes"]
    said = facts(ops)
    assert said["measured_on"].startswith("jetson-xavier-nx board b1 (") and "TensorRT 8.5.2" in said["measured_on"]
    assert said["ops.table"].startswith("engine placement (trtexec --exportLayerInfo / build log on jetson-xavier-nx "
                                        "board b1): the authority, checked against tensorrt-onnx-parser"), said
    # the table calls det1 unsupported and the stand-in "built" the engine: said, the engine's placement wins
    assert any(n.startswith("disagreement: det1 (Det): tensorrt-onnx-parser says unsupported")
               and "yet TensorRT 8.5.2 on jetson-xavier-nx board b1 built the engine" in n for n in result["notes"])
    assert any(n.startswith("DLA core 0 asked; engine layers per device:") for n in result["notes"])
    # the board's work is the latency check's: one build, one timed run (with the latency plan), shared
    seen = calls(root)
    assert sum(1 for argv in seen if any(a.startswith("--onnx=") for a in argv)) == 1, seen
    timed = [argv for argv in seen if any(a.startswith("--exportTimes=") for a in argv)]
    assert len(timed) == 1 and "--iterations=30" in timed[0], timed
    assert "--useDLACore=0" in next(argv for argv in seen if any(a.startswith("--onnx=") for a in argv))


def test_the_engine_placement_passes_what_the_table_calls_unsupported_and_no_board_keeps_the_table(
        pytester, sshd, board_python, session):
    spec = spec_of("jetson-nano", f"tensorrt-fp16: {{{SHAPES}}}", "      ops: {unsupported: 0}\n")
    root = lab(pytester.path, sshd, board_python, "jetson-nano", spec)
    out = session("jetson-nano").stdout.str()
    ops = ops_record(root / "r.json", "tensorrt-fp16")
    assert ops["result"]["verdict"] == "pass", out[-4000:]
    assert figures(ops)["ops.unsupported"] == 0 and figures(ops)["ops.fallback"] == 0
    notes = ops["result"]["notes"]
    (line,) = [n for n in notes if n.startswith("disagreement:")]
    assert line.startswith("disagreement: det1 (Det): tensorrt-onnx-parser says unsupported")
    assert line.endswith("yet TensorRT 8.5.2 on jetson-nano board b1 built the engine (the node was fused, folded "
                         "or renamed)"), line
    assert facts(ops)["measured_on"].startswith("jetson-nano board b1 (")
    # a session without the board: the table judges the graph, as before (det1 unsupported: a failure), no board work
    before = len(calls(root))
    (root / "pytest.ini").write_text("[pytest]\n")
    out = session("jetson-nano").stdout.str()
    ops = ops_record(root / "r.json", "tensorrt-fp16")
    assert ops["result"]["verdict"] == "fail", out[-4000:]
    assert figures(ops)["ops.unsupported"] == 1
    assert any(n.startswith("unsupported: node 'det1' (Det)") for n in ops["result"]["notes"])
    assert facts(ops)["measured_on"].startswith("nowhere: static analysis")
    assert len(calls(root)) == before


def test_tensorrt_8_0_writes_no_layer_info_so_the_table_judges_and_says_why(pytester, sshd, board_python, session):
    spec = spec_of("jetson-nano", f"tensorrt-fp16: {{{SHAPES}}}", "      ops: {unsupported: 0}\n")
    root = lab(pytester.path, sshd, board_python, "jetson-nano", spec, version="8.0.1")
    out = session("jetson-nano").stdout.str()
    ops = ops_record(root / "r.json", "tensorrt-fp16")
    result = ops["result"]
    assert result["verdict"] == "fail", out[-4000:]  # the table's verdict: det1 unsupported
    assert figures(ops)["ops.unsupported"] == 1
    assert result["notes"][0].startswith("judged by the tensorrt-onnx-parser table on the ONNX graph, not on the "
                                         "engine: the engine jetson-nano board b1 built gave no placement per layer"), \
        result["notes"]
    assert "trtexec 8.0 writes none" in result["notes"][0] and "TensorRT 8.2 or later" in result["notes"][0]
    assert facts(ops)["measured_on"].startswith("nowhere: static analysis")
    assert facts(ops)["ops.board"].startswith("jetson-nano board b1 (")
    builds = [argv for argv in calls(root) if any(a.startswith("--onnx=") for a in argv)]
    assert len(builds) == 1 and "--nvtxMode=verbose" in builds[0]


def test_a_failed_build_fails_the_ops_check_with_the_builds_log(pytester, sshd, board_python, session):
    spec = spec_of("jetson-nano", f"tensorrt-fp16: {{{SHAPES}}}", "      ops: {unsupported: 0}\n")
    root = lab(pytester.path, sshd, board_python, "jetson-nano", spec)
    config = root / "tools" / "trtexec_standin.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "fail_build": True}))
    out = session("jetson-nano").stdout.str()
    ops = ops_record(root / "r.json", "tensorrt-fp16")
    assert ops["outcome"] == "failed" or (ops.get("result") or {}).get("verdict") == "fail", ops
    assert "the stand-in fails every build" in out and "build.log" in out, out[-4000:]


# --- the pieces, without a board -----------------------------------------------------------------------------------

def test_the_layer_records_are_capped_and_read_back_checked():
    from edgecheck.vendors.tensorrt import timing
    from edgecheck.vendors.tensorrt.layers import DLA, FALLBACK, GPU, LayerPlacement, from_records

    placed = [LayerPlacement(f"layer{i}", (GPU, DLA, FALLBACK)[i % 3], "FP16", "CaskConvolution", "why")
              for i in range(timing.MAX_LAYERS + 5)]
    records = timing.layer_records(placed)
    assert len(records) == timing.MAX_LAYERS and json.dumps(records)
    assert from_records(records)[:3] == placed[:3]
    long = LayerPlacement("n" * (timing.MAX_LAYER_NAME + 50), GPU, None)
    assert len(timing.layer_records([long])[0]["name"]) == timing.MAX_LAYER_NAME
    for bad, field in (("x", "layers: a list"), ([1], "layers[0]: a mapping"), ([{"device": GPU}], "layers[0].name"),
                       ([{"name": "a", "device": "CPU"}], "layers[0].device"),
                       ([{"name": "a", "device": GPU, "precision": 16}], "layers[0].precision")):
        with pytest.raises(ValueError, match=field.replace("[", r"\[").replace("]", r"\]")):
            from_records(bad)


def test_a_supported_node_whose_layer_fell_back_from_the_dla_is_a_disagreement_the_other_way():
    from onnx import TensorProto, helper

    from edgecheck.analysis.graph import analyse
    from edgecheck.analysis.ops import classify
    from edgecheck.analysis.optable import read_table
    from edgecheck.vendors.tensorrt import TABLES
    from edgecheck.vendors.tensorrt.layers import DLA, FALLBACK, LayerPlacement, placement_report

    table = read_table(Path(TABLES) / "tensorrt-onnx-parser.yaml")
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"], name="relu1"), helper.make_node("Sigmoid", ["r"], ["y"], name="sig1")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    verdicts = classify(analyse(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])), table).verdicts
    engine = [LayerPlacement("relu1", DLA, "FP16"), LayerPlacement("sig1", FALLBACK, "FP16", None, "the log says so")]
    report, disagreements = placement_report(engine, table, verdicts, "TensorRT 8.5.2 on nx")
    assert report.counts()["fallback"] == 1
    (line,) = disagreements
    assert line.startswith("sig1 (Sigmoid): tensorrt-onnx-parser says supported, yet TensorRT 8.5.2 on nx ran its "
                           "layer 'sig1' on the GPU, not on the DLA core asked for"), line
