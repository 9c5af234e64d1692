"""edgecheck.vendors.tensorrt.layers: placement (GPU, DLA, fallback from DLA), precision per layer, the layers TensorRT
left in a higher precision, the slowest-layers lines, and the cross-check with the shipped ONNX parser table. The
log and export samples are trtexec's own, cited where they are defined (tests/test_tensorrt_exports.py)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgecheck.vendors.tensorrt import TABLES
from edgecheck.vendors.tensorrt.exports import (EngineLayer, LayerProfile, LayerTime, read_layer_info, read_log,
                                                read_profile)
from edgecheck.vendors.tensorrt.layers import (DLA, FALLBACK, GPU, LayerPlacement, is_plumbing,
                                               left_in_higher_precision, onnx_names, placement_report, placements,
                                               slowest_layers)
from test_tensorrt_exports import LAYER_DETAILED, LAYER_NAMES, LOG_DLA, LOG_NANO_82, PROFILE_NEW, PROFILE_OLD

# The profile printed by --dumpProfile for a DLA engine (https://github.com/NVIDIA/TensorRT/issues/3143, 2023-07-21):
# one {ForeignNode[...]} per DLA subgraph plus the copies to and from DLA memory. Its layer names, verbatim.
DLA_PROFILE_NAMES = ["images to nvm", "{ForeignNode[Conv_0...Concat_198]}", "head_3 from nvm", "images copy finish",
                     "head_3 copy finish"]


def _names_only(names: list[str]) -> list[EngineLayer]:
    return [EngineLayer(n, None, None, None, None, False) for n in names]


def test_no_dla_requested_everything_on_gpu():
    layers, _ = read_layer_info(LAYER_DETAILED, "g.json")
    placed = placements(layers, read_log(LOG_NANO_82, "b.log"), dla_requested=False)
    assert [(p.device, p.precision) for p in placed] == [(GPU, "FP32"), (GPU, "INT8")]


def test_no_layer_info_uses_the_log_lists():
    placed = placements([], read_log(LOG_NANO_82, "b.log"), dla_requested=False)
    assert [(p.name, p.device, p.precision) for p in placed] == [
        ("/model/conv1/Conv + /model/relu/Relu", GPU, None), ("/model/maxpool/MaxPool", GPU, None)]
    log = read_log(LOG_DLA, "dla.log")
    placed = placements([], log, dla_requested=True)
    assert [(p.name, p.device) for p in placed] == [
        ("{ForeignNode[conv1_1...pool5]}", DLA), ("{ForeignNode[relu6...fc8]}", DLA),
        ("shuffle_between_pool5_and_fc6", FALLBACK), ("fc6", FALLBACK), ("prob", FALLBACK)]


def test_dla_with_log_lists_and_layer_names():
    # the layer names of the DLA build log (index id 31676822915) as a names-only layer info would list them
    log = read_log(LOG_DLA, "dla.log")
    names = ["{ForeignNode[conv1_1...pool5]}", "shuffle_between_pool5_and_fc6", "{ForeignNode[relu6...fc8]}", "fc6",
             "prob", "Reformatting CopyNode for Input Tensor 0 to fc6"]
    placed = {p.name: p for p in placements(_names_only(names), log, dla_requested=True)}
    assert placed["{ForeignNode[conv1_1...pool5]}"].device == DLA
    assert "[DlaLayer]" in placed["{ForeignNode[relu6...fc8]}"].evidence
    assert placed["fc6"].device == FALLBACK and "[GpuLayer]" in placed["fc6"].evidence
    assert placed["Reformatting CopyNode for Input Tensor 0 to fc6"].device == GPU  # TensorRT's own copy


def test_dla_without_log_infers_from_names():
    placed = {p.name: p for p in placements(_names_only(DLA_PROFILE_NAMES + ["conv_on_gpu"]), None, True)}
    assert placed["{ForeignNode[Conv_0...Concat_198]}"].device == DLA
    assert placed["{ForeignNode[Conv_0...Concat_198]}"].evidence.startswith("inferred")
    assert all(placed[n].device == GPU for n in ("images to nvm", "head_3 from nvm", "images copy finish"))
    assert placed["conv_on_gpu"].device == FALLBACK and placed["conv_on_gpu"].evidence.startswith("inferred")


def test_myelin_foreign_node_is_not_dla():
    # a Myelin subgraph is named {ForeignNode[...]} too ("[GpuLayer] MYELIN: {ForeignNode[...]}", index id 13706631864)
    myelin = EngineLayer("{ForeignNode[/model/taskhead22/Constant_12_output_0.../model/taskhead22/Unsqueeze_6]}",
                         "Myelin", "FP16", None, None, True)
    assert placements([myelin], None, dla_requested=True)[0].device == FALLBACK
    log = read_log("[01/10/2024-21:52:53] [I] [TRT] [GpuLayer] MYELIN: {ForeignNode[/model/taskhead22/Constant_12_"
                   "output_0.../model/taskhead22/Unsqueeze_6]}", "m.log")
    untyped = EngineLayer(myelin.name, None, "FP16", None, None, False)
    assert placements([untyped], log, dla_requested=True)[0].device == FALLBACK  # the log's list outranks the name


def test_left_in_higher_precision():
    placed = [LayerPlacement("conv_int8", GPU, "INT8", "CaskConvolution"),
              LayerPlacement("softmax", GPU, "FP16", "SoftMax"),
              LayerPlacement("head", FALLBACK, "FP32", "CaskConvolution"),
              LayerPlacement("QuantizeLinear_2", GPU, "FP32", "Reformat"),
              LayerPlacement("Reformatting CopyNode for Input Tensor 0 to x", GPU, "FP16", None),
              LayerPlacement("(Unnamed Layer* 52) [Shuffle]", GPU, "FP32", None),
              LayerPlacement("shape_math", GPU, "INT32", "ElementWise"),
              LayerPlacement("unknown", GPU, None, None)]
    assert [p.name for p in left_in_higher_precision(placed, "int8")] == ["softmax", "head"]
    assert [p.name for p in left_in_higher_precision(placed, "fp16")] == ["head"]
    assert left_in_higher_precision(placed, "FP32") == []
    with pytest.raises(ValueError, match="unknown precision 'int7'"):
        left_in_higher_precision(placed, "int7")


def test_left_in_higher_precision_on_the_qat_sample():
    # the QDQ MobileNet's first layers: the FP32 QuantizeLinear is a Reformat (data movement), the conv is INT8
    layers, _ = read_layer_info(LAYER_DETAILED, "g.json")
    assert left_in_higher_precision(placements(layers, None, False), "int8") == []


def test_slowest_layers_lines():
    profile = LayerProfile(10, [LayerTime("conv1 + relu", 9.1, 0.91, None, 38.1),
                                LayerTime("pool", 1.0, 0.1, None, 4.2),
                                LayerTime("fc", 5.0, 0.5, 0.5, 20.9),
                                LayerTime("copied_squeeze_after_fc", 0, 0, None, 0)])
    where = [LayerPlacement("conv1 + relu", GPU, "FP16"), LayerPlacement("fc", DLA, None)]
    assert slowest_layers(profile, where, count=2) == ["  38.1 %  0.910 ms  conv1 + relu  [GPU, FP16]",
                                                       "  20.9 %  0.500 ms  fc  [DLA, precision unknown]"]
    assert slowest_layers(profile, None) == ["  38.1 %  0.910 ms  conv1 + relu", "  20.9 %  0.500 ms  fc",
                                             "   4.2 %  0.100 ms  pool"]


def test_slowest_layers_on_the_samples():
    lines = slowest_layers(read_profile(PROFILE_NEW, "p.json"), None, count=2)
    assert lines == ["  18.4 %  0.202 ms  conv1.weight + QuantizeLinear_7 + Conv_9",
                     "   8.7 %  0.095 ms  MaxPool_12"]
    long = slowest_layers(read_profile(PROFILE_OLD, "p.json"), None, count=1)[0]
    assert long.startswith("   1.9 %  0.012 ms  QuantizeLinear_2")


def test_long_names_are_shortened():
    name = "a" * 60 + " + " + "b" * 60
    (line,) = slowest_layers(LayerProfile(1, [LayerTime(name, 1, 1, None, 100)]), None)
    assert " … " in line and line.endswith("b" * 20) and len(line) < 120


@pytest.mark.parametrize("name, expected", [
    ("conv1.weight + QuantizeLinear_7 + Conv_9", ["conv1.weight", "QuantizeLinear_7", "Conv_9"]),
    ("features.0.0.weight + QuantizeLinear_8 + Conv_12 + PWN(Clip_16)",
     ["features.0.0.weight", "QuantizeLinear_8", "Conv_12", "Clip_16"]),
    ("{ForeignNode[conv1_1...pool5]}", ["conv1_1", "pool5"]),
    ("/model.0/conv/Conv + PWN(PWN(/model.0/act/Sigmoid), /model.0/act/Mul)",
     ["/model.0/conv/Conv", "/model.0/act/Sigmoid", "/model.0/act/Mul"]),
])
def test_onnx_names(name, expected):
    # layer names from the samples (profiles above; the PWN fusion from index id 65731154747)
    assert onnx_names(name) == expected


def test_plumbing_names():
    assert all(is_plumbing(n) for n in ["images to nvm", "head_3 from nvm", "head_3 copy finish",
                                        "Reformatting CopyNode for Output Tensor 0 to MaxPool2d",
                                        "copied_squeeze_after_add_3", "(Unnamed Layer* 52) [Shuffle]"])
    assert not any(is_plumbing(n) for n in ["MaxPool2d", "MaxPool2d_1__22 + Reshape + (Unnamed Layer* 14) [Shuffle]"])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=20), st.none() | st.sampled_from(["Myelin", "Reformat", "CaskConvolution"]),
                          st.none() | st.sampled_from(["FP32", "FP16", "INT8", "INT32"])), max_size=8),
       st.lists(st.text(max_size=20), max_size=4), st.lists(st.text(max_size=20), max_size=4), st.booleans())
def test_every_layer_gets_one_device(rows, gpu, dla, requested):
    layers = [EngineLayer(n, t, p, None, None, True) for n, t, p in rows]
    log = read_log("\n".join([f"[I] [TRT] [GpuLayer] {n}" for n in gpu] + [f"[I] [TRT] [DlaLayer] {n}" for n in dla]),
                   "fuzz.log")
    placed = placements(layers, log, requested)
    if layers:
        assert [p.name for p in placed] == [l.name for l in layers]
    assert all(p.device in (GPU, DLA, FALLBACK) for p in placed)
    assert requested or all(p.device == GPU for p in placed)
    for wanted in ("int8", "fp16", "fp32"):
        assert set(p.name for p in left_in_higher_precision(placed, wanted)) <= set(p.name for p in placed)


# --- the cross-check with the shipped parser table -----------------------------------------------------------------


@pytest.fixture(scope="module")
def verdicts():
    from onnx import TensorProto, helper

    from edgecheck.analysis.graph import analyse
    from edgecheck.analysis.ops import classify
    from edgecheck.analysis.optable import read_table

    table = read_table(TABLES / "tensorrt-onnx-parser.yaml")
    weight = helper.make_tensor("w", TensorProto.FLOAT, [4, 3, 3, 3], [0.1] * 108)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], name="conv1", pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c"], ["r"], name="relu1"),
         helper.make_node("Frobnicate", ["r"], ["y"], name="custom1", domain="example.custom")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("example.custom", 1)])
    return table, classify(analyse(model), table).verdicts


def test_placement_report_and_disagreements(verdicts):
    table, onnx_verdicts = verdicts
    assert {v.node.name: v.status for v in onnx_verdicts} == {"conv1": "supported", "relu1": "supported",
                                                              "custom1": "unsupported"}
    engine = [LayerPlacement("conv1 + relu1", DLA, "FP16", None, "the build log lists it under [DlaLayer]"),
              LayerPlacement("custom1", FALLBACK, "FP32", "PluginV2", "the build log lists it under [GpuLayer] ...")]
    report, disagreements = placement_report(engine, table, onnx_verdicts, "TensorRT 8.5.2 on jetson-xavier-nx")
    assert report.counts() == {"supported": 1, "constraint": 0, "fallback": 1, "unsupported": 0}
    supported, fallback = report.verdicts
    assert "from ONNX Conv 'conv1', Relu 'relu1'" in supported.reason and supported.rule.startswith("TensorRT 8.5.2")
    assert fallback.status == "fallback" and fallback.node.key == "PluginV2"
    (line,) = disagreements
    assert line.startswith("custom1 (example.custom.Frobnicate): tensorrt-onnx-parser says unsupported")
    assert line.endswith("yet TensorRT 8.5.2 on jetson-xavier-nx built the engine")


def test_placement_report_notes_a_node_fused_away(verdicts):
    table, onnx_verdicts = verdicts
    engine = [LayerPlacement("conv1 + relu1", GPU, "FP16")]
    _, (line,) = placement_report(engine, table, onnx_verdicts, "TensorRT 10.3")
    assert line.endswith("(the node was fused, folded or renamed)")


def test_names_only_layer_info_places_on_gpu():
    layers, _ = read_layer_info(LAYER_NAMES, "g.json")
    placed = placements(layers, None, dla_requested=True)
    assert {p.name: p.device for p in placed}["Conv__25 + Relu"] == FALLBACK
    assert {p.name: p.device for p in placed}["copied_squeeze_after_add_3"] == GPU
    assert json.dumps([p.device for p in placed])  # plain strings
