"""Reading .tflite files without running them: names, types, quantization, ops, parameters, bad files."""

from __future__ import annotations

import copy
import random

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert", reason="reading .tflite files needs ai-edge-litert (pytest-edgecheck[tflite])")

from ai_edge_litert.interpreter import Interpreter  # noqa: E402

from edgecheck.analysis.optable import read_table  # noqa: E402
from edgecheck.errors import ModelError  # noqa: E402
from edgecheck.model import file_sha256  # noqa: E402
from edgecheck.vendors.tflite.model import TfliteOp, inspect_tflite, op_key, read_tflite  # noqa: E402

from conftest import make_classifier  # noqa: E402
from tflite_builders import (  # noqa: E402
    CLASSES, FEATURES, INT8_SCALE, INT8_ZERO_POINT, build_fc_tflite, pack, schema)

PARAMETERS = CLASSES * FEATURES + CLASSES  # weight [3, 4] and bias [3]


def _run(path, x: np.ndarray) -> np.ndarray:
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


# 1. the built files are real TFLite models


def test_the_built_model_runs_in_litert_and_computes_the_layer(tmp_path):
    path = tmp_path / "fc.tflite"
    weight, bias = build_fc_tflite(path)
    x = np.random.default_rng(1).normal(size=(1, FEATURES)).astype(np.float32)
    np.testing.assert_allclose(_run(path, x), x @ weight.T + bias, rtol=1e-5, atol=1e-5)
    runner = Interpreter(model_path=str(path)).get_signature_runner("serving_default")
    np.testing.assert_allclose(runner(x=x)["y"], x @ weight.T + bias, rtol=1e-5, atol=1e-5)


def test_the_int8_model_runs_in_litert_and_dequantizes_its_input(tmp_path):
    path = tmp_path / "fc_int8.tflite"
    weight, bias = build_fc_tflite(path, int8_io=True)
    q = np.array([[-128, -3, 20, 127]], dtype=np.int8)
    real = (q.astype(np.float32) - INT8_ZERO_POINT) * np.float32(INT8_SCALE)
    np.testing.assert_allclose(_run(path, q), real @ weight.T + bias, rtol=1e-5, atol=1e-5)


# 2. what read_tflite and inspect_tflite give


def test_names_come_from_the_single_signature_and_keep_the_tensor(tmp_path):
    path = tmp_path / "fc.tflite"
    build_fc_tflite(path)
    model = read_tflite(path)
    assert model.signature == "serving_default" and model.signatures == ("serving_default",)
    assert model.input_names == ("x",) and model.output_names == ("y",)
    x, y = model.input("x"), model.output("y")
    assert (x.name, x.index, x.subgraph) == ("serving_default_x:0", 0, 0)
    assert y.name == "StatefulPartitionedCall:0" and model.output("StatefulPartitionedCall:0") is None
    assert (x.dtype, x.shape, x.scale, x.zero_point, x.quantized) == ("float32", (1, FEATURES), None, None, False)
    assert (y.dtype, y.shape) == ("float32", (1, CLASSES))
    assert (model.version, model.subgraphs, model.description) == (3, 1, "edgecheck test model")


def test_without_a_signature_names_are_the_tensor_names(tmp_path):
    path = tmp_path / "fc.tflite"
    build_fc_tflite(path, signature=False)
    model = read_tflite(path)
    assert model.signature is None and model.signatures == ()
    assert model.input_names == ("serving_default_x:0",) and model.output_names == ("StatefulPartitionedCall:0",)
    assert model.inputs[0].key == model.inputs[0].name


def test_two_signatures_fall_back_to_subgraph_0s_tensor_names(tmp_path):
    path = tmp_path / "fc.tflite"
    build_fc_tflite(path)
    model_t = schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    second = schema.SignatureDefT()
    second.signatureKey, second.subgraphIndex = "other", 0
    second.inputs, second.outputs = model_t.signatureDefs[0].inputs, model_t.signatureDefs[0].outputs
    model_t.signatureDefs.append(second)
    path.write_bytes(pack(model_t))
    model = read_tflite(path)
    assert model.signature is None and model.signatures == ("serving_default", "other")
    assert model.input_names == ("serving_default_x:0",)


def test_int8_io_gives_the_type_scale_and_zero_point(tmp_path):
    path = tmp_path / "fc_int8.tflite"
    build_fc_tflite(path, int8_io=True)
    model = read_tflite(path)
    x = model.input("x")
    assert x.dtype == "int8" and x.quantized
    assert x.scale == pytest.approx(INT8_SCALE) and x.zero_point == INT8_ZERO_POINT
    assert model.output("y").dtype == "float32" and model.output("y").scale is None
    assert [op.name for op in model.ops] == ["DEQUANTIZE", "FULLY_CONNECTED"]


def test_dynamic_batch_comes_from_the_shape_signature(tmp_path):
    path = tmp_path / "fc_dyn.tflite"
    build_fc_tflite(path, dynamic_batch=True)
    info = inspect_tflite(path)
    assert info.input("x").shape == (None, FEATURES) and info.input("x").dynamic_dims == [0]
    assert info.output("y").shape_text() == f"[?, {CLASSES}]"


