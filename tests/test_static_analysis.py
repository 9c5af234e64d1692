"""Static analysis as a library: the graph walk, node costs, operator tables and their verdicts, the
latency estimate and its calibration. Every model is built here with onnx.helper; nothing runs one."""

from __future__ import annotations

import math
import platform
import sys
from pathlib import Path

import numpy as np
import onnx
import onnx.inliner
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgecheck.analysis import calibrate
from edgecheck.analysis.costs import model_facts
from edgecheck.analysis.estimate import LatencyEstimate, estimate_latency
from edgecheck.analysis.graph import analyse
from edgecheck.analysis.ops import classify
from edgecheck.analysis.optable import builtin_table_dirs, Constraint, OpRule, OpTable, Unlisted, load_tables, read_table
from edgecheck.devices import load_profiles
from edgecheck.errors import CannotJudge, DeviceError, ModelError

ROOT = Path(__file__).resolve().parents[1]
FLOAT, FLOAT16, INT8 = TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.INT8


def _model(nodes, inputs, outputs, initializers=(), opset=17, functions=(), extra_opsets=(), check=True):
    """A checked model from nodes; `inputs`/`outputs` are (name, elem type, shape) triples."""
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(*i) for i in inputs],
                              [helper.make_tensor_value_info(*o) for o in outputs], list(initializers))
    opsets = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, v) for d, v in extra_opsets]
    model = helper.make_model(graph, opset_imports=opsets, functions=list(functions))
    model.ir_version = 8
    if check:
        onnx.checker.check_model(model, full_check=True)
    return model


def _init(name, shape, dtype=np.float32, value=0.0):
    return numpy_helper.from_array(np.full(shape, value, dtype), name)


def _by_label(graph):
    return {node.label: node for node in graph.nodes}


# 1. the graph walk


def _control_flow_model():
    """x[N, 4] → ReduceSum → Greater → If(then Relu, else Neg) → Loop(body Add) → my.ops.Block (a model
    function: Sigmoid, Mul)."""
    then_g = helper.make_graph([helper.make_node("Relu", ["x"], ["t"], name="then_relu")], "then", [],
                               [helper.make_tensor_value_info("t", FLOAT, [1, 4])])
    else_g = helper.make_graph([helper.make_node("Neg", ["x"], ["e"], name="else_neg")], "else", [],
                               [helper.make_tensor_value_info("e", FLOAT, [1, 4])])
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"], name="body_cond"),
         helper.make_node("Add", ["v_in", "v_in"], ["v_out"], name="body_add")], "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_in", FLOAT, [1, 4])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", FLOAT, [1, 4])])
    function = helper.make_function("my.ops", "Block", ["a"], ["b"],
                                    [helper.make_node("Sigmoid", ["a"], ["s"], name="fn_sig"),
                                     helper.make_node("Mul", ["a", "s"], ["b"], name="fn_mul")],
                                    [helper.make_opsetid("", 17)])
    nodes = [
        helper.make_node("ReduceSum", ["x"], ["sum"], name="sum", keepdims=0),
        helper.make_node("Greater", ["sum", "zero"], ["c"], name="gt"),
        helper.make_node("If", ["c"], ["y"], name="branch", then_branch=then_g, else_branch=else_g),
        helper.make_node("Loop", ["trip", "", "y"], ["z"], name="loop", body=body),
        helper.make_node("Block", ["z"], ["w"], name="call", domain="my.ops"),
    ]
    return _model(nodes, [("x", FLOAT, ["N", 4])], [("w", FLOAT, [None, 4])],
                  [_init("zero", (), value=0.0), numpy_helper.from_array(np.array(3, np.int64), "trip")],
                  functions=[function], extra_opsets=[("my.ops", 1)])


def test_analyse_walks_if_branches_loop_bodies_and_model_functions():
    graph = analyse(_control_flow_model())
    nodes = _by_label(graph)
    # the model function is inlined at its call, as runtimes do: its nodes sit in the main graph
    assert {"sum", "gt", "branch", "loop", "branch.then_branch/then_relu", "branch.else_branch/else_neg",
            "loop.body/body_cond", "loop.body/body_add", "fn_sig__1", "fn_mul__1"} == set(nodes)
    relu = nodes["branch.then_branch/then_relu"]
    assert relu.where == "branch.then_branch" and relu.key == "Relu" and relu.since_version == 14
    assert nodes["loop.body/body_add"].where == "loop.body"
    assert nodes["fn_sig__1"].key == "Sigmoid" and not nodes["fn_sig__1"].where
    assert any("inlined at each call" in note and "my.ops.Block" in note for note in graph.notes)
    assert [n.label for n in graph.main_nodes()] == ["sum", "gt", "branch", "loop", "fn_sig__1", "fn_mul__1"]


def test_a_node_outside_the_default_domain_is_keyed_with_its_domain():
    nodes = [helper.make_node("Gelu", ["x"], ["y"], name="gelu", domain="com.microsoft"),
             helper.make_node("Relu", ["y"], ["z"], name="relu", domain="ai.onnx")]
    model = _model(nodes, [("x", FLOAT, [1, 4])], [("z", FLOAT, [1, 4])], extra_opsets=[("com.microsoft", 1)],
                   check=False)
    graph = analyse(model)
    keys = {n.name: n.key for n in graph.nodes}
    assert keys == {"gelu": "com.microsoft.Gelu", "relu": "Relu"}  # 'ai.onnx' is the default domain


def test_dynamic_input_dimensions_are_taken_as_one_with_a_note_and_given_shapes_are_used():
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="relu")]
    model = _model(nodes, [("x", FLOAT, ["batch", 3, "h", 8])], [("y", FLOAT, ["batch", 3, "h", 8])])
    assumed = analyse(model)
    assert assumed.input_shapes == {"x": (1, 3, 1, 8)}
    assert assumed.dynamic_inputs == {"x": ["batch", "h"]}
    assert any("dimension 0 (batch) taken as 1" in n for n in assumed.notes), assumed.notes
    assert any("dimension 2 (h) taken as 1" in n for n in assumed.notes), assumed.notes
    assert assumed.tensor("y").shape == (1, 3, 1, 8)

    given = analyse(model, {"x": (2, 3, 5, 8)})
    assert given.input_shapes == {"x": (2, 3, 5, 8)}
    assert given.tensor("y").shape == (2, 3, 5, 8) and given.tensor("y").elements == 240
    assert not any("taken as 1" in n for n in given.notes)
    with pytest.raises(ValueError, match="rank 4"):
        analyse(model, {"x": (2, 3)})


