"""Recipes report what they really did, and an artifact its runtime refuses never passes: what this file proves.

* every recipe's notes say what its artifact shows (weight types and bytes before and after, operators
  added and removed), read from the files; one whose artifact has its input's weights and operators
  changed nothing and is a skip with the reason, failed under --edge-strict — for ONNX and for .tflite;
* weights held in Constant nodes (as Paddle exports them, also behind an Identity) count as parameters
  and are folded into initializers before int8, pruning and low-rank, which say so;
* an fp16 graph whose shapes are computed in float (Shape -> Cast -> Mul -> Resize scales), which
  onnxconverter-common turned into a model ONNX Runtime refuses, converts into one it loads and runs;
  an artifact ONNX Runtime refuses fails every check of its entry with the runtime's words and a hint;
* an int8-dynamic artifact that ONNX Runtime runs but onnx.checker rejects (node order, with an If
  reading an outer value) is kept, the checker's whole words (node name included) a note.

Every model is built here with onnx.helper (or the TFLite schema's object API) and run for real.
"""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import junit_properties
from onnx import TensorProto, helper, numpy_helper

from edgecheck.compress import Artifact, RecipeContext, RecipeNotApplicable, get_recipe, register_recipe, \
    unregister_recipe
from edgecheck.errors import ModelError, RecipeError
from edgecheck.formats import inspect_model
from edgecheck.model import load_onnx

_folders = itertools.count()


def _make(recipe: str, model: Path, tmp: Path, **params) -> Artifact:
    """Apply a recipe as a worker does (applied, then verified) into a fresh folder."""
    out = tmp / f"out{next(_folders)}"
    out.mkdir()
    found = get_recipe(recipe)
    before = model.read_bytes()
    artifact = found.make(model, found.parse_params(params), RecipeContext(calibration=None, out_dir=out))
    assert model.read_bytes() == before, "the recipe modified its input"
    return artifact


def _save(graph, path: Path, opset: int = 13) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _bias_relu(path: Path) -> Path:
    """x[1, 16] -> Add(bias) -> Relu: a float32 weight, but nothing a quantizer handles."""
    bias = numpy_helper.from_array(np.linspace(-1, 1, 16).astype(np.float32), "bias")
    return _save(helper.make_graph(
        [helper.make_node("Add", ["x", "bias"], ["h"], name="add"), helper.make_node("Relu", ["h"], ["y"], name="relu")],
        "bias_relu", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])], [bias]), path)


def _constant_weights(path: Path) -> tuple[Path, int]:
    """A Paddle-style MLP: W1 in a Constant node, W2 in a Constant behind an Identity, biases as
    value_floats; no initializer at all. Returns the path and its parameter count."""
    rng = np.random.default_rng(0)
    w1, w2 = rng.normal(size=(64, 48)).astype(np.float32), rng.normal(size=(48, 10)).astype(np.float32)
    nodes = [
        helper.make_node("Constant", [], ["w1"], value=numpy_helper.from_array(w1), name="const_w1"),
        helper.make_node("Constant", [], ["b1"], value_floats=[0.1] * 48, name="const_b1"),
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="fc1"),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("Constant", [], ["w2_raw"], value=numpy_helper.from_array(w2), name="const_w2"),
        helper.make_node("Identity", ["w2_raw"], ["w2"], name="w2_copy"),
        helper.make_node("MatMul", ["r", "w2"], ["y"], name="fc2"),
    ]
    graph = helper.make_graph(nodes, "paddle_style", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])])
    return _save(graph, path), w1.size + 48 + w2.size


