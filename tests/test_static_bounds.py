"""Hostile model files against the static analysis, which runs in the session's own process: memory
and time stay bounded, the file fails with the node or the table and the cause, and the session goes
on. Files built here: an ONNX model whose shape arithmetic asks for gigabytes, .tflite files whose
tables share one offset or claim more entries than they hold."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import onnx
import pytest
from hostile_files import shared_tables_tflite
from onnx import TensorProto, helper, numpy_helper

from edgecheck.analysis.graph import analyse
from edgecheck.analysis.shapes import Limits
from edgecheck.errors import ModelError

INT64 = TensorProto.INT64


def shape_bomb(path, elements: int = 1 << 27):
    """~190 bytes: ConstantOfShape([elements]) of int64 → Shape → Add. Inference materialises the constant."""
    nodes = [helper.make_node("Constant", [], ["shape"], value=numpy_helper.from_array(np.array([elements], np.int64))),
             helper.make_node("ConstantOfShape", ["shape"], ["big"],
                              value=numpy_helper.from_array(np.array([1], np.int64))),
             helper.make_node("Shape", ["big"], ["n"]),
             helper.make_node("Add", ["x", "n"], ["y"])]
    graph = helper.make_graph(nodes, "bomb", [helper.make_tensor_value_info("x", INT64, [1])],
                              [helper.make_tensor_value_info("y", INT64, [1])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def _small_onnx(path):
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="relu")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_a_shape_inference_bomb_fails_with_the_node_and_the_next_model_is_analysed(tmp_path):
    path = shape_bomb(tmp_path / "bomb.onnx")
    assert path.stat().st_size < 300
    with pytest.raises(ModelError) as caught:
        analyse(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: shape inference needed more than ")
    assert "at the ConstantOfShape node making 'big': it makes a tensor of 134,217,728 elements" in message
    assert "EDGECHECK_ANALYSIS_MEMORY_MB" in message
    assert analyse(_small_onnx(tmp_path / "fine.onnx")).shape_method == "onnxruntime symbolic shape inference"


def test_the_session_process_stays_small_while_the_bomb_is_refused(tmp_path):
    """Measured in a fresh interpreter: its own peak resident memory (VmHWM: getrusage's figure would carry this
    pytest process's peak across the exec), not the inference child's, which its limit holds."""
    path = shape_bomb(tmp_path / "bomb.onnx")
    script = textwrap.dedent(f"""
        import json
        from edgecheck.analysis.graph import analyse
        from edgecheck.processes import proc_status_kb
        from edgecheck.errors import ModelError
        try:
            analyse({str(path)!r})
            outcome = "passed"
        except ModelError as exc:
            outcome = str(exc)
        print(json.dumps({{"outcome": outcome, "peak_mib": proc_status_kb("VmHWM") / 1024}}))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert "ConstantOfShape" in result["outcome"]
    assert result["peak_mib"] < 400  # before: 2,165 MiB in the session's own process


def test_shape_inference_past_its_time_limit_is_refused_and_the_child_replaced(tmp_path):
    path = _small_onnx(tmp_path / "fine.onnx")
    with pytest.raises(ModelError, match=r"shape inference took longer than 0 s while inferring shapes: refused"):
        analyse(path, limits=Limits(memory_mb=1024, timeout_s=0.0))
    assert analyse(path).tensor("y").shape == (1, 4)


def test_the_limits_come_from_the_environment_and_bad_values_are_named(monkeypatch):
    from edgecheck.analysis.shapes import limits_for

    monkeypatch.setenv("EDGECHECK_ANALYSIS_MEMORY_MB", "2048")
    monkeypatch.setenv("EDGECHECK_ANALYSIS_TIMEOUT_S", "30")
    assert limits_for(10 * 2**20) == Limits(2048, 30.0)
    monkeypatch.setenv("EDGECHECK_ANALYSIS_TIMEOUT_S", "soon")
    with pytest.raises(ModelError, match="EDGECHECK_ANALYSIS_TIMEOUT_S='soon' is not a number"):
        limits_for(0)


def test_the_ops_check_on_the_bomb_fails_naming_the_node_and_the_session_goes_on(pytester, spec_project):
    models = pytester.path / "models"
    models.mkdir(exist_ok=True)
    shape_bomb(models / "bomb.onnx")
    _small_onnx(models / "fine.onnx")
    spec = ("edgecheck: 1\nmodel: {{path: ../models/{}}}\ntargets:\n  rk3588:\n    backends: [rknn]\n    budgets:\n"
            "      ops: {{unsupported: 0}}\n")
    spec_project(spec.format("bomb.onnx"))
    (pytester.path / "specs" / "fine.yaml").write_text(spec.format("fine.onnx"))
    result = pytester.runpytest("specs", "-v", "--junitxml=report.xml")
    result.assert_outcomes(failed=1, passed=1)
    assert "at the ConstantOfShape node making 'big'" in result.stdout.str()
    assert (pytester.path / "report.xml").is_file()


# .tflite files whose tables share storage or claim more than the file holds


def test_tables_sharing_one_offset_are_refused_before_they_are_read(tmp_path):
    pytest.importorskip("ai_edge_litert")
    from edgecheck.vendors.tflite.model import read_tflite

    path = tmp_path / "shared.tflite"
    size = shared_tables_tflite(path).stat().st_size
    assert size < 10_000
    with pytest.raises(ModelError) as caught:
        read_tflite(path)
    assert str(caught.value) == (
        f"{path}: subgraph 1's operator list claims 800 entries, and with those read so far the model's tables would "
        f"hold more than its {size:,} bytes can (9,613 bytes of entries): its tables share storage or its counts are "
        "corrupt (a hostile or broken file?); refused")


def test_a_small_fan_out_of_shared_tables_is_still_bounded_by_the_file(tmp_path):
    """3 x 3 shared entries fit the file's bytes: read (9 operators), never more than the bytes allow."""
    pytest.importorskip("ai_edge_litert")
    from edgecheck.vendors.tflite.model import read_tflite

    path = tmp_path / "small.tflite"
    shared_tables_tflite(path, fan_out=3)
    assert len(read_tflite(path).ops) == 9


def test_a_count_field_beyond_the_file_is_refused_naming_the_list(tmp_path):
    pytest.importorskip("ai_edge_litert")
    from ai_edge_litert import schema_py_generated as s

    from edgecheck.vendors.tflite.model import read_tflite
    from tflite_builders import build_fc_tflite

    path = tmp_path / "fc.tflite"
    build_fc_tflite(path)
    data = bytearray(path.read_bytes())
    graph = s.Model.GetRootAs(bytes(data), 0).Subgraphs(0)
    field = graph._tab.Offset(10)  # SubGraph.operators (field 3: vtable slot 4 + 2 * 3)
    vector = graph._tab.Vector(field)
    data[vector - 4:vector] = (1 << 30).to_bytes(4, "little")  # the operator list's length
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"subgraph 0's operator list claims 1,073,741,824 entries"):
        read_tflite(path)