def test_a_truncated_model_file_is_a_model_error_naming_the_file(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="conv")]
    model = _model(nodes, [("x", FLOAT, [1, 3, 8, 8])], [("y", FLOAT, [1, 4, 6, 6])], [_init("w", (4, 3, 3, 3))])
    path = tmp_path / "broken.onnx"
    data = model.SerializeToString()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="broken.onnx") as caught:
        analyse(path)
    assert caught.value.path == path


def _function_model(function_nodes, main_nodes, initializers=()):
    """x[2, 4] through main nodes calling my.ops functions; the function 'Fn' has formal input a, output b."""
    function = helper.make_function("my.ops", "Fn", ["a"], ["b"], function_nodes, [helper.make_opsetid("", 17)])
    return _model(main_nodes, [("x", FLOAT, [2, 4])], [("y", FLOAT, [2, 4])], initializers, functions=[function],
                  extra_opsets=[("my.ops", 1)])


def test_a_function_bodys_names_are_its_own_not_the_main_graphs():
    model = _function_model([helper.make_node("Relu", ["a"], ["b"], name="fn_relu")],
                            [helper.make_node("Add", ["x", "a"], ["s"], name="add"),
                             helper.make_node("Fn", ["s"], ["y"], name="call", domain="my.ops")],
                            [_init("a", (2, 4), value=1.0)])
    table = _table({"Add": OpRule()}, unlisted="unsupported")
    inlined = classify(analyse(onnx.inliner.inline_local_functions(model)), table)
    assert [v.status for v in inlined.verdicts if v.node.key == "Relu"] == ["unsupported"]  # what runtimes see
    verdict, _ = _verdict(analyse(model), table, "fn_relu__1")  # the inlined node's name
    assert verdict.status == "unsupported", verdict.reason


def test_a_function_called_twice_costs_what_the_inlined_model_costs():
    body = [helper.make_node("Constant", [], ["k"], name="fn_k", value=numpy_helper.from_array(np.ones((4, 4), np.float32))),
            helper.make_node("MatMul", ["a", "k"], ["b"], name="fn_mm")]
    model = _function_model(body, [helper.make_node("Fn", ["x"], ["h"], name="call1", domain="my.ops"),
                                   helper.make_node("Fn", ["h"], ["y"], name="call2", domain="my.ops")])
    inlined = model_facts(analyse(onnx.inliner.inline_local_functions(model)))
    assert inlined.macs == 2 * (2 * 4 * 4)
    assert model_facts(analyse(model)).macs == inlined.macs


def test_sibling_bodies_that_reuse_a_name_keep_their_own_shapes():
    def body(name, source, shape):
        return helper.make_graph([helper.make_node("Relu", [source], ["t"], name=name)], name, [],
                                 [helper.make_tensor_value_info("t", FLOAT, shape)])

    nodes = [helper.make_node("If", ["c"], ["y1"], name="if1", then_branch=body("a1", "x", [1, 4]),
                              else_branch=body("b1", "x", [1, 4])),
             helper.make_node("If", ["c"], ["y2"], name="if2", then_branch=body("a2", "z", [1, 4, 4, 4]),
                              else_branch=body("b2", "z", [1, 4, 4, 4]))]
    model = _model(nodes, [("c", TensorProto.BOOL, []), ("x", FLOAT, [1, 4]), ("z", FLOAT, [1, 4, 4, 4])],
                   [("y1", FLOAT, [1, 4]), ("y2", FLOAT, [1, 4, 4, 4])])
    costs = {c.node.label: c for c in model_facts(analyse(model)).nodes}
    assert costs["if1.then_branch/a1"].activation_elements == 4 + 4
    assert costs["if2.then_branch/a2"].activation_elements == 64 + 64


# 2. what nodes cost


def _chain_model():
    """x[1,8,10,10] → grouped Conv (16 out, group 2, 3×3) → Relu → Reshape [1,1600] → Gemm [1600,10] →
    MatMul [10,5]."""
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", group=2, kernel_shape=[3, 3], pads=[1] * 4),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Reshape", ["r", "shape"], ["f"], name="reshape"),
        helper.make_node("Gemm", ["f", "gw", "gb"], ["g"], name="gemm"),
        helper.make_node("MatMul", ["g", "mw"], ["out"], name="matmul"),
    ]
    inits = [_init("w", (16, 4, 3, 3)), _init("b", (16,)), numpy_helper.from_array(np.array([1, 1600], np.int64), "shape"),
             _init("gw", (1600, 10)), _init("gb", (10,)), _init("mw", (10, 5))]
    return _model(nodes, [("x", FLOAT, [1, 8, 10, 10])], [("out", FLOAT, [1, 5])], inits)