def _shape_math_resize(path: Path) -> Path:
    """Conv, then a Resize whose scales are computed from the tensor's own shape in float:
    Shape -> Gather -> Cast(to float) -> Mul(2.0) -> Div -> Concat -> Resize scales (how detectors
    and upsampling heads are exported)."""
    rng = np.random.default_rng(1)
    inits = [numpy_helper.from_array(np.array([2, 3], np.int64), "hw_index"),
             numpy_helper.from_array(np.array([1.0, 1.0], np.float32), "ones"),
             numpy_helper.from_array(np.array([2.0], np.float32), "two"),
             numpy_helper.from_array(rng.normal(size=(3, 3, 1, 1)).astype(np.float32), "w")]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Shape", ["c"], ["s"], name="shape"),
             helper.make_node("Gather", ["s", "hw_index"], ["hw"], name="gather"),
             helper.make_node("Cast", ["hw"], ["hw_float"], to=TensorProto.FLOAT, name="cast"),
             helper.make_node("Mul", ["hw_float", "two"], ["hw2"], name="mul"),
             helper.make_node("Div", ["hw2", "hw_float"], ["ratio"], name="div"),
             helper.make_node("Concat", ["ones", "ratio"], ["scales"], axis=0, name="concat"),
             helper.make_node("Resize", ["c", "", "scales"], ["y"], mode="nearest", name="resize")]
    return _save(helper.make_graph(nodes, "upsample", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 5])],
                                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 10])], inits), path)


def _shape_meets_data(path: Path) -> Path:
    """A detector-style grid: the feature map's width, from its shape, cast to float and multiplied
    into the data path (Conv -> Shape -> Gather -> Cast(to float) -> Mul with the features -> Add bias)."""
    rng = np.random.default_rng(6)
    inits = [numpy_helper.from_array(np.array(3, np.int64), "w_axis"),
             numpy_helper.from_array(rng.normal(size=(3, 3, 1, 1)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.normal(size=(1, 3, 1, 1)).astype(np.float32), "bias")]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Shape", ["c"], ["s"], name="shape"),
             helper.make_node("Gather", ["s", "w_axis"], ["width"], name="gather"),
             helper.make_node("Cast", ["width"], ["width_float"], to=TensorProto.FLOAT, name="cast"),
             helper.make_node("Mul", ["c", "width_float"], ["scaled"], name="stride"),
             helper.make_node("Add", ["scaled", "bias"], ["y"], name="add")]
    return _save(helper.make_graph(nodes, "grid", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 5])],
                                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 5])], inits), path)


def _if_reading_outer_value(path: Path) -> Path:
    """MatMul -> Relu -> If whose branches read the Relu's output from outside: ONNX Runtime's
    quantizer orders the If before the Relu (it does not count what a branch reads)."""
    rng = np.random.default_rng(2)
    then = helper.make_graph([helper.make_node("Add", ["r", "b"], ["t"], name="then_add")], "then", [],
                             [helper.make_tensor_value_info("t", TensorProto.FLOAT, [1, 4])])
    other = helper.make_graph([helper.make_node("Sub", ["r", "b"], ["e"], name="else_sub")], "else", [],
                              [helper.make_tensor_value_info("e", TensorProto.FLOAT, [1, 4])])
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["h"], name="mm"), helper.make_node("Relu", ["h"], ["r"], name="relu"),
         helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other, name="branch")],
        "if_outer", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8]),
                     helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(rng.normal(size=(8, 4)).astype(np.float32), "W"),
         numpy_helper.from_array(np.ones(4, np.float32), "b")])
    return _save(graph, path)


def _run(model: Path, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    return ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, feed)


# ---------------------------------------------------------------- 1. what the artifact shows

def test_notes_say_what_the_artifact_shows(tmp_path):
    model, _ = _constant_weights(tmp_path / "mlp.onnx")
    notes = _make("int8-dynamic", model, tmp_path).notes
    assert notes["changed.weights"].startswith("float32 ")
    assert "-> int8 " in notes["changed.weights"]
    assert "+MatMulInteger 2" in notes["changed.ops"] and "-MatMul 1" in notes["changed.ops"]
    before, after = (int(n.replace(",", "")) for n in notes["changed.bytes"].split(" (")[0].split(" -> "))
    assert before == model.stat().st_size and after < before / 2
    assert "smaller" in notes["changed.bytes"]


