"""`edgecheck ops`, `inspect` and `fit` as users run them, on the example and on models built here."""

from __future__ import annotations

import json
import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgecheck.analysis.graph import analyse
from edgecheck.cli import main

EXAMPLE = "examples/digits/digits.onnx"


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch, request):
    monkeypatch.chdir(request.config.rootpath)


def _branchy(path):
    """An If whose else branch holds a NonZero on a computed tensor: RKNN refuses it."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    c = helper.make_tensor_value_info("c", TensorProto.BOOL, [])
    then = helper.make_graph([helper.make_node("Relu", ["x"], ["t"], name="then_relu")], "then", [],
                             [helper.make_tensor_value_info("t", TensorProto.FLOAT, ["N", 4])])
    other = helper.make_graph([helper.make_node("NonZero", ["x"], ["nz"], name="find_nonzero"),
                               helper.make_node("Cast", ["nz"], ["e"], to=TensorProto.FLOAT, name="to_float")],
                              "else", [], [helper.make_tensor_value_info("e", TensorProto.FLOAT, [2, "k"])])
    graph = helper.make_graph([helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other,
                                                name="branch")], "g", [x, c],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["a", "b"])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_ops_on_the_example_lists_every_backend_and_passes(capsys):
    assert main(["ops", EXAMPLE, "--target", "rk3588"]) == 0
    out = capsys.readouterr().out
    assert "rk3588 / rknn" in out and "rk3588 / onnxruntime" in out
    assert "RKNNToolKit2_OP_Support" in out and "every node is supported as it is" in out


def test_ops_names_the_offending_node_in_its_branch_and_exits_1(tmp_path, capsys):
    model = _branchy(tmp_path / "branchy.onnx")
    assert main(["ops", str(model), "--target", "rk3588", "--backend", "rknn"]) == 1
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if "find_nonzero" in line)
    assert "NonZero" in line and "branch.else_branch" in line and "unsupported" in line
    assert "counts: supported" in out


def test_ops_lists_tables_with_their_sources(capsys):
    assert main(["ops", "--tables"]) == 0
    out = capsys.readouterr().out
    for name in ("onnxruntime-cpu", "rknn-rk3588", "tensorrt-onnx-parser", "tflite-builtins"):
        assert name in out


def test_ops_errors_are_one_line(tmp_path, capsys):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x07garbage")
    assert main(["ops", str(broken), "--target", "rk3588"]) == 2
    assert str(broken) in capsys.readouterr().err
    assert main(["ops", EXAMPLE, "--target", "nosuch"]) == 2
    assert "unknown device 'nosuch'" in capsys.readouterr().err


def test_inspect_gives_facts_as_text_and_json(capsys):
    assert main(["inspect", EXAMPLE, "--nodes"]) == 0
    out = capsys.readouterr().out
    assert "parameters       9,802" in out and "dynamic in the file: ['N']" in out and "conv1" in out
    assert main(["inspect", EXAMPLE, "--json", "--input", "input=4x1x8x8"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["parameters"] == "9802" and facts["input_shapes"] == "input=[4, 1, 8, 8]"
    assert int(facts["macs"]) == 4 * 31552  # batch 4: four times the batch-1 count
    assert {n["name"] for n in facts["nodes"]} >= {"conv1", "fc2"}


def test_inspect_walks_subgraphs(tmp_path, capsys):
    assert main(["inspect", str(_branchy(tmp_path / "b.onnx")), "--nodes"]) == 0
    out = capsys.readouterr().out
    assert "branch.else_branch/find_nonzero" in out and "branch.then_branch/then_relu" in out


def test_fit_ranks_devices_by_estimate_and_warns_above_the_rule_of_thumb(tmp_path, capsys):
    weights = numpy_helper.from_array(np.zeros((3400, 3400), np.float32), "w")  # 11.6 M parameters
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3400])
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="big")], "g", [x],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3400])], [weights])
    path = tmp_path / "big.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    assert main(["fit", str(path)]) == 0
    out = capsys.readouterr().out
    assert "latency (ESTIMATE)" in out and "estimates from an analytical cost model" in out
    ranked = [line.split()[1] for line in out.splitlines() if line[:1].isdigit()]
    with_model = {"raspberry-pi-4b", "jetson-nano", "jetson-xavier-nx", "rk3588"}  # a cost model for a float graph
    without = {"rk3562", "rk3566", "rk3568", "rk3576"}  # Rockchip chips with an INT8 cost model only: ranked after
    assert with_model | without <= set(ranked)
    assert max(map(ranked.index, with_model)) < min(map(ranked.index, without))
    assert "warning: 11.6 M parameters is above the 0-10 M that raspberry-pi-4b is known to suit" in out


def test_shape_inference_leaves_no_file_in_the_working_folder(tmp_path, monkeypatch):
    """ONNX Runtime's symbolic inference saves sym_shape_infer_temp.onnx in the working folder when it
    cannot infer every shape; edgecheck runs it elsewhere."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Mystery", ["x"], ["y"], domain="my.ops", name="m"),
                               helper.make_node("Relu", ["y"], ["z"], name="r")], "g", [x],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("my.ops", 1)])
    monkeypatch.chdir(tmp_path)
    analysed = analyse(model)
    assert os.listdir(tmp_path) == []
    assert analysed.shape_method == "onnx shape inference" and "symbolic shape inference failed" in analysed.notes[-1]