def test_model_facts_count_macs_kinds_and_parameters():
    facts = model_facts(analyse(_chain_model()))
    costs = {c.node.name: c for c in facts.nodes}
    # Conv: output elements × (Cin / group × kh × kw)
    assert costs["conv"].macs == (1 * 16 * 10 * 10) * (8 // 2 * 3 * 3) == 57_600
    assert costs["conv"].flops == 2 * 57_600 and costs["conv"].kind == "compute"
    assert costs["conv"].weight_elements == 16 * 4 * 9 + 16
    assert costs["gemm"].macs == 10 * 1600 and costs["gemm"].kind == "compute"
    assert costs["matmul"].macs == 5 * 10
    assert costs["relu"].kind == "epilogue" and costs["relu"].macs == 0
    assert costs["reshape"].kind == "free" and costs["reshape"].bytes_moved == 0
    assert facts.macs == 57_600 + 16_000 + 50
    assert facts.parameters == 16 * 4 * 9 + 16 + 2 + 1600 * 10 + 10 + 10 * 5
    assert facts.parameter_bytes == 4 * facts.parameters - 4 * 2 + 8 * 2  # the int64 shape takes 8 bytes each
    assert facts.precision == "fp32"
    assert facts.summary()["macs"] == str(facts.macs)


def test_gemm_with_trans_a_counts_the_inner_dimension():
    nodes = [helper.make_node("Gemm", ["a", "w"], ["y"], name="gemm", transA=1)]
    model = _model(nodes, [("a", FLOAT, [7, 3])], [("y", FLOAT, [3, 5])], [_init("w", (7, 5))])
    (cost,) = model_facts(analyse(model)).nodes
    assert cost.macs == 3 * 5 * 7


def test_activation_peak_of_a_small_chain_equals_the_hand_computed_value():
    # x[1,2,8,8] → Conv c[1,8,8,8] → Relu r → Add(r, c) a → MaxPool p[1,8,4,4].
    # Alive at the Add: c (still read by it), r and a: 3 × 8·8·8 float32 = 6144 bytes, more than any
    # other moment (x + c = 2560 at the Conv; c + r = 4096 at the Relu; a + p = 2560 at the pool).
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1] * 4),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Add", ["r", "c"], ["a"], name="add"),
        helper.make_node("MaxPool", ["a"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
    ]
    model = _model(nodes, [("x", FLOAT, [1, 2, 8, 8])], [("p", FLOAT, [1, 8, 4, 4])], [_init("w", (8, 2, 3, 3))])
    facts = model_facts(analyse(model))
    assert facts.activation_peak_bytes == 3 * 8 * 8 * 8 * 4 == 6144
    pool = next(c for c in facts.nodes if c.node.name == "pool")
    assert pool.flops == 8 * 4 * 4 * 4  # output elements × kernel volume


def _qdq_model():
    """x → QuantizeLinear → DequantizeLinear → Conv whose weight is an int8 initializer, dequantized."""
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"], name="q"),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"], name="dq"),
        helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], name="dq_w"),
        helper.make_node("Conv", ["xd", "wd"], ["y"], name="conv", kernel_shape=[3, 3], pads=[1] * 4),
    ]
    inits = [_init("xs", (), value=0.1), numpy_helper.from_array(np.array(0, np.int8), "xz"),
             _init("wq", (8, 3, 3, 3), np.int8, 1), _init("ws", (), value=0.1),
             numpy_helper.from_array(np.array(0, np.int8), "wz")]
    return _model(nodes, [("x", FLOAT, [1, 3, 16, 16])], [("y", FLOAT, [1, 8, 16, 16])], inits)


def _fp16_model():
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="conv16", kernel_shape=[3, 3], pads=[1] * 4),
             helper.make_node("Relu", ["y"], ["z"], name="relu16")]
    return _model(nodes, [("x", FLOAT16, [1, 3, 16, 16])], [("z", FLOAT16, [1, 8, 16, 16])],
                  [_init("w", (8, 3, 3, 3), np.float16, 0.5)])


def test_precision_is_int8_for_qdq_fp16_for_half_weights_fp32_otherwise():
    qdq = model_facts(analyse(_qdq_model()))
    assert qdq.precision == "int8"
    assert qdq.parameters == 1 + 1 + 8 * 3 * 9 + 1 + 1
    # the weight's DequantizeLinear computes from constants only: the Conv reads it as a weight
    conv = next(c for c in qdq.nodes if c.node.name == "conv")
    assert conv.weight_elements == 8 * 3 * 9 and conv.macs == 8 * 16 * 16 * 27
    assert {c.node.name: c.kind for c in qdq.nodes}["dq"] == "free"
    assert model_facts(analyse(_fp16_model())).precision == "fp16"
    assert model_facts(analyse(_chain_model())).precision == "fp32"


# 3. classifying nodes against a table


def _table(ops: dict[str, OpRule], unlisted: str = "fallback", **fields) -> OpTable:
    return OpTable(name="test-table", title="Test table", backend="test", version="v1", source="written in the test",
                   unlisted=Unlisted(status=unlisted, reason="the test table does not list it"), ops=ops, **fields)


def _conv_graph(x_shape=(1, 4, 8, 8), w_shape=(8, 4, 3, 3), weight_is_input=False, **attrs):
    attrs.setdefault("kernel_shape", list(w_shape[2:]))
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="conv", **attrs)]
    inputs = [("x", FLOAT, list(x_shape))] + ([("w", FLOAT, list(w_shape))] if weight_is_input else [])
    inits = [] if weight_is_input else [_init("w", w_shape)]
    return analyse(_model(nodes, inputs, [("y", FLOAT, None)], inits, check=False))


def _verdict(graph, table, name="conv"):
    report = classify(graph, table)
    return next(v for v in report.verdicts if v.node.name == name), report


def test_an_unlisted_op_gets_the_tables_unlisted_status_and_a_reason_naming_it():
    verdict, _ = _verdict(_conv_graph(), _table({"Relu": OpRule()}, unlisted="fallback"))
    assert verdict.status == "fallback"
    assert verdict.reason.startswith("Conv is not listed") and "does not list it" in verdict.reason
    assert verdict.rule == "test-table table, v1"


@pytest.mark.parametrize("status", ["fallback", "unsupported"])
def test_a_rule_status_other_than_supported_is_the_verdict(status):
    verdict, _ = _verdict(_conv_graph(), _table({"Conv": OpRule(status=status, note="says the vendor")}))
    assert (verdict.status, verdict.reason) == (status, "says the vendor")
    verdict, _ = _verdict(_conv_graph(), _table({"Conv": OpRule(status=status)}))
    assert verdict.reason == f"Test table marks Conv {status}"


def test_an_op_version_outside_the_rules_ranges_is_unsupported_naming_the_version():
    graph = _conv_graph()  # Conv at opset 17: schema version 11
    covered, _ = _verdict(graph, _table({"Conv": OpRule(versions=[(1, None)])}))
    assert covered.status == "supported"
    verdict, _ = _verdict(graph, _table({"Conv": OpRule(versions=[(1, 1), (2, 10)])}))
    assert verdict.status == "unsupported"
    assert "version 11" in verdict.reason and "covered versions: 1, 2-10" in verdict.reason