def test_int8_dynamic_that_quantizes_nothing_is_a_skip_with_the_reason(tmp_path):
    model = _bias_relu(tmp_path / "bias_relu.onnx")
    with pytest.raises(RecipeNotApplicable, match="int8-dynamic changed nothing: no MatMul/Gemm/Conv with float "
                                                  r"weights to quantize; its artifact has the same weights \(float32 1"):
        _make("int8-dynamic", model, tmp_path)


SESSION = """\
edgecheck: 1
model: {{path: ../models/{model}}}
data:
  parity_samples: 8
compress: {compress}
targets:
  host:
    backends: [onnxruntime]
    budgets:
      size_mb: 1
      parity: {{rel_l2: 0.5}}
"""


def _spec(pytester: pytest.Pytester, model: str, compress: str) -> None:
    (pytester.path / "specs").mkdir(exist_ok=True)
    (pytester.path / "specs" / "model.yaml").write_text(SESSION.format(model=model, compress=compress))


def test_a_recipe_that_changed_nothing_skips_in_a_session_and_fails_under_strict(pytester):
    (pytester.path / "models").mkdir()
    _bias_relu(pytester.path / "models" / "bias_relu.onnx")
    _spec(pytester, "bias_relu.onnx", "[int8-dynamic]")
    result = pytester.runpytest("specs", "-rs", "--edge-no-cache")
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines(["SKIPPED*int8-dynamic changed nothing: no MatMul/Gemm/Conv with float weights*"])
    strict = pytester.runpytest("specs", "--edge-strict", "--edge-no-cache")
    strict.assert_outcomes(passed=1, failed=2)
    strict.stdout.fnmatch_lines(["*int8-dynamic changed nothing*(--edge-strict turns this skip into a failure)*"])


def test_a_chain_step_that_changed_nothing_is_named_by_its_place(pytester):
    """[int8-dynamic, int8-dynamic]: the second finds nothing left to quantize, and the skip says which step."""
    (pytester.path / "models").mkdir()
    _constant_weights(pytester.path / "models" / "mlp.onnx")
    _spec(pytester, "mlp.onnx", "[[int8-dynamic, int8-dynamic]]")
    result = pytester.runpytest("specs", "-rs", "--edge-no-cache")
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines(["SKIPPED*step 2 of [[]int8-dynamic, int8-dynamic[]]: int8-dynamic changed nothing*"])


def _float16_behind_dequantize(path: Path) -> None:
    """A MediaPipe-style .tflite: FULLY_CONNECTED whose weight is a float16 constant behind a DEQUANTIZE."""
    pytest.importorskip("ai_edge_litert")
    import tflite_builders as tb
    from ai_edge_litert import schema_py_generated as schema

    weight, bias = tb.fc_weights()
    tensors = [tb._tensor("x", [1, tb.FEATURES]),
               tb._tensor("w16", [tb.CLASSES, tb.FEATURES], schema.TensorType.FLOAT16, buffer=1),
               tb._tensor("w", [tb.CLASSES, tb.FEATURES]),
               tb._tensor("b", [tb.CLASSES], buffer=2),
               tb._tensor("y", [1, tb.CLASSES])]
    subgraph = schema.SubGraphT()
    subgraph.tensors, subgraph.inputs, subgraph.outputs = tensors, [0], [4]
    subgraph.operators = [
        tb._operator(1, [1], [2], schema.DequantizeOptionsT(), schema.BuiltinOptions.DequantizeOptions),
        tb._operator(0, [0, 2, 3], [4], schema.FullyConnectedOptionsT(), schema.BuiltinOptions.FullyConnectedOptions)]
    model = schema.ModelT()
    model.version, model.description = 3, "float16 weights behind DEQUANTIZE"
    model.operatorCodes = [tb._opcode(schema.BuiltinOperator.FULLY_CONNECTED), tb._opcode(schema.BuiltinOperator.DEQUANTIZE)]
    model.subgraphs = [subgraph]
    model.buffers = [tb._buffer(), tb._buffer(weight.astype(np.float16)), tb._buffer(bias)]
    path.write_bytes(tb.pack(model))


