"""The `lowrank` recipe on real models built with onnx.helper and run with ONNX Runtime."""

from __future__ import annotations

import hashlib
import itertools
import math
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from edgecheck.compress import Artifact, RecipeContext, RecipeNotApplicable, get_recipe
from edgecheck.errors import RecipeError

DIGITS = Path(__file__).resolve().parents[1] / "examples" / "digits" / "digits.onnx"
_outs = itertools.count()


def low_rank(rows: int, cols: int, rank: int, seed: int = 0) -> np.ndarray:
    """A float32 matrix of exactly `rank`: the product of two random thin matrices."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((rows, rank)) @ rng.standard_normal((rank, cols))).astype(np.float32)


def save(folder: Path, nodes: list, weights: dict[str, np.ndarray], inputs: dict[str, list],
         outputs: dict[str, list], name: str = "model.onnx", opset: int = 17) -> Path:
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(k, TensorProto.FLOAT, v) for k, v in inputs.items()],
        [helper.make_tensor_value_info(k, TensorProto.FLOAT, v) for k, v in outputs.items()],
        [numpy_helper.from_array(v, k) for k, v in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model, full_check=True)
    path = folder / name
    onnx.save_model(model, str(path))
    return path


def apply(model: Path, tmp: Path, **params) -> Artifact:
    out = tmp / f"out{next(_outs)}"
    out.mkdir()
    recipe = get_recipe("lowrank")
    return recipe.apply(model, recipe.parse_params(params), RecipeContext(calibration=None, out_dir=out))


def run(model: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def assert_close(actual: np.ndarray, expected: np.ndarray, rtol: float = 1e-4) -> None:
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * float(np.abs(expected).max()))


def parameters(model: Path) -> int:
    return sum(math.prod(t.dims) for t in onnx.load(str(model)).graph.initializer)


def gemm_model(folder: Path, weight: np.ndarray, *, trans_a: int = 0, trans_b: int = 0, alpha: float = 1.0,
               beta: float = 1.0, bias: bool = True, batch: int = 5, name: str = "fc") -> Path:
    n_in, n_out = weight.shape
    stored = weight.T.copy() if trans_b else weight
    weights = {"w": stored} | ({"b": np.linspace(-1, 1, n_out, dtype=np.float32)} if bias else {})
    node = helper.make_node("Gemm", ["x", "w"] + (["b"] if bias else []), ["y"], name=name,
                            transA=trans_a, transB=trans_b, alpha=alpha, beta=beta)
    x_shape = [n_in, batch] if trans_a else [batch, n_in]
    return save(folder, [node], weights, {"x": x_shape}, {"y": [batch, n_out]})


@pytest.mark.parametrize("trans_a, trans_b, alpha, beta, bias", [
    (0, 0, 1.0, 1.0, True), (0, 1, 1.0, 1.0, True), (1, 0, 0.5, 2.0, True), (1, 1, 1.5, 0.25, True),
    (0, 1, 2.0, 1.0, False),
])
def test_exact_rank_gemm_is_recovered_and_matches(tmp_path, trans_a, trans_b, alpha, beta, bias):
    model = gemm_model(tmp_path, low_rank(48, 40, 4), trans_a=trans_a, trans_b=trans_b, alpha=alpha,
                       beta=beta, bias=bias)
    x = np.random.default_rng(1).standard_normal((48, 5) if trans_a else (5, 48)).astype(np.float32)
    art = apply(model, tmp_path, energy=0.999999)
    assert art.notes["factored"].startswith("fc [48x40] rank 4 (energy 1.000)")
    assert art.notes["parameters"] == f"{48 * 40 + 40 * bias:,} -> {4 * 88 + 40 * bias:,}"
    assert "skipped" not in art.notes
    assert_close(run(art.path, {"x": x})[0], run(model, {"x": x})[0])
    graph = onnx.load(str(art.path)).graph
    assert [(n.name, n.op_type) for n in graph.node] == [("fc.lowrank_a", "Gemm"), ("fc.lowrank_b", "Gemm")]
    assert graph.node[1].output == ["y"]
    assert sorted(t.name for t in graph.initializer) == sorted(["w.lowrank_a", "w.lowrank_b"] + ["b"] * bias)


def test_matmul_with_a_2d_weight_and_batched_input(tmp_path):
    model = save(tmp_path, [helper.make_node("MatMul", ["x", "w"], ["y"], name="proj")],
                 {"w": low_rank(64, 48, 3)}, {"x": [2, 3, 64]}, {"y": [2, 3, 48]})
    x = np.random.default_rng(2).standard_normal((2, 3, 64)).astype(np.float32)
    art = apply(model, tmp_path, energy=0.999999)
    assert "proj [64x48] rank 3" in art.notes["factored"]
    assert [n.op_type for n in onnx.load(str(art.path)).graph.node] == ["MatMul", "MatMul"]
    assert_close(run(art.path, {"x": x})[0], run(model, {"x": x})[0])
    assert parameters(art.path) == 3 * (64 + 48) < parameters(model)


def test_strided_padded_1x1_conv_matches_including_the_padded_border(tmp_path):
    weight = low_rank(64, 48, 3, seed=3).reshape(64, 48, 1, 1)  # [out, in, 1, 1]
    bias = np.linspace(-2, 2, 64, dtype=np.float32)
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], name="pw", kernel_shape=[1, 1], strides=[2, 2],
                            pads=[1, 1, 1, 1])
    model = save(tmp_path, [node], {"w": weight, "b": bias}, {"x": [2, 48, 9, 9]}, {"y": [2, 64, 6, 6]})
    x = np.random.default_rng(4).standard_normal((2, 48, 9, 9)).astype(np.float32)
    art = apply(model, tmp_path, energy=0.999999)
    assert "pw [48x64] rank 3" in art.notes["factored"]
    first, second = onnx.load(str(art.path)).graph.node
    assert numpy_helper.to_array(next(t for t in onnx.load(str(art.path)).graph.initializer
                                      if t.name == first.input[1])).shape == (3, 48, 1, 1)
    assert {a.name: list(a.ints) for a in first.attribute if a.ints}["strides"] == [2, 2]
    assert second.input == [first.output[0], "w.lowrank_b", "b"]
    factored, original = run(art.path, {"x": x})[0], run(model, {"x": x})[0]
    assert_close(factored, original)
    np.testing.assert_allclose(factored[:, :, 0, 0], np.broadcast_to(bias, (2, 64)), rtol=1e-6)  # padding
    assert parameters(art.path) < parameters(model)


def test_rank_fraction_is_ceiled_and_reported(tmp_path):
    weight = np.random.default_rng(5).standard_normal((48, 40)).astype(np.float32)
    art = apply(gemm_model(tmp_path, weight, trans_b=1), tmp_path, rank=0.25)
    assert art.notes["factored"].startswith("fc [48x40] rank 10 (energy ")  # ceil(0.25 * 40)
    art = apply(gemm_model(tmp_path, weight[:, :30], name="odd"), tmp_path, rank=0.3)
    assert "odd [48x30] rank 9 " in art.notes["factored"]  # 0.3 * 30 = 9.000000000000002 -> still 9


def weight_error(art: Artifact, weight: np.ndarray) -> float:
    factors = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in onnx.load(str(art.path)).graph.initializer}
    return float(np.linalg.norm(weight - factors["w.lowrank_a"] @ factors["w.lowrank_b"]))


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), n_in=st.integers(24, 64), n_out=st.integers(24, 64),
       fractions=st.lists(st.floats(0.01, 0.45), min_size=2, max_size=2, unique=True))
def test_error_shrinks_as_rank_grows(tmp_path_factory, seed, n_in, n_out, fractions):
    """Truncated SVD: more rank never hurts, in the weight and in the outputs (V's rows are orthonormal)."""
    folder = tmp_path_factory.mktemp("sweep")
    rng = np.random.default_rng(seed)
    weight = rng.standard_normal((n_in, n_out)).astype(np.float32)
    model = gemm_model(folder, weight, bias=False)
    x = rng.standard_normal((5, n_in)).astype(np.float32)
    expected = run(model, {"x": x})[0]
    results = []
    for fraction in sorted(fractions):
        art = apply(model, folder, rank=fraction, min_params=0)
        rank = math.ceil(fraction * min(n_in, n_out) - 1e-9)
        assert f"rank {rank} " in art.notes["factored"]
        output_error = float(np.linalg.norm(run(art.path, {"x": x})[0] - expected))
        results.append((rank, weight_error(art, weight), output_error))
    (low, low_w, low_y), (high, high_w, high_y) = results
    slack = 1e-5 * float(np.linalg.norm(weight))
    assert high_w <= low_w + slack
    assert high_y <= low_y + slack * float(np.linalg.norm(x))
    if high > low:
        assert high_w < low_w  # random matrices have distinct singular values: strictly better


def test_small_and_unprofitable_weights_are_skipped_with_reasons(tmp_path):
    nodes = [helper.make_node("Gemm", ["x", "w"], ["h"], name="big"),
             helper.make_node("Gemm", ["h", "small"], ["y"], name="tiny")]
    small = np.random.default_rng(10).standard_normal((40, 8)).astype(np.float32)  # full rank 8
    model = save(tmp_path, nodes, {"w": low_rank(48, 40, 4), "small": small}, {"x": [5, 48]}, {"y": [5, 8]})
    art = apply(model, tmp_path, energy=0.999999)
    assert art.notes["factored"] == "big [48x40] rank 4 (energy 1.000)"
    assert art.notes["skipped"] == "tiny [40x8]: 320 weights < min_params 1,024"
    art = apply(model, tmp_path, energy=0.999999, min_params=0)
    assert art.notes["factored"] == "big [48x40] rank 4 (energy 1.000)"
    assert art.notes["skipped"] == "tiny [40x8]: rank 8 would not reduce parameters (384 >= 320)"
    graph = onnx.load(str(art.path)).graph
    assert [n.name for n in graph.node] == ["big.lowrank_a", "big.lowrank_b", "tiny"]


def test_full_rank_square_weight_is_not_applicable(tmp_path):
    weight = np.random.default_rng(6).standard_normal((40, 40)).astype(np.float32)
    model = gemm_model(tmp_path, weight, name="sq")
    with pytest.raises(RecipeNotApplicable, match=r"lowrank: nothing to factorize: sq \[40x40\]: rank \d+ "
                                                  r"would not reduce parameters"):
        apply(model, tmp_path, energy=0.99)


def test_nothing_to_factor_lists_every_reason(tmp_path):
    nodes = [helper.make_node("MatMul", ["x", "z"], ["h"], name="act"),
             helper.make_node("Gemm", ["h", "w"], ["y"], name="fc", transB=1)]
    model = save(tmp_path, nodes, {"w": low_rank(40, 48, 2)}, {"x": [5, 16], "z": [16, 48]}, {"y": [5, 40]})
    with pytest.raises(RecipeNotApplicable) as caught:
        apply(model, tmp_path, exclude_nodes=["fc"])
    assert str(caught.value) == ("lowrank: nothing to factorize: act: weight 'z' is not an initializer "
                                 "(computed at run time); fc: excluded by exclude_nodes")
    with pytest.raises(RecipeNotApplicable, match="no Conv node in the main graph"):
        apply(model, tmp_path, op_types=["Conv"])


def test_digits_defaults_factor_fc1_and_skip_fc2(tmp_path):
    art = apply(DIGITS, tmp_path)
    assert art.path.name == "digits.lowrank.onnx"
    assert art.notes["factored"].startswith("fc1 [256x32] rank ")
    assert "fc2 [32x10]: 320 weights < min_params 1,024" in art.notes["skipped"]
    assert "conv1: kernel 3x3" in art.notes["skipped"]
    before, after = (int(n.replace(",", "")) for n in art.notes["parameters"].split(" -> "))
    assert before == 9802 and after < before == parameters(DIGITS) and after == parameters(art.path)
    x = np.random.default_rng(7).standard_normal((16, 1, 8, 8)).astype(np.float32)
    factored, original = run(art.path, {"input": x})[0], run(DIGITS, {"input": x})[0]
    assert factored.shape == original.shape == (16, 10) and np.all(np.isfinite(factored))
    assert {v.name for v in onnx.load(str(art.path)).graph.value_info} >= {"fc1.lowrank_hidden", "fc1.out"}


def test_output_is_deterministic_and_the_input_untouched(tmp_path):
    digest = hashlib.sha256(DIGITS.read_bytes()).hexdigest()
    first, second = apply(DIGITS, tmp_path, rank=0.5), apply(DIGITS, tmp_path, rank=0.5)
    assert first.path.read_bytes() == second.path.read_bytes()
    assert first.notes == second.notes
    assert hashlib.sha256(DIGITS.read_bytes()).hexdigest() == digest


def test_shared_weight_is_factored_once_and_kept_where_a_subgraph_reads_it(tmp_path):
    weight = low_rank(48, 48, 3)
    branch = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["t"], name="inner")], "then", [],
                               [helper.make_tensor_value_info("t", TensorProto.FLOAT, [5, 48])])
    nodes = [helper.make_node("MatMul", ["x", "w"], ["a"], name="m1"),
             helper.make_node("MatMul", ["a", "w"], ["y"], name="m2"),
             helper.make_node("If", ["cond"], ["z"], name="branch", then_branch=branch, else_branch=branch)]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [5, 48]),
                     helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [5, 48]) for n in ("y", "z")],
        [numpy_helper.from_array(weight, "w")])
    model = tmp_path / "shared.onnx"
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(model))
    art = apply(model, tmp_path, energy=0.999999)
    assert art.notes["factored"] == "m1 [48x48] rank 3 (energy 1.000), m2 [48x48] rank 3 (energy 1.000)"
    names = [t.name for t in onnx.load(str(art.path)).graph.initializer]
    assert sorted(names) == ["w", "w.lowrank_a", "w.lowrank_b"]  # "w" stays: the If branches read it
    x = np.random.default_rng(8).standard_normal((5, 48)).astype(np.float32)
    feeds = {"x": x, "cond": np.array(True)}
    for got, want in zip(run(art.path, feeds), run(model, feeds)):
        assert_close(got, want, rtol=1e-3)