def _one_rule(*constraints: Constraint, notes=None) -> OpTable:
    return _table({"Conv": OpRule(constraints=list(constraints))}, notes=notes or {})


@pytest.mark.parametrize("rule, met, broken, says", [
    (Constraint(kind="dtype", values=["float32"]), {}, None, None),
    (Constraint(kind="dtype", values=["float16", "int8"]), None, {}, "input 0 is float32, not one of float16, int8"),
    (Constraint(kind="attribute", attribute="kernel_shape", max=3), {}, {"w_shape": (8, 4, 5, 5)},
     "kernel_shape = [5, 5] is not <= 3"),
    (Constraint(kind="attribute", attribute="group", values=[1], default=1), {}, {"x_shape": (1, 4, 8, 8),
     "w_shape": (8, 2, 3, 3), "group": 2}, "group = 2 is not one of 1"),
    (Constraint(kind="attribute", attribute="dilations", min=1, max=1, default=[2, 2]), {"dilations": [1, 1]}, {},
     "dilations = [2, 2] is not >= 1 and <= 1"),  # absent: the default stands for it
    (Constraint(kind="rank", min=4, max=4), {}, {"x_shape": (1, 4, 8), "w_shape": (8, 4, 3)},
     "input 0 has rank 3, not >= 4 and <= 4"),
    (Constraint(kind="dim", input=1, axis=0, max=8), {}, {"w_shape": (16, 4, 3, 3)},
     "input 1 dimension 0 is 16, not <= 8"),
    (Constraint(kind="dim", axis=-1, min=8), {}, {"x_shape": (1, 4, 8, 4)}, "input 0 dimension -1 is 4, not >= 8"),
    (Constraint(kind="constant_input", input=1), {}, {"weight_is_input": True},
     "input 1 ('w') is computed at run time, not a constant"),
])
def test_each_constraint_kind_met_and_broken(rule, met, broken, says):
    table = _one_rule(rule, notes={rule.kind: "what breaking it means here"})
    if met is not None:
        verdict, report = _verdict(_conv_graph(**met), table)
        assert verdict.status == "supported", verdict.reason
        assert not report.unchecked
    if broken is not None:
        verdict, _ = _verdict(_conv_graph(**broken), table)
        assert verdict.status == "constraint"
        assert verdict.reason == f"{says} (what breaking it means here)"


def test_the_harshest_broken_constraint_decides_whatever_the_order_of_the_rules():
    mild = Constraint(kind="attribute", attribute="kernel_shape", max=3, then="constraint", text="mild")
    harsh = Constraint(kind="constant_input", input=1, then="unsupported", text="harsh")
    graph = _conv_graph(w_shape=(8, 4, 5, 5), weight_is_input=True)  # breaks both
    for order in ((mild, harsh), (harsh, mild)):
        verdict, _ = _verdict(graph, _one_rule(*order))
        assert verdict.status == "unsupported" and verdict.reason.endswith("(harsh)")


def test_dropping_one_ops_bound_in_a_recipe_override_keeps_the_default_unsupported_gate():
    from edgecheck.spec.schema import Budgets, BudgetsOverride

    merged = Budgets(ops={"fallback": 2}).merged(BudgetsOverride(ops={"fallback": None}))
    assert merged.ops is not None and merged.ops.bounds() == {"unsupported": 0}
    assert Budgets(ops={"fallback": 2}).merged(BudgetsOverride(ops={"fallback": None, "unsupported": None})).ops is None


def test_an_estimate_with_compute_nodes_of_unknown_shape_cannot_be_judged(rk3588):
    nodes = [helper.make_node("Mystery", ["x"], ["m"], name="custom", domain="my.ops"),
             helper.make_node("Conv", ["m", "w"], ["y"], name="conv", kernel_shape=[3, 3])]
    model = _model(nodes, [("x", FLOAT, [1, 4, 8, 8])], [("y", FLOAT, None)], [_init("w", (8, 4, 3, 3))],
                   extra_opsets=[("my.ops", 1)], check=False)
    with pytest.raises(CannotJudge) as caught:
        estimate_latency(model_facts(analyse(model, {"x": (1, 4, 8, 8)})), rk3588, "rknn")
    assert ("1 compute nodes have no known cost (conv (Conv): input 'm' has an unknown type and shape, made by "
            "custom (my.ops.Mystery))") in str(caught.value)
    assert "give the input shapes" not in str(caught.value)  # they were given: the cause is the custom op


def test_an_attribute_absent_without_a_default_is_not_a_breach():
    rule = Constraint(kind="attribute", attribute="group", values=[3])
    verdict, _ = _verdict(_conv_graph(), _one_rule(rule))
    assert verdict.status == "supported"


@pytest.mark.parametrize("then", ["fallback", "unsupported"])
def test_a_broken_constraint_takes_the_consequence_the_rule_names(then):
    rule = Constraint(kind="attribute", attribute="kernel_shape", max=3, then=then, text="kernel at most 3x3")
    verdict, _ = _verdict(_conv_graph(w_shape=(8, 4, 5, 5)), _one_rule(rule))
    assert verdict.status == then
    assert verdict.reason == "kernel_shape = [5, 5] is not <= 3 (kernel at most 3x3)"


def _nonzero_graph():
    """x → Relu → NonZero (output [2, unknown]) → Transpose: the Transpose's shapes are not static."""
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("NonZero", ["r"], ["nz"], name="nonzero"),
             helper.make_node("Transpose", ["nz"], ["t"], name="transpose", perm=[1, 0])]
    return analyse(_model(nodes, [("x", FLOAT, [3, 4])], [("t", TensorProto.INT64, None)], check=False))