def test_the_detector_reads_tflite_artifacts_too(tmp_path):
    """A .tflite recipe whose artifact has its input's tensors (a quantizer that leaves float16 weights
    behind DEQUANTIZE as they are) is a skip that says so."""
    source = tmp_path / "fp16w.tflite"
    _float16_behind_dequantize(source)

    @register_recipe("test-copy-tflite", takes=(".tflite",))
    def copy(model: Path, params, context: RecipeContext) -> Artifact:
        out = context.out_dir / "copy.tflite"
        shutil.copyfile(model, out)
        return Artifact(out, "test-copy-tflite", {"did": "quantized (it says)"})

    try:
        with pytest.raises(RecipeNotApplicable, match="test-copy-tflite changed nothing: nothing to quantize: the "
                                                      r"weights are float16 behind DEQUANTIZE \(1 DEQUANTIZE ops\)"):
            _make("test-copy-tflite", source, tmp_path)
    finally:
        unregister_recipe("test-copy-tflite")
    from edgecheck.compress.diff import describe_change, model_facts

    facts = model_facts(source)
    assert facts.weights.by_dtype == {"float16": 1, "float32": 1} and facts.float16_behind_dequantize == 1
    changed = tmp_path / "changed.tflite"
    _float16_behind_dequantize(changed)
    changed.write_bytes(changed.read_bytes().replace(b"float16 weights behind", b"other description here"))
    with pytest.raises(RecipeNotApplicable):  # a description is not a change
        describe_change("x", source, changed)


# ---------------------------------------------------------------- 2. weights in Constant nodes

def test_constant_node_weights_are_parameters_and_get_quantized(tmp_path):
    model, parameters = _constant_weights(tmp_path / "paddle.onnx")
    assert inspect_model(model).parameters == parameters  # was 0: no initializers
    artifact = _make("int8-dynamic", model, tmp_path)
    assert artifact.notes["constants"] == ("3 weights held in Constant nodes folded into initializers so they could "
                                           "be quantized: w1, b1, w2_raw")
    assert artifact.path.stat().st_size < model.stat().st_size / 2  # was larger than the float model
    assert artifact.notes["quantized_nodes"] == "2 of 3"  # fc1, fc2 (relu stays float)
    x = np.random.default_rng(3).normal(size=(1, 64)).astype(np.float32)
    reference, quantized = _run(model, {"x": x})[0], _run(artifact.path, {"x": x})[0]
    assert np.linalg.norm(quantized - reference) / np.linalg.norm(reference) < 0.05


def test_edgecheck_inspect_counts_constant_node_weights(tmp_path, capsys):
    from edgecheck.cli import main

    model, parameters = _constant_weights(tmp_path / "paddle.onnx")
    assert main(["inspect", str(model)]) == 0
    assert f"parameters       {parameters:,} (" in capsys.readouterr().out


@pytest.mark.parametrize(("recipe", "params", "verb"), [("prune", {"sparsity": 0.5}, "pruned"),
                                                         ("lowrank", {"rank": 0.1, "min_params": 0}, "factored")])
def test_prune_and_lowrank_fold_constant_node_weights(tmp_path, recipe, params, verb):
    model, _ = _constant_weights(tmp_path / "paddle.onnx")
    artifact = _make(recipe, model, tmp_path, **params)
    assert artifact.notes["constants"].startswith(f"3 weights held in Constant nodes folded into initializers so "
                                                  f"they could be {verb}")
    assert "fc1" in artifact.notes.get("layers", artifact.notes.get("factored", ""))
    assert "fc2" in artifact.notes.get("layers", artifact.notes.get("factored", ""))


# ---------------------------------------------------------------- 3. artifacts a runtime refuses