def test_external_data_is_loaded_and_the_artifact_is_self_contained(tmp_path):
    source = gemm_model(tmp_path, low_rank(64, 48, 4), trans_b=1)
    model = onnx.load(str(source))
    external = tmp_path / "ext"
    external.mkdir()
    onnx.save_model(model, str(external / "big.onnx"), save_as_external_data=True, location="big.data",
                    size_threshold=0)
    art = apply(external / "big.onnx", tmp_path, energy=0.999999)
    x = np.random.default_rng(9).standard_normal((5, 64)).astype(np.float32)
    assert_close(run(art.path, {"x": x})[0], run(source, {"x": x})[0])
    assert sorted(p.name for p in art.path.parent.iterdir()) == ["big.lowrank.onnx"]


def test_parameters_are_validated():
    recipe = get_recipe("lowrank")
    assert recipe.parse_params({}).energy == 0.9 and recipe.parse_params({}).rank is None
    assert recipe.parse_params({"rank": 0.5}).energy is None
    with pytest.raises(RecipeError, match="either rank or energy, not both"):
        recipe.parse_params({"rank": 0.5, "energy": 0.9})
    with pytest.raises(RecipeError, match=r"bogus: unknown parameter \(known: rank, energy, op_types, "
                                          r"exclude_nodes, min_params\)"):
        recipe.parse_params({"bogus": 1})
    for bad in ({"rank": 0}, {"energy": 1.5}, {"op_types": ["Relu"]}, {"min_params": -1}):
        with pytest.raises(RecipeError, match="recipe 'lowrank'"):
            recipe.parse_params(bad)


