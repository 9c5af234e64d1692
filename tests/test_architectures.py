"""The published architectures of benchmarks/architectures.py against their published figures.

Every registered graph must pass onnx's full check (strict shape inference included), hold the
parameter count and, at its default input, the multiply-accumulates its sources publish, keep the
output layout rknn_model_zoo's export of it has, and be costed by edgecheck's static analysis
without a compute node left unknown. Counts are computed here from the graph and its inferred shapes,
not taken from the builders.

Tolerance: 2 %. Two differences are expected between a graph and a published figure. BN folding turns
each BatchNormalization's weight and bias into one convolution bias, one value fewer per BN channel
(0.1 to 0.5 % of the counts here: mobilenetv2's 0.49 % is the largest); published figures are rounded
to two or three digits (YOLOv5n's 1.9 M is 1.7 % above the 1867405 its fused model has). Where the
source's tool prints the exact count of the BN-fused model ("fused_params"), the graph must hold it
exactly, less what the zoo's export leaves out ("export_removes").
"""

from __future__ import annotations

import hashlib
import math
import sys
from pathlib import Path

import onnx
import pytest
from onnx import helper, shape_inference

from edgecheck.analysis.costs import model_facts
from edgecheck.analysis.graph import analyse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
try:
    import architectures
    from architectures import ARCHITECTURES, PUBLISHED
finally:
    sys.path.remove(str(ROOT / "benchmarks"))

REL = 0.02  # see the module docstring
NAMES = list(ARCHITECTURES)
# ops whose constant inputs are weights; Resize scales, ReduceSum axes and Clip bounds are not
WEIGHT_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul", "BatchNormalization"}


@pytest.fixture(scope="module")
def graphs():
    """Each architecture built once at its default input (batch 1, default size), with its inferred shapes."""
    cache: dict[str, tuple[onnx.ModelProto, onnx.ModelProto]] = {}

    def get(name: str) -> tuple[onnx.ModelProto, onnx.ModelProto]:
        if name not in cache:
            model = ARCHITECTURES[name]()
            cache[name] = (model, shape_inference.infer_shapes(model, strict_mode=True))
        return cache[name]

    return get


def _shapes(inferred: onnx.ModelProto) -> dict[str, list[int]]:
    values = [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]
    return {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in values}


def count_params(model: onnx.ModelProto) -> int:
    sizes = {t.name: math.prod(t.dims) for t in model.graph.initializer}
    weights = {i for n in model.graph.node if n.op_type in WEIGHT_OPS for i in n.input if i in sizes}
    return sum(sizes[name] for name in weights)


def count_macs(model: onnx.ModelProto, inferred: onnx.ModelProto) -> int:
    shapes = _shapes(inferred)
    weights = {t.name: list(t.dims) for t in model.graph.initializer}
    macs = 0
    for node in model.graph.node:
        if node.op_type == "Conv":  # each output element: kernel volume x input channels per group
            macs += math.prod(shapes[node.output[0]]) * math.prod(weights[node.input[1]][1:])
        elif node.op_type == "ConvTranspose":  # each input element scatters into out channels x kernel
            macs += math.prod(shapes[node.input[0]]) * math.prod(weights[node.input[1]][1:])
        elif node.op_type in ("Gemm", "MatMul"):
            assert not any(a.name == "transA" and a.i for a in node.attribute)
            macs += math.prod(shapes[node.output[0]]) * shapes[node.input[0]][-1]
    return macs


def test_every_architecture_has_its_published_figures():
    assert set(PUBLISHED) == set(ARCHITECTURES)
    for name, published in PUBLISHED.items():
        assert {"input", "params", "macs", "source", "graph_params"} <= set(published), name
        assert published["input"][0] == 1, name


@pytest.mark.parametrize("name", NAMES)
def test_the_graph_passes_onnx_full_check(graphs, name):
    model, _ = graphs(name)
    onnx.checker.check_model(model, full_check=True)
    assert len({n.name for n in model.graph.node}) == len(model.graph.node), "node names are unique"


@pytest.mark.parametrize("name", NAMES)
def test_parameters_and_macs_match_the_published_figures(graphs, name):
    model, inferred = graphs(name)
    published = PUBLISHED[name]
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == published["input"]
    params, macs = count_params(model), count_macs(model, inferred)
    assert params == pytest.approx(published["params"], rel=REL), (name, params)
    assert macs == pytest.approx(published["macs"], rel=REL), (name, macs)
    if "fused_params" in published:
        assert params == published["fused_params"] - published.get("export_removes", 0), (name, params)