def test_static_shape_constraint_met_and_broken():
    graph = _nonzero_graph()
    table = _table({name: OpRule(constraints=[Constraint(kind="static_shape")])
                    for name in ("Relu", "NonZero", "Transpose")})
    report = classify(graph, table)
    status = {v.node.name: v for v in report.verdicts}
    assert status["relu"].status == "supported"
    assert status["transpose"].status == "constraint"
    assert "'nz'" in status["transpose"].reason and "is not fixed" in status["transpose"].reason
    assert status["nonzero"].status == "constraint" and "'nz'" in status["nonzero"].reason


def test_a_node_computing_only_from_constants_is_folded_and_supported():
    nodes = [helper.make_node("Transpose", ["w"], ["wt"], name="transpose_w", perm=[1, 0]),
             helper.make_node("MatMul", ["x", "wt"], ["y"], name="matmul")]
    graph = analyse(_model(nodes, [("x", FLOAT, [2, 4])], [("y", FLOAT, [2, 3])], [_init("w", (3, 4))]))
    report = classify(graph, _table({"MatMul": OpRule()}, unlisted="unsupported"))
    status = {v.node.name: v for v in report.verdicts}
    assert status["transpose_w"].status == "supported" and "folded" in status["transpose_w"].reason
    assert status["matmul"].status == "supported"


def test_a_rule_that_cannot_be_checked_is_listed_and_does_not_fail_the_node():
    # the output of an op no one knows has no shape: a rank rule on its consumer cannot be told
    nodes = [helper.make_node("Mystery", ["x"], ["m"], name="mystery", domain="my.custom"),
             helper.make_node("Relu", ["m"], ["y"], name="relu")]
    graph = analyse(_model(nodes, [("x", FLOAT, [1, 4])], [("y", FLOAT, None)], extra_opsets=[("my.custom", 1)],
                           check=False))
    assert graph.tensor("m").shape is None
    table = _table({"my.custom.Mystery": OpRule(), "Relu": OpRule(constraints=[Constraint(kind="rank", max=2)])})
    verdict, report = _verdict(graph, table, "relu")
    assert verdict.status == "supported"
    assert report.unchecked == ["relu: rank rule not checkable (type or shape unknown)"]


def test_counts_and_offending_list_unsupported_first():
    graph = _nonzero_graph()
    table = _table({"Relu": OpRule(constraints=[Constraint(kind="rank", max=1)]),  # rank 2: constraint
                    "Transpose": OpRule(status="fallback")}, unlisted="unsupported")  # NonZero: unlisted
    report = classify(graph, table)
    assert report.counts() == {"supported": 0, "constraint": 1, "fallback": 1, "unsupported": 1}
    assert [(v.node.name, v.status) for v in report.offending()] == [
        ("nonzero", "unsupported"), ("transpose", "fallback"), ("relu", "constraint")]


def test_subgraph_and_function_nodes_are_classified_with_their_place():
    graph = analyse(_control_flow_model())
    report = classify(graph, _table({"ReduceSum": OpRule(), "Greater": OpRule(), "If": OpRule(), "Loop": OpRule(),
                                     "Relu": OpRule(), "Identity": OpRule(), "Add": OpRule(), "Mul": OpRule(),
                                     "Neg": OpRule()}, unlisted="unsupported"))
    offending = [(v.node.label, v.status) for v in report.offending()]
    assert offending == [("fn_sig__1", "unsupported")]  # the function's body, inlined at its call


# 4. the shipped tables


def test_the_shipped_tables_load_and_say_where_they_come_from():
    tables = load_tables()
    assert {"onnxruntime-cpu", "rknn-rk3588", "tensorrt-onnx-parser"} <= set(tables)
    for name, table in tables.items():
        assert table.name == name and table.file is not None and table.file.parent in builtin_table_dirs()
        assert table.source and table.version and table.url and table.url.startswith("https://")
        assert table.ops, name
        assert table.version in table.citation() and table.source in table.citation()
    assert "rk3588" in tables["rknn-rk3588"].devices


def test_rknn_table_refuses_nonzero_on_a_computed_input_and_falls_back_on_topk():
    k = numpy_helper.from_array(np.array([2], np.int64), "k")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[1, 1]),
             helper.make_node("NonZero", ["c"], ["nz"], name="find_nonzero"),
             helper.make_node("Flatten", ["c"], ["flat"], name="flatten"),
             helper.make_node("TopK", ["flat", "k"], ["values", "indices"], name="top2")]
    model = _model(nodes, [("x", FLOAT, [1, 3, 4, 4])],
                   [("nz", TensorProto.INT64, [4, None]), ("values", FLOAT, [1, 2]), ("indices", TensorProto.INT64, [1, 2])],
                   [_init("w", (2, 3, 1, 1)), k])
    table = load_tables()["rknn-rk3588"]
    report = classify(analyse(model), table)
    status = {v.node.name: v for v in report.verdicts}
    assert status["conv"].status == "supported"
    assert status["find_nonzero"].status == "unsupported" and "NonZero" in status["find_nonzero"].reason
    assert status["find_nonzero"].rule == table.cite() and "rknn-rk3588" in status["find_nonzero"].rule
    assert status["top2"].status == "fallback" and "CPU" in status["top2"].reason


def test_rknn_table_folds_nonzero_on_a_constant():
    nodes = [helper.make_node("NonZero", ["mask"], ["nz"], name="nz_const"),
             helper.make_node("Cast", ["nz"], ["nzf"], name="cast", to=FLOAT),
             helper.make_node("Add", ["x", "nzf"], ["y"], name="add")]
    model = _model(nodes, [("x", FLOAT, [1, 1])], [("y", FLOAT, [2, 1])],
                   [numpy_helper.from_array(np.array([[1.0]], np.float32), "mask")])
    verdict, _ = _verdict(analyse(model), load_tables()["rknn-rk3588"], "nz_const")
    assert verdict.status == "supported"


def test_shipped_onnxruntime_table_marks_a_float16_conv_as_breaking_its_type_rule():
    verdict, _ = _verdict(analyse(_fp16_model()), load_tables()["onnxruntime-cpu"], "conv16")
    assert verdict.status == "constraint"
    assert verdict.reason.startswith("input 0 is float16, not one of float32")
    assert "Casts to float32" in verdict.reason