def test_fp16_keeps_shape_math_in_float32_and_loads_where_onnxconverter_common_did_not(tmp_path):
    from onnxconverter_common import float16

    model = _shape_math_resize(tmp_path / "upsample.onnx")
    before = float16.convert_float_to_float16(onnx.load(str(model)), keep_io_types=True)
    with pytest.raises(Exception, match=r"Type Error: Type \(tensor\(float16\)\) of output arg \(hw_float\) of node "
                                        r"\(cast\) does not match expected type \(tensor\(float\)\)"):
        ort.InferenceSession(before.SerializeToString(), providers=["CPUExecutionProvider"])
    artifact = _make("fp16", model, tmp_path)
    assert artifact.notes["shape_nodes"] == "5 nodes that compute shapes kept in float32: gather, cast, mul, div, concat"
    casts = [n for n in onnx.load(str(artifact.path)).graph.node if n.op_type == "Cast"]
    assert len(casts) == 3  # input, output, the model's own: no float16 round trip in the shape math
    x = np.random.default_rng(4).normal(size=(1, 3, 4, 5)).astype(np.float32)
    reference, half = _run(model, {"x": x})[0], _run(artifact.path, {"x": x})[0]
    assert half.shape == reference.shape == (1, 3, 8, 10)
    np.testing.assert_allclose(half, reference, rtol=1e-2, atol=1e-2)


def test_fp16_casts_a_shape_derived_float_that_meets_the_data_in_float16(tmp_path):
    from onnxconverter_common import float16

    model = _shape_meets_data(tmp_path / "grid.onnx")
    before = float16.convert_float_to_float16(onnx.load(str(model)), keep_io_types=True)
    with pytest.raises(Exception, match=r"Type Error: Type \(tensor\(float16\)\) of output arg \(width_float\)"):
        ort.InferenceSession(before.SerializeToString(), providers=["CPUExecutionProvider"])
    artifact = _make("fp16", model, tmp_path)
    assert "shape_nodes" not in artifact.notes  # the width is data here: it goes float16 with the rest
    x = np.random.default_rng(7).normal(size=(1, 3, 4, 5)).astype(np.float32)
    np.testing.assert_allclose(_run(artifact.path, {"x": x})[0], _run(model, {"x": x})[0], rtol=1e-2, atol=2e-2)


OLD_FP16 = '''
from pathlib import Path

import onnx
from onnxconverter_common import float16

from edgecheck.compress import Artifact, register_recipe, unregister_recipe


@register_recipe("old-fp16")
def old_fp16(model, params, context):
    """float16 as onnxconverter-common converts it: its Casts to float keep float while their values are declared float16."""
    out = context.out_dir / "old.onnx"
    onnx.save(float16.convert_float_to_float16(onnx.load(str(model)), keep_io_types=True), str(out))
    return Artifact(out, "old-fp16", {"did": "fp16"})


def pytest_unconfigure(config):
    unregister_recipe("old-fp16")
'''


def test_an_artifact_its_runtime_refuses_fails_every_check_of_its_entry(pytester):
    (pytester.path / "models").mkdir()
    _shape_math_resize(pytester.path / "models" / "upsample.onnx")
    pytester.makeconftest(OLD_FP16)
    _spec(pytester, "upsample.onnx", "[old-fp16, fp16]")
    result = pytester.runpytest("specs", "--edge-no-cache", "--junitxml=r.xml")
    result.assert_outcomes(passed=3, failed=2)
    for check in ("size", "parity"):
        result.stdout.fnmatch_lines([
            f"*host-onnxruntime-old-fp16-{check}: old-fp16: ONNX Runtime cannot load the artifact old.onnx, so no "
            "check of this entry can pass: *Type Error: Type (tensor(float16)) of output arg (hw_float) of node (cast) "
            "does not match expected type (tensor(float)). Hint: leave the node 'cast' out of the recipe*"])
    cases = junit_properties(pytester.path / "r.xml")
    assert cases["host-onnxruntime-fp16-size"]["edge.verdict"] == "pass"
    assert "shape_nodes" in " ".join(cases["host-onnxruntime-fp16-size"])