def test_parameters_and_ops(tmp_path):
    path = tmp_path / "fc.tflite"
    build_fc_tflite(path)
    model = read_tflite(path)
    assert model.parameters == PARAMETERS
    assert model.ops == (TfliteOp(index=0, subgraph=0, name="FULLY_CONNECTED", kind="builtin", version=1,
                                  outputs=("StatefulPartitionedCall:0",)),)
    assert model.ops[0].key == "FULLY_CONNECTED"


def test_a_buffer_shared_by_two_tensors_counts_once(tmp_path):
    path = tmp_path / "fc.tflite"
    build_fc_tflite(path)
    model_t = schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    tensors = model_t.subgraphs[0].tensors
    alias = copy.copy(tensors[1])  # another tensor on the weight's buffer
    alias.name = "dense/MatMul_alias"
    tensors.append(alias)
    path.write_bytes(pack(model_t))
    assert read_tflite(path).parameters == PARAMETERS


@pytest.mark.parametrize("code, kind", [("FlexErf", "flex"), ("MyCustom", "custom"),
                                        ("TFLite_Detection_PostProcess", "custom")])
def test_custom_and_flex_ops(tmp_path, code, kind):
    path = tmp_path / "fc_custom.tflite"
    build_fc_tflite(path, custom_op=code)
    model = read_tflite(path)
    custom = model.ops[-1]
    assert (custom.name, custom.kind, custom.key) == (code, kind, f"custom:{code}")
    assert custom.outputs == ("StatefulPartitionedCall:0",)
    assert inspect_tflite(path).op_counts == {"FULLY_CONNECTED": 1, f"custom:{code}": 1}
    assert op_key("CONV_2D", "builtin") == "CONV_2D"


def test_builtin_codes_above_127_and_unknown_codes(tmp_path):
    """Codes >= 127 live in builtin_code (deprecated_builtin_code holds 127); TFLite takes the max of both."""
    path = tmp_path / "fc.tflite"
    build_fc_tflite(path)
    model_t = schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    code = model_t.operatorCodes[0]
    code.builtinCode, code.deprecatedBuiltinCode = schema.BuiltinOperator.GELU, 127
    path.write_bytes(pack(model_t))
    assert read_tflite(path).ops[0].name == "GELU"
    code.builtinCode = 4000  # newer than this schema
    path.write_bytes(pack(model_t))
    assert (read_tflite(path).ops[0].name, read_tflite(path).ops[0].kind) == ("BUILTIN_4000", "builtin")
    code.builtinCode, code.deprecatedBuiltinCode = 0, schema.BuiltinOperator.FULLY_CONNECTED  # an old file
    path.write_bytes(pack(model_t))
    assert read_tflite(path).ops[0].name == "FULLY_CONNECTED"


def test_inspect_gives_model_info(tmp_path):
    path = tmp_path / "fc.tflite"
    build_fc_tflite(path, int8_io=True)
    info = inspect_tflite(path)
    assert info.format == "tflite" and info.path == path
    assert [(t.name, t.dtype, t.shape) for t in info.inputs] == [("x", "int8", (1, FEATURES))]
    assert [(t.name, t.dtype, t.shape) for t in info.outputs] == [("y", "float32", (1, CLASSES))]
    assert info.size_bytes == path.stat().st_size and info.parameters == PARAMETERS
    assert info.opsets == {"tflite": 3} and info.op_counts == {"DEQUANTIZE": 1, "FULLY_CONNECTED": 1}
    assert info.sha256 == file_sha256([path])


# 3. bad files: always a ModelError naming the file and the cause


def _message(path) -> str:
    with pytest.raises(ModelError) as info:
        read_tflite(path)
    assert info.value.path == path and str(path) in str(info.value)
    return info.value.reason


def test_missing_and_empty_files(tmp_path):
    assert _message(tmp_path / "nope.tflite") == "file not found"
    assert _message(tmp_path) == "not a regular file"  # a folder
    empty = tmp_path / "empty.tflite"
    empty.write_bytes(b"")
    assert _message(empty) == "the file is empty"


def test_an_onnx_file_renamed_tflite(tmp_path):
    path = tmp_path / "model.tflite"
    make_classifier(path)
    assert _message(path) == "not a TFLite model (no TFL3 identifier: truncated or another format?)"


def test_a_truncated_file(tmp_path):
    whole = tmp_path / "whole.tflite"
    build_fc_tflite(whole)
    path = tmp_path / "cut.tflite"
    path.write_bytes(whole.read_bytes()[:100])
    assert _message(path).startswith("cannot read the TFLite flatbuffer (truncated or corrupt?): ")
    path.write_bytes(whole.read_bytes()[:6])
    assert "no TFL3 identifier" in _message(path)


