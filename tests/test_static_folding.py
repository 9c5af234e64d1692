"""Operator verdicts that agree with the converters: shape arithmetic folds away at fixed input shapes
(Range up to a dimension, a Slice of a shape vector), and LiteRT's default delegate runs MediaPipe's
custom ops. Small models built here with onnx.helper and the TFLite schema's object API."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgecheck.analysis.graph import analyse
from edgecheck.analysis.ops import classify
from edgecheck.analysis.optable import load_tables

FLOAT, INT64 = TensorProto.FLOAT, TensorProto.INT64


@pytest.fixture(scope="module")
def rknn():
    return load_tables()["rknn-rk3588"]


def _ints(name, values):
    return numpy_helper.from_array(np.array(values, dtype=np.int64), name)


def _model(nodes, initializers, batch="N"):
    x = helper.make_tensor_value_info("x", FLOAT, [batch, 3, 8, 8])
    y = helper.make_tensor_value_info("y", FLOAT, None)
    graph = helper.make_graph(nodes, "g", [x], [y], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _range_model(limit_from_values: bool = False):
    """y = x + Cast(Range(0, W, 1)): W is x's last dimension (from Shape), or a value x holds."""
    if limit_from_values:
        limit = [helper.make_node("ReduceMax", ["x"], ["m"], name="peak", keepdims=0),
                 helper.make_node("Cast", ["m"], ["n"], name="peak_int", to=INT64)]
    else:
        limit = [helper.make_node("Shape", ["x"], ["s"], name="shape"),
                 helper.make_node("Gather", ["s", "three"], ["n"], name="width", axis=0)]
    nodes = limit + [helper.make_node("Range", ["zero", "n", "one"], ["r"], name="positions"),
                     helper.make_node("Cast", ["r"], ["rf"], name="to_float", to=FLOAT),
                     helper.make_node("Add", ["x", "rf"], ["y"], name="add")]
    return _model(nodes, [_ints("three", 3), _ints("zero", 0), _ints("one", 1)])


def _verdicts(report):
    return {v.node.name: v for v in report.verdicts}


def test_a_range_up_to_a_dimension_folds_away_and_is_supported_on_rk3588(rknn):
    report = classify(analyse(_range_model(), {"x": (1, 3, 8, 8)}), rknn)
    found = _verdicts(report)
    assert found["positions"].status == "supported"
    assert "tensor shapes" in found["positions"].reason and "folded away" in found["positions"].reason
    assert report.counts()["unsupported"] == 0
    assert report.notes == ["4 of 5 nodes fold away at conversion and are not judged as runtime operators: 4 compute "
                            "only from tensor shapes at the input shapes used (x [1, 3, 8, 8]): Cast, Gather, "
                            "Range, Shape"]


def test_a_range_up_to_a_value_computed_at_run_time_stays_unsupported(rknn):
    found = _verdicts(classify(analyse(_range_model(limit_from_values=True), {"x": (1, 3, 8, 8)}), rknn))
    assert found["positions"].status == "unsupported" and "Not Supported" in found["positions"].reason
    assert not any("folded" in v.reason for v in found.values())


def test_a_slice_of_a_cast_shape_vector_folds_instead_of_breaking_the_batch_rule(rknn):
    """Shape → Cast → Slice [2:4] → Cast → Concat → Reshape: the Slice reads a 4-element shape vector, not a batch."""
    nodes = [helper.make_node("Shape", ["x"], ["s"], name="shape"),
             helper.make_node("Cast", ["s"], ["sf"], name="cast", to=FLOAT),
             helper.make_node("Slice", ["sf", "start", "end"], ["hw"], name="spatial"),
             helper.make_node("Cast", ["hw"], ["hwi"], name="to_int", to=INT64),
             helper.make_node("Concat", ["lead", "hwi"], ["target"], name="target_shape", axis=0),
             helper.make_node("Reshape", ["x", "target"], ["y"], name="reshape")]
    model = _model(nodes, [_ints("start", [2]), _ints("end", [4]), _ints("lead", [1, 3])])
    graph = analyse(model)  # N not given: taken as 1, and the note says the folded values rest on it
    report = classify(graph, rknn)
    found = _verdicts(report)
    assert found["spatial"].status == "supported" and "tensor shapes" in found["spatial"].reason
    assert report.counts() == {"supported": 6, "constraint": 0, "fallback": 0, "unsupported": 0}
    assert "some of those shapes were assumed (input 'x' dimension 0 (N) taken as 1)" in report.notes[0]


def test_a_slice_of_real_data_with_a_batch_of_two_still_breaks_the_batch_rule(rknn):
    nodes = [helper.make_node("Slice", ["x", "start", "end"], ["y"], name="crop")]
    report = classify(analyse(_model(nodes, [_ints("start", [0]), _ints("end", [1])]), {"x": (2, 3, 8, 8)}), rknn)
    assert _verdicts(report)["crop"].status == "constraint" and "batchsize: 1" in _verdicts(report)["crop"].reason
    assert report.notes == []  # nothing folds: the Slice reads the input itself