@pytest.mark.skipif(platform.machine() != "x86_64",
                    reason="ONNX Runtime's x86_64 build has no float16 Conv kernel; other builds may have one")
def test_installed_onnxruntime_has_no_float16_conv_kernel_on_x86_64():
    from edgecheck.vendors.onnxruntime import TABLES as ONNXRUNTIME_TABLES
    from edgecheck.vendors.onnxruntime.optable import table_from_onnxruntime

    verdict, _ = _verdict(analyse(_fp16_model()), table_from_onnxruntime(), "conv16")
    assert verdict.status == "constraint" and "float16" in verdict.reason


CORE_OPS = ("Conv", "Gemm", "MatMul", "Add", "Mul", "Relu", "Reshape", "Transpose", "Concat", "Softmax", "MaxPool",
            "BatchNormalization")


def _versions_overlap(first: list | None, second: list | None) -> bool:
    """Two rules' operator-version ranges share a version (None: every version; a null end: and later)."""
    if first is None or second is None:
        return True

    def end(last: int | None) -> float:
        return math.inf if last is None else last

    return any(a <= end(d) and c <= end(b) for a, b in first for c, d in second)


def test_the_shipped_onnxruntime_table_agrees_with_the_installed_runtime(tmp_path):
    """On any release: what the runtime generates is a valid table, covers the operators models use,
    and runs some version of every operator the shipped table lists too. On the shipped table's own
    release: it is exactly what the runtime generates."""
    from edgecheck.vendors.onnxruntime import TABLES as ONNXRUNTIME_TABLES
    from edgecheck.vendors.onnxruntime.optable import dump, table_from_onnxruntime

    shipped = read_table(ONNXRUNTIME_TABLES / "onnxruntime-cpu.yaml")
    generated = table_from_onnxruntime()
    written = tmp_path / "onnxruntime-cpu.yaml"
    written.write_text(dump(generated))
    assert read_table(written).ops == generated.ops
    for op in CORE_OPS:
        for table in (shipped, generated):
            rule = table.ops[op]
            assert rule.status == "supported", (table.version, op)
            assert all("float32" in c.values for c in rule.constraints if c.kind == "dtype"), (table.version, op)
    common = sorted(shipped.ops.keys() & generated.ops.keys())
    disjoint = [key for key in common if not _versions_overlap(shipped.ops[key].versions, generated.ops[key].versions)]
    assert not disjoint, disjoint[:10]
    if generated.version == shipped.version:
        assert sorted(generated.ops) == sorted(shipped.ops)
        differing = [key for key in shipped.ops if generated.ops[key] != shipped.ops[key]]
        assert not differing, differing[:10]
        assert generated.unlisted == shipped.unlisted and generated.notes == shipped.notes


def test_operator_version_ranges_overlap_only_where_they_share_a_version():
    assert _versions_overlap([(1, 12), (13, None)], [(13, 20), (21, None)])
    assert _versions_overlap([(7, None)], [(1, 6), (9, 9)])
    assert not _versions_overlap([(1, 6)], [(7, None)])
    assert not _versions_overlap([(1, 6), (10, 12)], [(7, 9), (13, 13)])
    assert _versions_overlap(None, [(7, 9)])