# .tflite files, read as the plugin reads them


@pytest.fixture
def fc_tflite(tmp_path):
    pytest.importorskip("ai_edge_litert")
    from tflite_builders import build_fc_tflite

    path = tmp_path / "fc.tflite"
    build_fc_tflite(path, int8_io=True)
    return path


def test_inspect_reads_a_tflite_file_as_text_and_json(fc_tflite, capsys):
    assert main(["inspect", str(fc_tflite)]) == 0
    out = capsys.readouterr().out
    assert "not a valid ONNX model" not in out
    assert "input x: int8 [1, 4] (scale 0.05, zero point -3) (tensor 'serving_default_x:0')" in out
    assert "parameters  15 (" in out and "DEQUANTIZE 1, FULLY_CONNECTED 1" in out
    assert main(["inspect", str(fc_tflite), "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["format"] == "tflite" and facts["parameters"] == 15 and facts["parameter_bytes"] == 60
    assert facts["inputs"][0]["name"] == "x" and facts["op_counts"] == {"DEQUANTIZE": 1, "FULLY_CONNECTED": 1}


def test_a_tflite_file_under_another_name_is_told_by_its_identifier(fc_tflite, capsys):
    renamed = fc_tflite.with_name("model.bin")
    renamed.write_bytes(fc_tflite.read_bytes())
    assert main(["inspect", str(renamed)]) == 0
    assert "FULLY_CONNECTED" in capsys.readouterr().out


def test_ops_judges_a_tflite_file_against_the_tflite_table_and_fit_ranks_by_it(fc_tflite, capsys):
    assert main(["ops", str(fc_tflite), "--target", "raspberry-pi-4b", "--all", "--input", "x=2x4"]) == 0
    captured = capsys.readouterr()
    assert "raspberry-pi-4b / tflite" in captured.out and "LiteRT builtin operators" in captured.out
    assert "counts: supported 2, constraint 0, fallback 0, unsupported 0 (of 2 nodes)" in captured.out
    assert "--input is ignored for a .tflite file" in captured.err
    assert main(["ops", str(fc_tflite), "--target", "rk3588"]) == 2  # none of its backends runs a .tflite
    assert "no backend of rk3588 (rknn, onnxruntime) runs a .tflite model" in capsys.readouterr().err
    assert main(["fit", str(fc_tflite)]) == 0
    out = capsys.readouterr().out
    ranked = [line.split()[1] for line in out.splitlines() if line[:1].isdigit()]
    assert set(ranked[:2]) == {"raspberry-pi-4b", "jetson-nano"}  # judged by a TFLite table: ranked first
    assert "none (the cost model reads ONNX graphs" in out


def test_ops_notes_how_many_nodes_folded_from_shapes(tmp_path, capsys):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])
    nodes = [helper.make_node("Shape", ["x"], ["s"], name="shape"),
             helper.make_node("Gather", ["s", "three"], ["n"], name="width", axis=0),
             helper.make_node("Range", ["zero", "n", "one"], ["r"], name="positions"),
             helper.make_node("Cast", ["r"], ["rf"], name="to_float", to=TensorProto.FLOAT),
             helper.make_node("Add", ["x", "rf"], ["y"], name="add")]
    consts = [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in (("three", 3), ("zero", 0), ("one", 1))]
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 8, 8])
    graph = helper.make_graph(nodes, "g", [x], [y], consts)
    path = tmp_path / "positions.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    assert main(["ops", str(path), "--target", "rk3588", "--backend", "rknn", "--input", "x=1x3x8x8"]) == 0
    out = capsys.readouterr().out
    assert "every node is supported as it is" in out
    assert ("note: 4 of 5 nodes fold away at conversion and are not judged as runtime operators: 4 compute only "
            "from tensor shapes at the input shapes used (x [1, 3, 8, 8]): Cast, Gather, Range, Shape") in out