@pytest.mark.parametrize("name", NAMES)
def test_edgecheck_costs_every_compute_node(graphs, name):
    model, inferred = graphs(name)
    facts = model_facts(analyse(model))
    assert [n.node.label for n in facts.unknown_nodes if n.kind == "compute"] == []
    assert facts.macs == count_macs(model, inferred)
    assert facts.parameters - count_params(model) < 10  # the graph's own constants (Resize scales, axes, bounds)


# the outputs rknn_model_zoo's ONNX files have (examples/<model>/README.md and postprocess), per scale
def _zoo_outputs(name: str, size: int = 640, batch: int = 1) -> list[list[int]]:
    grids = [size // 8, size // 16, size // 32]
    if name.startswith(("yolov5", "yolov7")):
        return [[batch, 255, s, s] for s in grids]
    if name.startswith("yolox"):
        return [[batch, 85, s, s] for s in grids]
    box = 4 if name == "yolov6n" else 64  # YOLOv6-N has no DFL; YOLOv8's box branch is DFL's 4 x 16 bins
    return [shape for s in grids for shape in ([batch, box, s, s], [batch, 80, s, s], [batch, 1, s, s])]


DETECTORS = [name for name in NAMES if name.startswith("yolo")]


@pytest.mark.parametrize("name", DETECTORS)
def test_detector_outputs_have_the_zoo_layout(graphs, name):
    _, inferred = graphs(name)
    shapes = _shapes(inferred)
    assert [shapes[o.name] for o in inferred.graph.output] == _zoo_outputs(name)


@pytest.mark.parametrize("name", ["yolov5n", "yolov8n", "yolox_s", "yolov7-tiny", "yolov6n"])
def test_builders_take_batch_and_size(name):
    model = ARCHITECTURES[name](batch=2, size=320)
    inferred = shape_inference.infer_shapes(model, strict_mode=True)
    shapes = _shapes(inferred)
    assert [shapes[o.name] for o in inferred.graph.output] == _zoo_outputs(name, 320, 2)


def test_the_zoo_heads_end_as_the_zoo_exports_them(graphs):
    ops = {name: [n.op_type for n in graphs(name)[0].graph.node] for name in ("yolov8n", "yolov6n", "yolov5n")}
    for name in ("yolov8n", "yolov6n"):  # per scale: Sigmoid on the classes, then ReduceSum + Clip
        assert ops[name].count("ReduceSum") == 3 and ops[name].count("Clip") == 3
    assert ops["yolov5n"][-1] == "Sigmoid"
    relu = [n.op_type for n in graphs("yolov5s_relu")[0].graph.node]  # a ReLU after every conv but Detect's
    assert relu.count("Sigmoid") == 3 and relu.count("Relu") == relu.count("Conv") - 3 and "Mul" not in relu
    yolox = graphs("yolox_s")[0].graph.node
    assert not any(n.op_type == "Slice" for n in yolox)  # Focus's slices are the export's fixed 2x2/2 conv


def _fingerprint(model: onnx.ModelProto) -> str:
    """Nodes (op, name, inputs, outputs, attributes), initializers (name, type, shape) and graph inputs/outputs."""
    g, digest = model.graph, hashlib.sha256()
    for n in g.node:
        attrs = sorted((a.name, repr(helper.get_attribute_value(a))) for a in n.attribute)
        digest.update(repr((n.op_type, n.domain, n.name, list(n.input), list(n.output), attrs)).encode())
    for t in g.initializer:
        digest.update(repr((t.name, t.data_type, list(t.dims))).encode())
    for v in [*g.input, *g.output]:
        digest.update(repr((v.name, [d.dim_value for d in v.type.tensor_type.shape.dim])).encode())
    return digest.hexdigest()


def test_yolov5s_is_the_graph_the_cost_model_was_calibrated_on(graphs):
    """The yolov5s built before the YOLOv5 family shared one builder (199 nodes, no head Sigmoids)."""
    model, _ = graphs("yolov5s")
    assert len(model.graph.node) == 199
    assert _fingerprint(model) == "49c723efed5ae1de6620288d1d895705e608ad3743f0edc62c6b35f2cd9edd52"
    assert model.graph.name == "yolov5s" and ARCHITECTURES["yolov5s"] is architectures.yolov5s