def test_the_cli_and_the_plugins_reader_refuse_the_shared_table_file_in_one_line(tmp_path, capsys):
    pytest.importorskip("ai_edge_litert")
    from edgecheck.cli import main
    from edgecheck.formats import inspect_model

    path = tmp_path / "shared.tflite"
    shared_tables_tflite(path)
    with pytest.raises(ModelError, match="share storage"):
        inspect_model(path)
    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"edgecheck: {path}: subgraph 1's operator list claims 800 entries") and err.count("\n") == 1


def test_a_fifo_named_tflite_is_refused_without_being_opened(tmp_path):
    import os

    from edgecheck.vendors.tflite.model import read_tflite

    fifo = tmp_path / "pipe.tflite"
    os.mkfifo(fifo)
    with pytest.raises(ModelError, match="not a regular file"):
        read_tflite(fifo)


def test_buffer_entries_sharing_one_stored_buffer_are_charged_their_bytes(tmp_path):
    """Entries of the buffer list that name one stored buffer: each would have the same bytes copied and
    hashed again; charged against the file's size, they are refused instead."""
    pytest.importorskip("ai_edge_litert")
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    from edgecheck.vendors.tflite.model import read_tflite

    fan = 64
    b = flatbuffers.Builder(1024)
    payload = b.CreateNumpyVector(np.zeros(4096, np.uint8))
    s.BufferStart(b)
    s.BufferAddData(b, payload)
    stored = s.BufferEnd(b)
    s.BufferStart(b)
    empty = s.BufferEnd(b)

    def vector(start, items, prepend):
        start(b, len(items))
        for item in reversed(items):
            prepend(item)
        return b.EndVector()

    tensors = []
    for index in range(1, fan + 1):
        shape = vector(s.TensorStartShapeVector, [1024], b.PrependInt32)
        s.TensorStart(b)
        s.TensorAddShape(b, shape)
        s.TensorAddType(b, s.TensorType.FLOAT32)
        s.TensorAddBuffer(b, index)
        tensors.append(s.TensorEnd(b))
    tensor_list = vector(s.SubGraphStartTensorsVector, tensors, b.PrependUOffsetTRelative)
    s.SubGraphStart(b)
    s.SubGraphAddTensors(b, tensor_list)
    graphs = vector(s.ModelStartSubgraphsVector, [s.SubGraphEnd(b)], b.PrependUOffsetTRelative)
    buffers = vector(s.ModelStartBuffersVector, [empty] + [stored] * fan, b.PrependUOffsetTRelative)
    s.ModelStart(b)
    s.ModelAddVersion(b, 3)
    s.ModelAddSubgraphs(b, graphs)
    s.ModelAddBuffers(b, buffers)
    b.Finish(s.ModelEnd(b), file_identifier=b"TFL3")
    path = tmp_path / "shared-buffers.tflite"
    path.write_bytes(bytes(b.Output()))
    assert path.stat().st_size < 4096 * 2
    with pytest.raises(ModelError, match=r"buffer \d+'s data .*share storage or its counts are corrupt"):
        read_tflite(path)


def test_a_shape_child_that_dies_without_a_word_still_has_the_node_named(tmp_path):
    """Under a loaded machine the runtime may abort at the child's memory limit (a dlopen failing for its
    thread-local data) before Python can say where: the parent then names the ConstantOfShape node whose
    constant shape alone asks for more than the limit; a model where nothing stands out gets no guess."""
    from edgecheck.analysis.shapes import Limits, _largest_constant_shape

    shape_bomb(tmp_path / "bomb.onnx")
    guess = _largest_constant_shape(onnx.load(str(tmp_path / "bomb.onnx")), Limits(1024, 60))
    assert guess == ("likely at the ConstantOfShape node making 'big': it makes a tensor of 134,217,728 elements "
                     "from a constant shape")
    assert _largest_constant_shape(onnx.load(str(tmp_path / "bomb.onnx")), Limits(4096, 60)) == ""  # fits
    shape_bomb(tmp_path / "small.onnx", elements=16)
    assert _largest_constant_shape(onnx.load(str(tmp_path / "small.onnx")), Limits(1024, 60)) == ""