def test_an_artifact_whose_source_the_runtime_refuses_too_is_not_blamed_on_the_recipe(tmp_path):
    """A custom op ONNX Runtime has no kernel for: the original fails to load as well, so the message
    says the recipe did not cause it and gives no hint about the recipe's parameters."""
    from edgecheck.compress.verify import verify_artifact

    def custom(path: Path, scale: float) -> Path:
        weight = numpy_helper.from_array(np.full((1, 4), scale, np.float32), "w")
        graph = helper.make_graph(
            [helper.make_node("Mul", ["x", "w"], ["h"], name="mul"),
             helper.make_node("FancyOp", ["h"], ["y"], name="fancy", domain="com.me")],
            "custom", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [weight])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.me", 1)])
        model.ir_version = 8
        onnx.save(model, str(path))
        return path

    source, artifact = custom(tmp_path / "custom.onnx", 1.0), custom(tmp_path / "custom.x.onnx", 0.5)
    with pytest.raises(RecipeError, match=r"cannot load the artifact custom\.x\.onnx, nor the model it was made "
                                          r"from, custom\.onnx \(.*FancyOp.*\): the recipe did not cause this") as raised:
        verify_artifact("int8-dynamic", source, Artifact(artifact, "int8-dynamic", {}))
    assert "Hint" not in str(raised.value) and str(tmp_path) not in str(raised.value)


# ---------------------------------------------------------------- 4. the checker's words, whole, as a note

def test_an_artifact_the_runtime_runs_but_the_checker_rejects_is_kept_with_the_checkers_whole_words(tmp_path):
    model = _if_reading_outer_value(tmp_path / "if.onnx")
    artifact = _make("int8-dynamic", model, tmp_path)
    note = artifact.notes["checker"]
    assert note.startswith("onnx.checker: Nodes in a graph must be topologically sorted, however input 'r' of node: "
                           "name: else_sub OpType: Sub is not output of any previous nodes")
    assert "ONNX Runtime loads it, and the runtime decides; its nodes were put in topological order" in note
    onnx.checker.check_model(str(artifact.path))  # every other tool reads it now
    assert inspect_model(artifact.path).op_counts["MatMulInteger"] == 1
    x = np.random.default_rng(5).normal(size=(1, 8)).astype(np.float32)
    for branch in (True, False):
        feed = {"x": x, "c": np.array(branch)}
        np.testing.assert_allclose(_run(artifact.path, feed)[0], _run(model, feed)[0], atol=0.1)


def test_checker_messages_keep_the_node_name(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["r", "W"], ["y"], name="late_matmul"), helper.make_node("Relu", ["x"], ["r"])],
        "unsorted", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        [numpy_helper.from_array(np.eye(2, dtype=np.float32), "W")])
    path = _save(graph, tmp_path / "unsorted.onnx")
    with pytest.raises(ModelError, match="ONNX checker rejected the model: Nodes in a graph must be topologically "
                                         "sorted, however input 'r' of node: name: late_matmul OpType: MatMul is not "
                                         "output of any previous nodes."):
        load_onnx(path)


def test_a_third_party_recipe_whose_artifact_is_refused_fails_with_the_runtimes_words(tmp_path):
    model = _bias_relu(tmp_path / "m.onnx")

    @register_recipe("test-broken-artifact")
    def broken(source: Path, params, context: RecipeContext) -> Artifact:
        proto = onnx.load(str(source))
        proto.graph.node[0].op_type = "NoSuchOp"
        out = context.out_dir / "broken.onnx"
        onnx.save(proto, str(out))
        return Artifact(out, "test-broken-artifact", {})

    try:
        with pytest.raises(RecipeError, match="test-broken-artifact: ONNX Runtime cannot load the artifact broken.onnx, "
                                              "so no check of this entry can pass: .*NoSuchOp"):
            _make("test-broken-artifact", model, tmp_path)
    finally:
        unregister_recipe("test-broken-artifact")