def test_random_bytes_with_the_identifier(tmp_path):
    path = tmp_path / "random.tflite"
    rng = np.random.default_rng(0)
    path.write_bytes(b"\xff\xff\xff\x7fTFL3" + rng.integers(0, 256, 4000, dtype=np.uint8).tobytes())
    assert _message(path).startswith("cannot read the TFLite flatbuffer (truncated or corrupt?): ")


def test_indices_out_of_range_are_named(tmp_path):
    path = tmp_path / "fc.tflite"
    build_fc_tflite(path)
    model_t = schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    model_t.signatureDefs[0].inputs[0].tensorIndex = 99
    path.write_bytes(pack(model_t))
    assert "input 'x' of signature 'serving_default' names tensor 99" in _message(path)
    model_t.signatureDefs[0].inputs[0].tensorIndex = 0
    model_t.subgraphs[0].operators[0].opcodeIndex = 5
    path.write_bytes(pack(model_t))
    assert "operator 0 of subgraph 0 names an operator code" in _message(path)
    model_t.subgraphs[0].operators[0].opcodeIndex = 0
    model_t.subgraphs[0].tensors[1].buffer = 42
    path.write_bytes(pack(model_t))
    assert "names buffer 42" in _message(path)
    model_t.subgraphs = []
    path.write_bytes(pack(model_t))
    assert "no subgraph" in _message(path)


def test_a_large_model_buffer_outside_the_flatbuffer(tmp_path):
    """Models over 2 GB keep buffers after the flatbuffer at offset/size; data past the end is a truncation."""
    path = tmp_path / "fc.tflite"
    w, b = build_fc_tflite(path)
    model_t = schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    weight = model_t.buffers[1]
    payload = bytes(weight.data)
    weight.data = None
    weight.offset, weight.size = 2, len(payload)  # fields present: the packed size is final
    weight.offset = len(pack(model_t))
    assert len(pack(model_t)) == weight.offset
    path.write_bytes(pack(model_t) + payload)
    assert read_tflite(path).parameters == PARAMETERS
    x = np.ones((1, FEATURES), np.float32)
    np.testing.assert_allclose(_run(path, x), x @ w.T + b, rtol=1e-5, atol=1e-5)  # LiteRT reads it so too
    path.write_bytes(pack(model_t) + payload[:-4])
    assert "lies beyond the end of the file" in _message(path)


def test_corrupted_files_only_ever_raise_model_error(tmp_path):
    whole = tmp_path / "whole.tflite"
    build_fc_tflite(whole, int8_io=True, custom_op="MyCustom")
    data = whole.read_bytes()
    path = tmp_path / "bad.tflite"
    rng = random.Random(0)
    cases = [data[:n] for n in range(0, len(data), 7)]
    for _ in range(1500):
        flipped = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            flipped[rng.randrange(8, len(flipped))] = rng.randrange(256)
        cases.append(bytes(flipped))
    for case in cases:
        path.write_bytes(case)
        try:
            read_tflite(path)
        except ModelError as exc:
            assert exc.path == path and exc.reason
        # any other exception fails the test


def test_without_ai_edge_litert_the_error_says_what_to_install(tmp_path, monkeypatch):
    import sys

    path = tmp_path / "fc.tflite"
    build_fc_tflite(path)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.schema_py_generated", None)
    monkeypatch.delattr("ai_edge_litert.schema_py_generated", raising=False)
    assert "pip install 'pytest-edgecheck[tflite]'" in _message(path)


# 4. the LiteRT operator table


def test_the_litert_table_comes_from_the_installed_runtime_and_round_trips(tmp_path):
    import ai_edge_litert

    from edgecheck.vendors.tflite.table import dump, table_from_litert

    table = table_from_litert()
    assert table.name == "litert-builtins" and table.backend == "tflite"
    assert table.version == f"ai-edge-litert {ai_edge_litert.__version__}"
    assert table.rule("FULLY_CONNECTED").status == "supported" and table.rule("CONV_2D").versions[0][0] == 1
    assert table.rule("BROADCAST_TO").versions[0][0] == 2  # its kernel starts at version 2
    assert table.rule("DELEGATE").status == "unsupported"  # in the enum, no kernel
    assert table.rule("CUSTOM") is None and table.rule("custom:TFLite_Detection_PostProcess").status == "supported"
    assert table.rule("custom:MyCustom") is None and table.unlisted.status == "unsupported"
    path = tmp_path / "litert-builtins.yaml"
    path.write_text(dump(table))
    again = read_table(path)
    assert again.model_dump(exclude={"file"}) == table.model_dump(exclude={"file"})


def test_every_op_of_the_built_models_is_in_the_litert_table(tmp_path):
    from edgecheck.vendors.tflite.table import table_from_litert

    table = table_from_litert()
    path = tmp_path / "fc.tflite"
    build_fc_tflite(path, int8_io=True)
    for op in read_tflite(path).ops:
        rule = table.rule(op.key)
        assert rule is not None and rule.status == "supported"
        assert any(a <= op.version and (b is None or op.version <= b) for a, b in rule.versions)