def test_slice_starts_computed_from_shapes_count_as_constant_for_the_constant_input_rule(rknn):
    """starts = [batch - 1] from Shape: rknn-toolkit2 folds it at fixed shapes, so 'need to be constant' is met."""
    nodes = [helper.make_node("Shape", ["x"], ["s"], name="shape"),
             helper.make_node("Gather", ["s", "zero"], ["n"], name="batch"),
             helper.make_node("Sub", ["n", "one"], ["last"], name="last_index"),
             helper.make_node("Unsqueeze", ["last", "axes"], ["starts"], name="as_vector"),
             helper.make_node("Slice", ["x", "starts", "ends"], ["y"], name="take_last")]
    model = _model(nodes, [_ints("zero", 0), _ints("one", 1), _ints("axes", [0]), _ints("ends", [1])], batch=1)
    found = _verdicts(classify(analyse(model), rknn))
    assert found["take_last"].status == "supported", found["take_last"].reason


# LiteRT: MediaPipe's custom ops run by the XNNPACK delegate the interpreter applies by default


def _transpose_conv_bias_tflite(path):
    from tflite_builders import _buffer, _opcode, _operator, _tensor, pack, schema

    weights = np.random.default_rng(0).normal(size=(3, 3, 3, 2)).astype(np.float32)
    tensors = [_tensor("x", [1, 4, 4, 2]), _tensor("w", [3, 3, 3, 2], buffer=1), _tensor("b", [3], buffer=2),
               _tensor("y", [1, 8, 8, 3])]
    op = _operator(0, [0, 1, 2], [3], custom_options=struct.pack("<3i", 1, 2, 2))  # SAME, stride 2x2
    subgraph = schema.SubGraphT()
    subgraph.tensors, subgraph.inputs, subgraph.outputs, subgraph.operators = tensors, [0], [3], [op]
    model = schema.ModelT()
    model.version, model.subgraphs = 3, [subgraph]
    model.operatorCodes = [_opcode(schema.BuiltinOperator.CUSTOM, "Convolution2DTransposeBias")]
    model.buffers = [_buffer(), _buffer(weights), _buffer(np.zeros(3, np.float32))]
    path.write_bytes(pack(model))
    return path


def test_convolution2dtransposebias_runs_in_default_litert_and_the_table_says_supported(tmp_path):
    pytest.importorskip("ai_edge_litert")
    from ai_edge_litert.interpreter import Interpreter

    from edgecheck.vendors.tflite.ops import classify_tflite, tflite_graph

    path = _transpose_conv_bias_tflite(tmp_path / "segmenter_head.tflite")
    interpreter = Interpreter(model_path=str(path))  # as the tflite backend makes it: default delegates applied
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], np.ones((1, 4, 4, 2), np.float32))
    interpreter.invoke()
    assert interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).shape == (1, 8, 8, 3)
    report = classify_tflite(tflite_graph(path), load_tables()["litert-builtins"])
    (verdict,) = report.verdicts
    assert verdict.node.key == "custom:Convolution2DTransposeBias"
    assert verdict.status == "supported" and "XNNPACK delegate" in verdict.reason


def test_the_generated_litert_table_lists_the_delegate_run_custom_ops():
    pytest.importorskip("ai_edge_litert")
    from edgecheck.vendors.tflite.table import DELEGATE_CUSTOM_OPS, table_from_litert

    table = table_from_litert()
    for name in DELEGATE_CUSTOM_OPS:
        rule = table.rule(f"custom:{name}")
        assert rule is not None and rule.status == "supported" and rule.versions == [(1, None)]
    assert table.rule("custom:MyCustom") is None  # a custom op nobody runs stays unlisted: unsupported


def test_the_rk3588_ops_check_passes_a_range_to_a_dimension_and_says_how_many_folded(pytester, spec_project):
    import onnx
    from conftest import junit_properties

    model = _range_model()
    model.graph.output[0].CopyFrom(helper.make_tensor_value_info("y", FLOAT, ["N", 3, 8, 8]))
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(pytester.path / "models" / "positions.onnx"))
    spec_project("edgecheck: 1\nmodel: {path: ../models/positions.onnx}\ninputs: {x: {shape: [1, 3, 8, 8]}}\n"
                 "targets:\n  rk3588:\n    backends: [rknn]\n    budgets:\n      ops: {unsupported: 0}\n")
    result = pytester.runpytest("specs", "-rA", "--junitxml=report.xml")
    result.assert_outcomes(passed=1)
    case = junit_properties(pytester.path / "report.xml")["rk3588-rknn-none-ops"]
    assert case["edge.ops.unsupported"] == "0" and case["edge.ops.folded_nodes"] == "4"