def test_factor_signs_are_fixed_so_equal_weights_give_equal_bytes():
    from edgecheck.compress.lowrank import factorize

    weight = np.random.default_rng(11).standard_normal((30, 20)).astype(np.float32)
    first, second = factorize(weight, 5)
    pivots = first[np.argmax(np.abs(first), axis=0), np.arange(5)]
    assert np.all(pivots > 0)  # each left factor's largest entry is positive, whatever LAPACK chose
    assert first.dtype == second.dtype == np.float32 and first.shape == (30, 5) and second.shape == (5, 20)
    exact = np.linalg.svd(weight.astype(np.float64), compute_uv=False)
    error = np.linalg.norm(weight - first.astype(np.float64) @ second)
    assert error == pytest.approx(np.sqrt(np.sum(exact[5:] ** 2)), rel=1e-4)  # Eckart-Young optimum


def test_unnamed_nodes_are_named_by_op_type_and_index_and_float16_weights_stay(tmp_path):
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Gemm", ["h", "w2"], ["y"])]
    model = save(tmp_path, nodes, {"w": low_rank(48, 48, 2), "w2": low_rank(48, 40, 2)},
                 {"x": [5, 48]}, {"y": [5, 40]})
    art = apply(model, tmp_path, energy=0.999999, exclude_nodes=["Gemm_1"])
    assert [n.name for n in onnx.load(str(art.path)).graph.node] == ["MatMul_0.lowrank_a", "MatMul_0.lowrank_b", ""]
    assert art.notes["skipped"] == "Gemm_1: excluded by exclude_nodes"
    half = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="h")], "g",
                             [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [5, 48])],
                             [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [5, 48])],
                             [numpy_helper.from_array(low_rank(48, 48, 2).astype(np.float16), "w")])
    onnx.save_model(helper.make_model(half, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "h.onnx"))
    with pytest.raises(RecipeNotApplicable, match=r"h: weight 'w' is float16 \(only float32"):
        apply(tmp_path / "h.onnx", tmp_path)