def test_a_broken_table_file_is_a_device_error_naming_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\nops: {Conv: [unclosed\n")
    with pytest.raises(DeviceError, match=r"bad\.yaml:3: not valid YAML"):  # the line of the problem
        read_table(path)


@pytest.mark.parametrize("body, field", [
    ("title: T\nbackend: b\nversion: '1'\nsource: s\nunlisted: {status: unsupported, reason: r}\n"
     "ops: {Conv: {status: maybe}}\n", "ops.Conv.status"),
    ("title: T\nbackend: b\nversion: '1'\nsource: s\nunlisted: {status: unsupported, reason: r}\n"
     "ops: {Conv: {constraints: [{kind: dtype}]}}\n", "ops.Conv.constraints.0"),
    ("title: T\nbackend: b\nsource: s\nunlisted: {status: unsupported, reason: r}\nops: {}\n", "version"),
])
def test_a_schema_invalid_table_is_a_device_error_naming_file_and_field(tmp_path, body, field):
    path = tmp_path / "invalid.yaml"
    path.write_text(body)
    with pytest.raises(DeviceError) as caught:
        read_table(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: {field}"), message


def test_a_project_table_folder_adds_and_replaces_tables(tmp_path):
    (tmp_path / "rknn-rk3588.yaml").write_text(
        "title: Mine\nbackend: rknn\nversion: '0'\nsource: me\nunlisted: {status: fallback, reason: r}\nops: {}\n")
    tables = load_tables([tmp_path])
    assert tables["rknn-rk3588"].title == "Mine" and "onnxruntime-cpu" in tables
    with pytest.raises(DeviceError, match="folder not found"):
        load_tables([tmp_path / "missing"])


# 5. the latency estimate


@pytest.fixture(scope="module")
def rk3588():
    return load_profiles()["rk3588"]


def test_estimate_uses_the_int8_model_for_qdq_and_fp16_for_float_on_rknn(rk3588):
    models = rk3588.backends["rknn"].estimate
    qdq = estimate_latency(model_facts(analyse(_qdq_model())), rk3588, "rknn")
    assert qdq.precision == "int8" and qdq.calibrated
    assert qdq.calibration == models["int8"].calibration
    # a tiny model, far below the calibration's smallest: a lower bound from the estimate up, said in a note
    assert (qdq.low_ms, qdq.high_ms) == (qdq.ms, math.inf)
    assert any("below the smallest model the cost model was fitted on" in n for n in qdq.notes)

    floating = estimate_latency(model_facts(analyse(_chain_model())), rk3588, "rknn")
    assert floating.precision == "fp16"  # the fp32 model's runs_as
    assert "rknn computes a fp32 model in fp16 on rk3588" in floating.notes
    assert not floating.calibrated and floating.calibration == models["fp32"].calibration
    factor = models["fp32"].error_factor
    assert (floating.low_ms, floating.high_ms) == (pytest.approx(floating.ms / factor),
                                                   pytest.approx(floating.ms * factor))
    assert floating.ms == pytest.approx(floating.compute_ms + floating.memory_ms + floating.overhead_ms)
    assert floating.kernels == 3  # Conv, Gemm, MatMul: the Relu is folded, the Reshape free


def test_estimate_without_a_cost_model_cannot_judge_naming_backend_and_precision(rk3588):
    facts = model_facts(analyse(_fp16_model()))
    with pytest.raises(CannotJudge) as caught:
        estimate_latency(facts, rk3588, "onnxruntime")
    message = str(caught.value)
    assert "onnxruntime fp16 on rk3588" in message and "fp32, int8" in message
    assert estimate_latency(facts, rk3588, "rknn").precision == "fp16"  # rknn has one


def test_the_estimate_label_says_estimate_and_uncalibrated(rk3588):
    floating = estimate_latency(model_facts(analyse(_chain_model())), rk3588, "rknn")
    assert isinstance(floating, LatencyEstimate)
    label = floating.label()
    assert "estimate" in label and "UNCALIBRATED" in label and "rk3588 rknn fp16" in label
    calibrated = estimate_latency(model_facts(analyse(_qdq_model())), rk3588, "rknn").label()
    assert "estimate" in calibrated and "UNCALIBRATED" not in calibrated
    facts = floating.facts()
    assert facts["estimate.label"] == label and facts["estimate.precision"] == "fp16"


def test_the_estimate_and_the_calibration_fit_compute_the_same_time(rk3588):
    model = rk3588.backends["rknn"].estimate["int8"]
    for build in (_qdq_model, _residual_qdq):  # the second has a Sigmoid: the activation term counts on both paths
        facts = model_facts(analyse(build()))
        assert estimate_latency(facts, rk3588, "rknn").ms == pytest.approx(calibrate.predict_ms(facts, model, "int8"))
    assert sum(c.nonlinear_elements for c in model_facts(analyse(_residual_qdq())).nodes) == 8 * 16 * 16


def test_work_the_cost_model_does_not_count_makes_the_estimate_a_lower_bound(rk3588):
    """An LSTM has no cost formula here (counted as element-wise work): its estimate can fail a budget, never
    pass one."""
    hidden, steps = 16, 4
    nodes = [helper.make_node("LSTM", ["x", "w", "r"], ["y"], name="lstm", hidden_size=hidden)]
    inits = [_init("w", (1, 4 * hidden, 8)), _init("r", (1, 4 * hidden, hidden))]
    facts = model_facts(analyse(_model(nodes, [("x", FLOAT, [steps, 1, 8])], [("y", FLOAT, [steps, 1, 1, hidden])],
                                       inits)))
    assert facts.uncounted and "LSTM" in facts.uncounted[0]
    estimate = estimate_latency(facts, rk3588, "onnxruntime")
    assert (estimate.low_ms, estimate.high_ms) == (estimate.ms, math.inf)
    assert any("does not count" in n for n in estimate.notes)


def test_one_real_network_gets_one_estimate_from_its_float_graph_and_its_qdq_artifact(rk3588, tmp_path):
    """Defect 1 on a published detector, quantized by ONNX Runtime as the int8-static recipe does (QDQ)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from architectures import ARCHITECTURES
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    floating = ARCHITECTURES["yolov5n"](1, 64)
    for init in floating.graph.initializer:  # small random weights: all-zero ones give degenerate scales
        array = numpy_helper.to_array(init)
        if array.ndim >= 2:
            init.CopyFrom(numpy_helper.from_array(np.random.default_rng(0).normal(0, 0.05, array.shape)
                                                  .astype(np.float32), init.name))
    onnx.save(floating, tmp_path / "float.onnx")

    class Samples(CalibrationDataReader):
        def __init__(self):
            self.left = [{"images": np.random.default_rng(i).random((1, 3, 64, 64), np.float32)} for i in range(2)]

        def get_next(self):
            return self.left.pop() if self.left else None

    quantize_static(str(tmp_path / "float.onnx"), str(tmp_path / "qdq.onnx"), Samples(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    model = rk3588.backends["rknn"].estimate["int8"]
    from edgecheck.analysis.estimate import estimate_with

    via_float, *_, kernels_float = estimate_with(model_facts(analyse(tmp_path / "float.onnx")), model, "int8")
    via_qdq, *_, kernels_qdq = estimate_with(model_facts(analyse(tmp_path / "qdq.onnx")), model, "int8")
    assert kernels_qdq == kernels_float
    assert via_qdq == pytest.approx(via_float, rel=0.02)


# 6. the calibration: the stored cost model is the fit of its published points


CALIBRATED = [name for name, profile in load_profiles().items()
              if "rknn" in profile.backends and profile.backends["rknn"].estimate.get("int8") is not None
              and profile.backends["rknn"].estimate["int8"].calibrated]


@pytest.fixture(scope="module", params=CALIBRATED)
def calibration_points(request):
    """Per device with a calibrated int8 cost model (rk3588, rk3562): the model and each published point's
    architecture facts, fit rows and validation rows apart."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from architectures import ARCHITECTURES
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    model = load_profiles()[request.param].backends["rknn"].estimate["int8"]
    rows = {"fit": [], "validate": []}
    for point in model.points:
        batch, _, size, _ = point.input
        facts = model_facts(analyse(ARCHITECTURES[point.model](batch=batch, size=size)))
        rows[point.role].append((facts, point.published_ms))
    return model, rows


def test_the_int8_cost_model_is_fitted_on_some_published_points_and_checked_on_others(calibration_points):
    model, rows = calibration_points
    assert len(rows["fit"]) >= 8 and len(rows["validate"]) >= 5
    assert all("rknn_model_zoo" in p.source and "FPS" in p.source for p in model.points)


def test_the_stated_range_holds_every_published_point_the_fit_never_saw(calibration_points):
    """Issue 17's goal on validation rows: the range holds (coverage), the median error stays under 30 %, and no
    budget at a published figure passes (a range wholly below the board's real time)."""
    model, rows = calibration_points
    errors = []
    for facts, published in rows["validate"]:
        predicted = calibrate.predict_ms(facts, model, "int8")
        assert published / model.error_factor <= predicted <= published * model.error_factor, (predicted, published)
        assert predicted * model.error_factor > published  # so a budget at the published figure never passes
        errors.append(abs(predicted / published - 1))
    assert sorted(errors)[len(errors) // 2] <= 0.30


def test_fitting_the_fit_rows_reproduces_the_stored_model_and_its_stated_error(calibration_points):
    model, rows = calibration_points
    fitted = calibrate.fit(rows["fit"], model, "int8")
    assert fitted.bandwidth_efficiency == model.bandwidth_efficiency
    assert fitted.compute_efficiency == pytest.approx(model.compute_efficiency, rel=0.02)
    assert fitted.node_overhead_us == pytest.approx(model.node_overhead_us, rel=0.02)
    assert fitted.activation_ns == pytest.approx(model.activation_ns, rel=0.02)
    # the stated error comes from the fit rows held out one at a time, never from the validation rows
    errors = calibrate.leave_one_out(rows["fit"], model, "int8")
    assert calibrate.error_factor(errors) == pytest.approx(model.error_factor, abs=0.01)
    assert all(abs(math.log1p(e)) <= math.log(model.error_factor) + 1e-9 for e in errors if e is not None)


def test_the_error_factor_is_a_prediction_interval_not_only_the_largest_miss():
    assert math.isinf(calibrate.error_factor([None]))
    assert math.isinf(calibrate.error_factor([0.1, -1.0])) and math.isinf(calibrate.error_factor([math.inf]))
    assert calibrate.error_factor([-0.2617]) == 1.36  # one error: its own miss, rounded up so the range holds it
    small = [0.05, -0.05, 0.05, -0.05]  # four lucky misses: the interval is wider than any of them
    assert calibrate.error_factor(small, floor=1.0) > 1.05 * 1.05
    assert calibrate.error_factor(small) >= 1.1  # and never under the floor


def test_a_channel_aligned_npu_pays_for_the_channels_it_pads():
    """A 3-channel stem on a 32-wide MAC array costs what a 32-channel one does (rknn-toolkit2's own cycles)."""
    from edgecheck.analysis.estimate import aligned_flops

    stem = model_facts(analyse(_conv_model(3, 32)))
    full = model_facts(analyse(_conv_model(32, 32)))
    conv_stem = next(c for c in stem.nodes if c.node.op_type == "Conv")
    conv_full = next(c for c in full.nodes if c.node.op_type == "Conv")
    assert conv_stem.conv_dims == (64, 32, 3, 9)
    assert aligned_flops(conv_stem, 1) == conv_stem.flops
    assert aligned_flops(conv_stem, 32) == aligned_flops(conv_full, 32) == conv_full.flops


def _conv_model(cin: int, cout: int):
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="conv", kernel_shape=[3, 3], pads=[1] * 4)]
    return _model(nodes, [("x", FLOAT, [1, cin, 8, 8])], [("y", FLOAT, [1, cout, 8, 8])], [_init("w", (cout, cin, 3, 3))])


def _residual_float():
    """x → Conv → Sigmoid, Mul (SiLU) → Add x: what a detector's block is, in float."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1] * 4),
             helper.make_node("Sigmoid", ["c"], ["s"], name="sigmoid"),
             helper.make_node("Mul", ["c", "s"], ["m"], name="mul"),
             helper.make_node("Add", ["m", "x"], ["y"], name="add")]
    return _model(nodes, [("x", FLOAT, [1, 8, 16, 16])], [("y", FLOAT, [1, 8, 16, 16])],
                  [_init("w", (8, 8, 3, 3))])


def _residual_qdq():
    """The same block as a QDQ artifact: every activation through a Q/DQ pair, the weight an int8 initializer."""
    def qdq(name):
        return [helper.make_node("QuantizeLinear", [name, "s", "z"], [f"{name}_q"], name=f"q_{name}"),
                helper.make_node("DequantizeLinear", [f"{name}_q", "s", "z"], [f"{name}_d"], name=f"dq_{name}")]
    nodes = [*qdq("x"), helper.make_node("DequantizeLinear", ["wq", "s", "z"], ["wd"], name="dq_w"),
             helper.make_node("Conv", ["x_d", "wd"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1] * 4), *qdq("c"),
             helper.make_node("Sigmoid", ["c_d"], ["s1"], name="sigmoid"), *qdq("s1"),
             helper.make_node("Mul", ["c_d", "s1_d"], ["m"], name="mul"), *qdq("m"),
             helper.make_node("Add", ["m_d", "x_d"], ["y"], name="add")]
    inits = [_init("s", (), value=0.1), numpy_helper.from_array(np.array(0, np.int8), "z"),
             _init("wq", (8, 8, 3, 3), np.int8, 1)]
    return _model(nodes, [("x", FLOAT, [1, 8, 16, 16])], [("y", FLOAT, [1, 8, 16, 16])], inits)


def test_one_int8_network_costs_the_same_from_its_qdq_artifact_as_from_its_float_graph(rk3588):
    """Issue 17, defect 1: element-wise ops after a Q/DQ pair fold into the convolution as they do in the float
    graph (no kernel, no launch overhead of their own), so both paths give one estimate."""
    from edgecheck.analysis.estimate import estimate_with

    qdq = model_facts(analyse(_residual_qdq()))
    kinds = {c.node.name: c.kind for c in qdq.nodes}
    assert kinds["sigmoid"] == kinds["mul"] == kinds["add"] == "epilogue", kinds
    floating = model_facts(analyse(_residual_float()))
    model = rk3588.backends["rknn"].estimate["int8"]
    via_qdq, *_, kernels_qdq = estimate_with(qdq, model, "int8")
    via_float, *_, kernels_float = estimate_with(floating, model, "int8")  # the float graph computed as INT8
    assert kernels_qdq == kernels_float == 1
    assert via_qdq == pytest.approx(via_float, rel=0.02)