def test_constants_and_initializers_of_subgraphs_are_parameters_and_fold_there_too(tmp_path):
    from edgecheck.analysis.constants import fold_weight_constants

    branch = helper.make_graph(
        [helper.make_node("Constant", [], ["k"], value=numpy_helper.from_array(np.ones((8, 4), np.float32)), name="k"),
         helper.make_node("MatMul", ["x", "k"], ["t"], name="inner_mm")], "then", [],
        [helper.make_tensor_value_info("t", TensorProto.FLOAT, [1, 4])], [numpy_helper.from_array(np.zeros(3, np.float32), "unused")])
    other = helper.make_graph([helper.make_node("Constant", [], ["e"], value_ints=[1, 2, 3, 4], name="e"),
                               helper.make_node("Cast", ["e"], ["f"], to=TensorProto.FLOAT),
                               helper.make_node("Unsqueeze", ["f", "zero"], ["g"])], "else", [],
                              [helper.make_tensor_value_info("g", TensorProto.FLOAT, [1, 4])])
    graph = helper.make_graph(
        [helper.make_node("Constant", [], ["zero"], value_int=0),
         helper.make_node("If", ["c"], ["y"], then_branch=branch, else_branch=other, name="branch")], "nested",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8]), helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    path = _save(graph, tmp_path / "nested.onnx")
    assert inspect_model(path).parameters == 1 + 32 + 3 + 4
    proto = onnx.load(str(path))
    assert fold_weight_constants(proto) == ["k"]  # the weight a MatMul reads; shape constants stay as they are
    onnx.checker.check_model(proto)
    x = np.ones((1, 8), np.float32)
    for branch_taken in (True, False):
        feed = {"x": x, "c": np.array(branch_taken)}
        np.testing.assert_array_equal(ort.InferenceSession(proto.SerializeToString()).run(None, feed)[0], _run(path, feed)[0])


def test_int8_with_every_layer_excluded_says_the_layers_stayed_float(tmp_path):
    model, _ = _constant_weights(tmp_path / "paddle.onnx")
    with pytest.raises(RecipeNotApplicable, match="int8-dynamic changed nothing: its Gemm/MatMul layers all stayed "
                                                  "float \\(left out by the recipe's parameters"):
        _make("int8-dynamic", model, tmp_path, exclude_nodes=["fc1", "fc2"])


def test_a_checker_complaint_the_runtime_overrules_is_a_note_and_the_artifact_is_read(tmp_path):
    """An artifact whose output has no shape: onnx.checker refuses it, ONNX Runtime loads and runs it."""
    model = _bias_relu(tmp_path / "m.onnx")

    @register_recipe("test-shapeless-output")
    def shapeless(source: Path, params, context: RecipeContext) -> Artifact:
        proto = onnx.load(str(source))
        proto.graph.node[0].op_type = "Sub"
        proto.graph.output[0].type.tensor_type.ClearField("shape")
        out = context.out_dir / "shapeless.onnx"
        onnx.save(proto, str(out))
        return Artifact(out, "test-shapeless-output", {})

    try:
        artifact = _make("test-shapeless-output", model, tmp_path)
    finally:
        unregister_recipe("test-shapeless-output")
    assert artifact.notes["checker"] == ("onnx.checker: Field 'shape' of 'type' is required but missing; ONNX Runtime "
                                         "loads it, and the runtime decides")
    assert inspect_model(artifact.path).op_counts == {"Relu": 1, "Sub": 1}  # the session reads it
    other = tmp_path / "other.onnx"  # the same complaint on a file edgecheck did not vouch for is refused
    proto = onnx.load(str(artifact.path))
    del proto.metadata_props[:]
    onnx.save(proto, str(other))
    with pytest.raises(ModelError, match="ONNX checker rejected the model: Field 'shape' of 'type' is required"):
        load_onnx(other)
