"""The `prune` recipe on real models built here, run with ONNX Runtime.

The structured tests build models whose pruned channels are exactly zero: removing them must then
leave every output unchanged, which only holds if every consumer was sliced at the right indices.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgecheck.compress import Artifact, RecipeContext, RecipeNotApplicable, get_recipe
from edgecheck.errors import RecipeError

DIGITS = Path(__file__).resolve().parents[1] / "examples" / "digits" / "digits.onnx"


def prune(model: Path, out_dir: Path, **params: object) -> Artifact:
    recipe = get_recipe("prune")
    out_dir.mkdir(parents=True)
    return recipe.apply(model, recipe.parse_params(params), RecipeContext(calibration=None, out_dir=out_dir))


def run(model: Path, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return session.run(None, feed)


def weights(model: Path) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in onnx.load(str(model)).graph.initializer}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save(path: Path, nodes: list, inputs: list, outputs: list, initializers: dict[str, np.ndarray]) -> Path:
    graph = helper.make_graph(nodes, "test", inputs, outputs,
                              [numpy_helper.from_array(v, k) for k, v in initializers.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def tensor(name: str, shape: list) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def zero_channels(rng: np.random.Generator, count: int) -> np.ndarray:
    """Half the channels, scattered (not a prefix), so a wrong index mapping cannot go unnoticed."""
    return np.sort(rng.permutation(count)[: count // 2])


def digits_like_cnn(path: Path, seed: int = 0, zero_half: bool = False) -> Path:
    """The digits CNN's layout (Conv-Relu-Conv-Relu-Flatten-Gemm-Relu-Gemm); with `zero_half`, half the
    output channels of conv1, conv2 and fc1 have zero weights and bias, so pruning them is exact."""
    rng = np.random.default_rng(seed)
    shapes = {"conv1": (8, 1, 3, 3), "conv2": (16, 8, 3, 3), "fc1": (32, 256), "fc2": (10, 32)}
    init: dict[str, np.ndarray] = {}
    for name, shape in shapes.items():
        weight = rng.normal(size=shape).astype(np.float32)
        bias = rng.normal(size=shape[0]).astype(np.float32)
        if zero_half and name != "fc2":
            dead = zero_channels(rng, shape[0])
            weight[dead], bias[dead] = 0, 0
        init[f"{name}.weight"], init[f"{name}.bias"] = weight, bias
    nodes = [
        helper.make_node("Conv", ["input", "conv1.weight", "conv1.bias"], ["c1"], name="conv1",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "conv2.weight", "conv2.bias"], ["c2"], name="conv2",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("Flatten", ["r2"], ["flat"], name="flatten", axis=1),
        helper.make_node("Gemm", ["flat", "fc1.weight", "fc1.bias"], ["f1"], name="fc1", transB=1),
        helper.make_node("Relu", ["f1"], ["r3"], name="relu3"),
        helper.make_node("Gemm", ["r3", "fc2.weight", "fc2.bias"], ["logits"], name="fc2", transB=1),
    ]
    return save(path, nodes, [tensor("input", ["N", 1, 8, 8])], [tensor("logits", ["N", 10])], init)


def mobilenet_block(path: Path, seed: int = 0) -> Path:
    """Conv-BN-Relu, depthwise Conv-BN-Relu, Conv 1x1, GlobalAveragePool-Flatten-Gemm. Half the channels of
    the first conv and of the 1x1 conv are dead (zero weights, zero BN shift), so pruning them is exact."""
    rng = np.random.default_rng(seed)

    def normal(*shape: int) -> np.ndarray:
        return rng.normal(size=shape).astype(np.float32)

    init = {"conv_a.weight": normal(8, 3, 3, 3), "conv_a.bias": normal(8),
            "dw.weight": normal(8, 1, 3, 3), "dw.bias": normal(8),
            "pw.weight": normal(16, 8, 1, 1), "pw.bias": normal(16),
            "fc.weight": normal(10, 16), "fc.bias": normal(10)}
    for bn in ("bn1", "bn2"):
        init |= {f"{bn}.scale": normal(8), f"{bn}.bias": normal(8), f"{bn}.mean": normal(8),
                 f"{bn}.var": rng.uniform(0.5, 2.0, size=8).astype(np.float32)}
    dead = zero_channels(rng, 8)
    for name in ("conv_a.weight", "conv_a.bias", "dw.bias", "bn1.bias", "bn1.mean", "bn2.bias", "bn2.mean"):
        init[name][dead] = 0
    dead_pw = zero_channels(rng, 16)
    init["pw.weight"][dead_pw], init["pw.bias"][dead_pw] = 0, 0
    nodes = [
        helper.make_node("Conv", ["x", "conv_a.weight", "conv_a.bias"], ["a"], name="conv_a",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["a", "bn1.scale", "bn1.bias", "bn1.mean", "bn1.var"], ["a_bn"],
                         name="bn1"),
        helper.make_node("Relu", ["a_bn"], ["a_r"], name="relu_a"),
        helper.make_node("Conv", ["a_r", "dw.weight", "dw.bias"], ["d"], name="dw", kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1], group=8),
        helper.make_node("BatchNormalization", ["d", "bn2.scale", "bn2.bias", "bn2.mean", "bn2.var"], ["d_bn"],
                         name="bn2"),
        helper.make_node("Relu", ["d_bn"], ["d_r"], name="relu_d"),
        helper.make_node("Conv", ["d_r", "pw.weight", "pw.bias"], ["p"], name="pw", kernel_shape=[1, 1]),
        helper.make_node("GlobalAveragePool", ["p"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], name="fc", transB=1),
    ]
    return save(path, nodes, [tensor("x", ["N", 3, 8, 8])], [tensor("logits", ["N", 10])], init)


def residual_net(path: Path, seed: int = 0) -> Path:
    """conv0-Relu feeds conv1; conv1-Relu and conv2 are joined by a residual Add."""
    rng = np.random.default_rng(seed)
    init = {f"{name}.weight": rng.normal(size=shape).astype(np.float32)
            for name, shape in {"conv0": (8, 4, 1, 1), "conv1": (8, 8, 1, 1), "conv2": (8, 8, 3, 3),
                                "fc": (3, 8)}.items()}
    nodes = [
        helper.make_node("Conv", ["x", "conv0.weight"], ["c0"], name="conv0", kernel_shape=[1, 1]),
        helper.make_node("Relu", ["c0"], ["r0"], name="relu0"),
        helper.make_node("Conv", ["r0", "conv1.weight"], ["c1"], name="conv1", kernel_shape=[1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "conv2.weight"], ["c2"], name="conv2", kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c2", "r1"], ["sum"], name="residual"),
        helper.make_node("GlobalAveragePool", ["sum"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "fc.weight"], ["y"], name="fc", transB=1),
    ]
    return save(path, nodes, [tensor("x", ["N", 4, 6, 6])], [tensor("y", ["N", 3])], init)


def mlp(path: Path, seed: int = 0) -> Path:
    """MatMul-Add(bias)-Relu-Mul(per-feature scale)-MatMul, half the hidden features dead."""
    rng = np.random.default_rng(seed)
    init = {"w1": rng.normal(size=(6, 12)).astype(np.float32), "b1": rng.normal(size=12).astype(np.float32),
            "scale": rng.normal(size=(1, 12)).astype(np.float32), "w2": rng.normal(size=(12, 4)).astype(np.float32)}
    dead = zero_channels(rng, 12)
    init["w1"][:, dead], init["b1"][dead] = 0, 0
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"], name="mm1"),
             helper.make_node("Add", ["h", "b1"], ["hb"], name="bias1"),
             helper.make_node("Relu", ["hb"], ["hr"], name="relu"),
             helper.make_node("Mul", ["hr", "scale"], ["hs"], name="scale"),
             helper.make_node("MatMul", ["hs", "w2"], ["y"], name="mm2")]
    return save(path, nodes, [tensor("x", ["N", 6])], [tensor("y", ["N", 4])], init)


def random_input(shape: tuple[int, ...], seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def test_unstructured_zeroes_the_smallest_weights_of_each_layer(tmp_path: Path) -> None:
    artifact = prune(DIGITS, tmp_path / "out", sparsity=0.3)
    before, after = weights(DIGITS), weights(artifact.path)
    assert artifact.path.parent == tmp_path / "out" and artifact.recipe == "prune"
    for layer in ("conv1", "conv2", "fc1", "fc2"):
        original, pruned = before[f"{layer}.weight"], after[f"{layer}.weight"]
        assert pruned.shape == original.shape
        assert abs(np.count_nonzero(pruned == 0) - 0.3 * original.size) <= 1
        zeroed = pruned == 0
        assert np.abs(original[zeroed]).max() <= np.abs(original[~zeroed]).min()
        np.testing.assert_array_equal(pruned[~zeroed], original[~zeroed])
        np.testing.assert_array_equal(after[f"{layer}.bias"], before[f"{layer}.bias"])
    assert artifact.notes["mode"] == "unstructured"
    assert artifact.notes["sparsity"] == "0.300 of 9,736 weights"
    assert artifact.notes["parameters"] == "9,802 -> 9,802"
    assert "does not shrink" in artifact.notes["storage"]
    (logits,) = run(artifact.path, {"input": random_input((5, 1, 8, 8))})
    assert logits.shape == (5, 10) and np.isfinite(logits).all()


def test_structured_removes_channels_and_slices_consumers_exactly(tmp_path: Path) -> None:
    model = digits_like_cnn(tmp_path / "cnn.onnx", zero_half=True)
    artifact = prune(model, tmp_path / "out", structured=True)
    after = weights(artifact.path)
    assert after["conv1.weight"].shape == (4, 1, 3, 3) and after["conv1.bias"].shape == (4,)
    assert after["conv2.weight"].shape == (8, 4, 3, 3)
    assert after["fc1.weight"].shape == (16, 8 * 4 * 4) and after["fc1.bias"].shape == (16,)
    assert after["fc2.weight"].shape == (10, 16) and after["fc2.bias"].shape == (10,)
    assert artifact.notes["layers"] == "conv1 8->4, conv2 16->8, fc1 32->16"
    assert artifact.notes["skipped"] == "fc2: output is a graph output"
    assert artifact.notes["mode"] == "structured (output channels)"
    assert artifact.notes["sparsity"] == "0.424 of 66 channels"
    before_count, after_count = (int(n.replace(",", "")) for n in artifact.notes["parameters"].split(" -> "))
    assert after_count < before_count / 3
    assert artifact.path.stat().st_size < model.stat().st_size / 2
    feed = {"input": random_input((7, 1, 8, 8))}
    np.testing.assert_allclose(run(artifact.path, feed)[0], run(model, feed)[0], rtol=1e-5, atol=1e-5)


def test_structured_on_the_trained_digits_model_runs(tmp_path: Path) -> None:
    artifact = prune(DIGITS, tmp_path / "out", structured=True, sparsity=0.25)
    assert artifact.notes["layers"] == "conv1 8->6, conv2 16->12, fc1 32->24"
    (logits,) = run(artifact.path, {"input": random_input((3, 1, 8, 8))})
    assert logits.shape == (3, 10)


def test_structured_through_batchnorm_and_depthwise_conv(tmp_path: Path) -> None:
    model = mobilenet_block(tmp_path / "mobile.onnx")
    artifact = prune(model, tmp_path / "out", structured=True)
    pruned = onnx.load(str(artifact.path))
    after = {t.name: numpy_helper.to_array(t) for t in pruned.graph.initializer}
    assert artifact.notes["layers"] == "conv_a 8->4, pw 16->8"
    assert artifact.notes["skipped"] == "dw: grouped Conv; fc: output is a graph output"
    assert after["dw.weight"].shape == (4, 1, 3, 3) and after["dw.bias"].shape == (4,)
    assert all(after[f"bn{i}.{p}"].shape == (4,) for i in (1, 2) for p in ("scale", "bias", "mean", "var"))
    assert after["pw.weight"].shape == (8, 4, 1, 1) and after["fc.weight"].shape == (10, 8)
    depthwise = next(n for n in pruned.graph.node if n.name == "dw")
    assert helper.get_attribute_value(next(a for a in depthwise.attribute if a.name == "group")) == 4
    feed = {"x": random_input((4, 3, 8, 8))}
    np.testing.assert_allclose(run(artifact.path, feed)[0], run(model, feed)[0], rtol=1e-5, atol=1e-5)


def test_structured_matmul_with_bias_and_per_feature_scale(tmp_path: Path) -> None:
    model = mlp(tmp_path / "mlp.onnx")
    artifact = prune(model, tmp_path / "out", structured=True)
    after = weights(artifact.path)
    assert artifact.notes["layers"] == "mm1 12->6"
    assert after["w1"].shape == (6, 6) and after["b1"].shape == (6,) and after["scale"].shape == (1, 6)
    assert after["w2"].shape == (6, 4)
    feed = {"x": random_input((5, 6))}
    np.testing.assert_allclose(run(artifact.path, feed)[0], run(model, feed)[0], rtol=1e-5, atol=1e-5)


def test_residual_add_blocks_its_producers(tmp_path: Path) -> None:
    model = residual_net(tmp_path / "res.onnx")
    artifact = prune(model, tmp_path / "out", structured=True)
    assert artifact.notes["layers"] == "conv0 8->4"
    skipped = artifact.notes["skipped"]
    assert "conv1: Add residual combines it with another activation (c2)" in skipped
    assert "conv2: Add residual combines it with another activation (r1)" in skipped
    after = weights(artifact.path)
    assert after["conv1.weight"].shape == (8, 4, 1, 1) and after["conv2.weight"].shape == (8, 8, 3, 3)
    onnx.checker.check_model(onnx.load(str(artifact.path)), full_check=True)
    (y,) = run(artifact.path, {"x": random_input((2, 4, 6, 6))})
    assert y.shape == (2, 3)


def test_excluded_and_non_float32_layers_are_left_alone(tmp_path: Path) -> None:
    model = digits_like_cnn(tmp_path / "cnn.onnx")
    artifact = prune(model, tmp_path / "out", structured=True, exclude_nodes=["conv2"])
    # conv1 would have to slice conv2's inputs: excluded means untouched, so conv1 stays too
    assert artifact.notes["layers"] == "fc1 32->16"
    assert "conv1: feeds excluded node conv2" in artifact.notes["skipped"]
    assert "conv2: excluded" in artifact.notes["skipped"]
    with pytest.raises(RecipeError, match="exclude_nodes names no node of the model: nope"):
        prune(model, tmp_path / "out2", exclude_nodes=["nope"])
    half = save(tmp_path / "half.onnx", [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")],
                [helper.make_tensor_value_info("x", TensorProto.FLOAT16, ["N", 4])],
                [helper.make_tensor_value_info("y", TensorProto.FLOAT16, ["N", 3])],
                {"w": np.ones((4, 3), dtype=np.float16)})
    with pytest.raises(RecipeNotApplicable) as error:
        prune(half, tmp_path / "out3")
    assert str(error.value) == ("prune: nothing to prune: no Conv/Gemm/MatMul with a float32 initializer weight "
                                "(mm: weight is float16, only float32 is pruned)")


def test_deterministic_and_input_untouched(tmp_path: Path) -> None:
    model = tmp_path / "digits.onnx"
    shutil.copy(DIGITS, model)
    digest = sha256(model)
    for structured in (False, True):
        first = prune(model, tmp_path / f"a{structured}", structured=structured)
        second = prune(model, tmp_path / f"b{structured}", structured=structured)
        assert first.path.read_bytes() == second.path.read_bytes()
        assert first.notes == second.notes
        assert sorted(p.name for p in first.path.parent.iterdir()) == ["digits.prune.onnx"]
    assert sha256(model) == digest
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["digits.onnx"]


def test_external_data_is_loaded_and_written_inline(tmp_path: Path) -> None:
    source = onnx.load(str(DIGITS))
    folder = tmp_path / "model"
    folder.mkdir()
    onnx.save_model(source, str(folder / "digits.onnx"), save_as_external_data=True, location="digits.data",
                    size_threshold=0)
    artifact = prune(folder / "digits.onnx", tmp_path / "out", structured=True)
    assert artifact.notes["layers"] == "conv1 8->4, conv2 16->8, fc1 32->16"
    feed = {"input": random_input((2, 1, 8, 8))}
    assert run(artifact.path, feed)[0].shape == (2, 10)


def test_nothing_to_prune(tmp_path: Path) -> None:
    model = save(tmp_path / "plain.onnx",
                 [helper.make_node("Add", ["x", "b"], ["s"], name="add"), helper.make_node("Relu", ["s"], ["y"])],
                 [tensor("x", ["N", 4])], [tensor("y", ["N", 4])], {"b": np.ones(4, dtype=np.float32)})
    with pytest.raises(RecipeNotApplicable, match="nothing to prune: no Conv/Gemm/MatMul with a float32"):
        prune(model, tmp_path / "out")
    assert not list((tmp_path / "out").iterdir())
    classifier_only = save(tmp_path / "fc.onnx", [helper.make_node("Gemm", ["x", "w"], ["y"], name="fc")],
                           [tensor("x", ["N", 4])], [tensor("y", ["N", 3])],
                           {"w": np.ones((4, 3), dtype=np.float32)})
    with pytest.raises(RecipeNotApplicable, match="nothing to prune: fc: output is a graph output"):
        prune(classifier_only, tmp_path / "out2", structured=True)


@pytest.mark.parametrize(("raw", "message"), [
    ({"sparsity": 1.5}, "sparsity: Input should be less than 1"),
    ({"sparsity": 0}, "sparsity: Input should be greater than 0"),
    ({"op_types": ["Relu"]}, "op_types.0"),
    ({"op_types": []}, "op_types: "),
    ({"bogus": 1}, "bogus: unknown parameter (known: sparsity, structured, op_types, exclude_nodes)"),
])
def test_parameters_are_validated(raw: dict, message: str) -> None:
    with pytest.raises(RecipeError) as error:
        get_recipe("prune").parse_params(raw)
    assert message in str(error.value)


def blocked_tail(kind: str) -> tuple[list, list, dict[str, np.ndarray], list]:
    """Nodes after conv0-Relu (output r0 [N,8,6,6]) that make its channels impossible to remove."""
    if kind == "concat":
        return ([helper.make_node("Concat", ["r0", "x"], ["cat"], name="cat", axis=1),
                 helper.make_node("GlobalAveragePool", ["cat"], ["gap"]),
                 helper.make_node("Flatten", ["gap"], ["flat"]),
                 helper.make_node("Gemm", ["flat", "fc.weight"], ["y"], name="fc", transB=1)],
                [tensor("y", ["N", 3])], {"fc.weight": np.ones((3, 12), np.float32)}, [])
    if kind == "reshape":
        return ([helper.make_node("Reshape", ["r0", "shape"], ["flat"], name="reshape"),
                 helper.make_node("Gemm", ["flat", "fc.weight"], ["y"], name="fc", transB=1)],
                [tensor("y", ["N", 3])],
                {"shape": np.array([-1, 288], np.int64), "fc.weight": np.ones((3, 288), np.float32)}, [])
    if kind == "output":
        return [helper.make_node("Sigmoid", ["r0"], ["y"], name="sigmoid")], [tensor("y", ["N", 8, 6, 6])], {}, []
    branch = helper.make_graph([helper.make_node("Identity", ["r0"], ["b"])], "branch", [],
                               [tensor("b", ["N", 8, 6, 6])])
    return ([helper.make_node("If", ["cond"], ["y"], name="if", then_branch=branch, else_branch=branch)],
            [tensor("y", ["N", 8, 6, 6])], {}, [helper.make_tensor_value_info("cond", TensorProto.BOOL, [])])


@pytest.mark.parametrize(("kind", "reason"), [
    ("concat", "conv0: reaches Concat cat"),
    ("reshape", "conv0: reaches Reshape reshape"),
    ("output", "conv0: y is a graph output"),
    ("subgraph", "conv0: r0 is read inside the subgraph of if"),
])
def test_unfixable_consumers_block_the_layer(tmp_path: Path, kind: str, reason: str) -> None:
    nodes, outputs, init, extra_inputs = blocked_tail(kind)
    model = save(tmp_path / f"{kind}.onnx",
                 [helper.make_node("Conv", ["x", "conv0.weight"], ["c0"], name="conv0", kernel_shape=[1, 1]),
                  helper.make_node("Relu", ["c0"], ["r0"])] + nodes,
                 [tensor("x", ["N", 4, 6, 6]), *extra_inputs], outputs,
                 {"conv0.weight": random_input((8, 4, 1, 1))} | init)
    with pytest.raises(RecipeNotApplicable, match="nothing to prune: .*" + reason):
        prune(model, tmp_path / "out", structured=True)
    assert prune(model, tmp_path / "unstructured").notes["layers"].startswith("conv0 0.50")
