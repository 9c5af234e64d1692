"""Small ONNX models of the kinds real exporters write and onnx2tf stumbles on, built with onnx.helper
(for the tflite conversion tests and benchmarks/bench_onnx2tf.py):

- `yolo_head`: a YOLOv8-style detector head with dynamic height and width: three strides, each a Conv,
  reshaped and concatenated; DFL (reshape to 4 x 16 bins, softmax, a 1x1 Conv over the bins), anchors
  and strides computed from the feature maps' shapes (Shape → Range → Expand), dist2bbox, sigmoid scores.
- `paddle_style`: a Paddle-exported OCR-style graph: every weight a Constant node (no initializers),
  dynamic batch and width, a Reshape whose target comes from Shape and a Paddle-style `0`/`-1` shape.
- `if_model`: a recurrent voice-activity-style model: `input [1,64]`, `state [2,1,16]` (layers first),
  `sr` (int64 scalar) choosing a branch through an If whose branches read an outer Constant node
  (`/Constant_output_0`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FLOAT = TensorProto.FLOAT
INT64 = TensorProto.INT64


def _const(name: str, value: np.ndarray) -> onnx.NodeProto:
    """A Constant node (how Paddle and torch's exporter hold weights and small values)."""
    return helper.make_node("Constant", [], [name], name=name.replace("_output_0", ""),
                            value=numpy_helper.from_array(np.asarray(value), name))


def _save(path: Path, nodes, inputs, outputs, initializers=(), opset: int = 13) -> Path:
    graph = helper.make_graph(nodes, path.stem, inputs, outputs, list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def yolo_head(path: Path, classes: int = 3, bins: int = 16) -> Path:
    """images[N,3,H,W] → per stride s in (8, 16, 32): Conv k=s stride s → [N, 4*bins+classes, H/s, W/s] →
    Reshape [N, C, -1]; Concat → Split box/cls; DFL; anchors from Shape; output [N, 4+classes, A]."""
    rng = np.random.default_rng(0)
    channels = 4 * bins + classes
    nodes, inits, flats, anchors, strides = [], [], [], [], []
    inits.append(numpy_helper.from_array(np.array([0, channels, -1], np.int64), "flat_shape"))
    inits += [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in
              (("zero", 0), ("one", 1), ("two", 2), ("three", 3), ("axis0", [0]), ("axis1", [1]))]
    inits.append(numpy_helper.from_array(np.array(0.5, np.float32), "half"))
    for level, stride in enumerate((8, 16, 32)):
        w = numpy_helper.from_array((rng.normal(size=(channels, 3, stride, stride)) * 0.05).astype(np.float32),
                                    f"model.22.cv{level}.weight")
        inits.append(w)
        feat = f"/model.22/cv{level}/Conv_output_0"
        nodes.append(helper.make_node("Conv", ["images", w.name], [feat], name=f"/model.22/cv{level}/Conv",
                                      kernel_shape=[stride, stride], strides=[stride, stride]))
        nodes.append(helper.make_node("Reshape", [feat, "flat_shape"], [f"flat{level}"], name=f"/model.22/Reshape_{level}"))
        flats.append(f"flat{level}")
        # anchors: (x + 0.5, y + 0.5) over the feature map, from its shape (ultralytics' make_anchors)
        nodes += [helper.make_node("Shape", [feat], [f"shape{level}"], name=f"/model.22/Shape_{level}"),
                  helper.make_node("Gather", [f"shape{level}", "two"], [f"h{level}"], name=f"/model.22/Gather_h{level}"),
                  helper.make_node("Gather", [f"shape{level}", "three"], [f"w{level}"], name=f"/model.22/Gather_w{level}"),
                  helper.make_node("Range", ["zero", f"w{level}", "one"], [f"rx{level}"], name=f"/model.22/Range_x{level}"),
                  helper.make_node("Range", ["zero", f"h{level}", "one"], [f"ry{level}"], name=f"/model.22/Range_y{level}"),
                  helper.make_node("Cast", [f"rx{level}"], [f"fx{level}"], to=FLOAT, name=f"/model.22/Cast_x{level}"),
                  helper.make_node("Cast", [f"ry{level}"], [f"fy{level}"], to=FLOAT, name=f"/model.22/Cast_y{level}"),
                  helper.make_node("Add", [f"fx{level}", "half"], [f"sx{level}"], name=f"/model.22/Add_x{level}"),
                  helper.make_node("Add", [f"fy{level}", "half"], [f"sy{level}"], name=f"/model.22/Add_y{level}"),
                  helper.make_node("Unsqueeze", [f"h{level}", "axis0"], [f"h1{level}"], name=f"/model.22/Unsq_h{level}"),
                  helper.make_node("Unsqueeze", [f"w{level}", "axis0"], [f"w1{level}"], name=f"/model.22/Unsq_w{level}"),
                  helper.make_node("Concat", [f"h1{level}", f"w1{level}"], [f"hw{level}"], axis=0,
                                   name=f"/model.22/Concat_hw{level}"),
                  helper.make_node("Expand", [f"sx{level}", f"hw{level}"], [f"gx{level}"], name=f"/model.22/Expand_x{level}"),
                  helper.make_node("Unsqueeze", [f"sy{level}", "axis1"], [f"sy1{level}"], name=f"/model.22/Unsq_y{level}"),
                  helper.make_node("Expand", [f"sy1{level}", f"hw{level}"], [f"gy{level}"], name=f"/model.22/Expand_y{level}"),
                  helper.make_node("Unsqueeze", [f"gx{level}", "axis0"], [f"gx1{level}"], name=f"/model.22/Unsq_gx{level}"),
                  helper.make_node("Unsqueeze", [f"gy{level}", "axis0"], [f"gy1{level}"], name=f"/model.22/Unsq_gy{level}"),
                  helper.make_node("Concat", [f"gx1{level}", f"gy1{level}"], [f"grid{level}"], axis=0,
                                   name=f"/model.22/Concat_grid{level}"),
                  helper.make_node("Reshape", [f"grid{level}", "anchor_shape"], [f"anchor{level}"],
                                   name=f"/model.22/Reshape_anchor{level}"),
                  helper.make_node("Shape", [f"anchor{level}"], [f"ashape{level}"], name=f"/model.22/Shape_a{level}"),
                  helper.make_node("Slice", [f"ashape{level}", "axis1", "two_1d"], [f"count{level}"],
                                   name=f"/model.22/Slice_a{level}"),
                  helper.make_node("Concat", ["one_1d", f"count{level}"], [f"sshape{level}"], axis=0,
                                   name=f"/model.22/Concat_s{level}"),
                  helper.make_node("ConstantOfShape", [f"sshape{level}"], [f"stride{level}"],
                                   value=numpy_helper.from_array(np.array([stride], np.float32)),
                                   name=f"/model.22/ConstantOfShape_{level}")]
        anchors.append(f"anchor{level}")
        strides.append(f"stride{level}")
    inits += [numpy_helper.from_array(np.array([2, -1], np.int64), "anchor_shape"),
              numpy_helper.from_array(np.array([2], np.int64), "two_1d"),
              numpy_helper.from_array(np.array([1], np.int64), "one_1d"),
              numpy_helper.from_array(np.array([4 * bins, classes], np.int64), "split"),
              numpy_helper.from_array(np.array([0, 4, bins, -1], np.int64), "dfl_shape"),
              numpy_helper.from_array(np.array([0, 4, -1], np.int64), "box_shape"),
              numpy_helper.from_array(np.array([2, 2], np.int64), "halves"),
              numpy_helper.from_array(np.arange(bins, dtype=np.float32).reshape(1, bins, 1, 1), "model.22.dfl.conv.weight")]
    nodes += [helper.make_node("Concat", flats, ["/model.22/Concat_output_0"], axis=2, name="/model.22/Concat"),
              helper.make_node("Concat", anchors, ["anchors"], axis=1, name="/model.22/Concat_anchors"),
              helper.make_node("Concat", strides, ["strides"], axis=1, name="/model.22/Concat_strides"),
              helper.make_node("Split", ["/model.22/Concat_output_0", "split"], ["box", "cls"], axis=1,
                               name="/model.22/Split"),
              # DFL: [N, 64, A] → [N, 4, 16, A] → [N, 16, 4, A] → softmax over the bins → 1x1 Conv (the bins' mean)
              helper.make_node("Reshape", ["box", "dfl_shape"], ["dfl_r"], name="/model.22/dfl/Reshape"),
              helper.make_node("Transpose", ["dfl_r"], ["dfl_t"], perm=[0, 2, 1, 3], name="/model.22/dfl/Transpose"),
              helper.make_node("Softmax", ["dfl_t"], ["dfl_s"], axis=1, name="/model.22/dfl/Softmax"),
              helper.make_node("Conv", ["dfl_s", "model.22.dfl.conv.weight"], ["dfl_c"], kernel_shape=[1, 1],
                               name="/model.22/dfl/conv/Conv"),
              helper.make_node("Reshape", ["dfl_c", "box_shape"], ["dist"], name="/model.22/dfl/Reshape_1"),
              # dist2bbox: lt, rb = split(dist); x1y1 = anchors - lt; x2y2 = anchors + rb; centre and size
              helper.make_node("Split", ["dist", "halves"], ["lt", "rb"], axis=1, name="/model.22/Split_1"),
              helper.make_node("Sub", ["anchors", "lt"], ["x1y1"], name="/model.22/Sub"),
              helper.make_node("Add", ["anchors", "rb"], ["x2y2"], name="/model.22/Add_10"),
              helper.make_node("Add", ["x1y1", "x2y2"], ["sum"], name="/model.22/Add_11"),
              helper.make_node("Mul", ["sum", "half"], ["centre"], name="/model.22/Mul"),
              helper.make_node("Sub", ["x2y2", "x1y1"], ["size"], name="/model.22/Sub_1"),
              helper.make_node("Concat", ["centre", "size"], ["boxes"], axis=1, name="/model.22/Concat_boxes"),
              helper.make_node("Mul", ["boxes", "strides"], ["scaled"], name="/model.22/Mul_1"),
              helper.make_node("Sigmoid", ["cls"], ["scores"], name="/model.22/Sigmoid"),
              helper.make_node("Concat", ["scaled", "scores"], ["output0"], axis=1, name="/model.22/Concat_out")]
    return _save(path, nodes, [helper.make_tensor_value_info("images", FLOAT, ["N", 3, "H", "W"])],
                 [helper.make_tensor_value_info("output0", FLOAT, ["N", 4 + classes, "A"])], inits, opset=13)


def paddle_style(path: Path, classes: int = 6) -> Path:
    """x[N,3,H,W] → two Conv stride 2 (Constant weights) → Resize of the deeper map to the shallower one's
    shape (from Shape, as Paddle's FPN does) → Add → Conv → Transpose → Reshape [0, -1, 8] (Paddle's 0 =
    keep) → MatMul + Add (Constant weights) → Softmax: every weight a Constant node, batch, height and
    width dynamic."""
    rng = np.random.default_rng(1)
    weight = lambda *shape: (rng.normal(size=shape) * 0.2).astype(np.float32)  # noqa: E731
    nodes = [_const("conv1_w", weight(8, 3, 3, 3)), _const("conv1_b", np.zeros(8, np.float32)),
             _const("conv2_w", weight(8, 8, 3, 3)), _const("head_w", weight(8, 8, 1, 1)),
             _const("fc_w", weight(8, classes)), _const("fc_b", weight(classes)),
             _const("/Constant_output_0", np.array([0, -1, 8], np.int64)),
             _const("roi", np.zeros(0, np.float32)), _const("scales", np.zeros(0, np.float32)),
             helper.make_node("Conv", ["x", "conv1_w", "conv1_b"], ["c1"], name="conv2d_0", kernel_shape=[3, 3],
                              strides=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu_0"),
             helper.make_node("Conv", ["r1", "conv2_w"], ["c2"], name="conv2d_1", kernel_shape=[3, 3], strides=[2, 2],
                              pads=[1, 1, 1, 1]),
             helper.make_node("Shape", ["r1"], ["s1"], name="shape_0"),
             helper.make_node("Resize", ["c2", "roi", "scales", "s1"], ["up"], name="nearest_interp_v2_0",
                              mode="nearest"),
             helper.make_node("Add", ["r1", "up"], ["fused"], name="elementwise_add_1"),
             helper.make_node("Conv", ["fused", "head_w"], ["h"], name="conv2d_2", kernel_shape=[1, 1]),
             helper.make_node("Transpose", ["h"], ["t"], perm=[0, 2, 3, 1], name="transpose_0"),
             helper.make_node("Reshape", ["t", "/Constant_output_0"], ["seq"], name="reshape2_0"),
             helper.make_node("MatMul", ["seq", "fc_w"], ["m"], name="matmul_0"),
             helper.make_node("Add", ["m", "fc_b"], ["logits"], name="elementwise_add_0"),
             helper.make_node("Softmax", ["logits"], ["softmax_0.tmp_0"], axis=2, name="softmax_0")]
    return _save(path, nodes, [helper.make_tensor_value_info("x", FLOAT, ["N", 3, "H", "W"])],
                 [helper.make_tensor_value_info("softmax_0.tmp_0", FLOAT, ["N", "T", classes])], opset=11)


def if_model(path: Path) -> Path:
    """input[1,64], state[2,1,16], sr (int64 scalar) → If (sr == 16000) → a dense layer with one of two
    Constant weights, read from the outer graph → GRU-like update of the state → prob[1,1], stateN[2,1,16]."""
    rng = np.random.default_rng(2)
    branch_out = helper.make_tensor_value_info("feat", FLOAT, [1, 16])
    then_graph = helper.make_graph([helper.make_node("MatMul", ["input", "/Constant_output_0"], ["feat"], name="then_mm")],
                                   "then", [], [branch_out])
    else_graph = helper.make_graph([helper.make_node("MatMul", ["input", "/Constant_1_output_0"], ["feat"], name="else_mm")],
                                   "else", [], [helper.make_tensor_value_info("feat", FLOAT, [1, 16])])
    nodes = [_const("/Constant_output_0", (rng.normal(size=(64, 16)) * 0.2).astype(np.float32)),
             _const("/Constant_1_output_0", (rng.normal(size=(64, 16)) * 0.2).astype(np.float32)),
             _const("/Constant_2_output_0", np.array(16000, np.int64)),
             _const("/Constant_3_output_0", (rng.normal(size=(16, 1)) * 0.3).astype(np.float32)),
             helper.make_node("Equal", ["sr", "/Constant_2_output_0"], ["is16k"], name="/Equal"),
             helper.make_node("If", ["is16k"], ["feat"], name="/If", then_branch=then_graph, else_branch=else_graph),
             helper.make_node("Unsqueeze", ["feat", "axes0"], ["feat3"], name="/Unsqueeze"),
             helper.make_node("Add", ["state", "feat3"], ["mixed"], name="/Add"),
             helper.make_node("Tanh", ["mixed"], ["stateN"], name="/Tanh"),
             helper.make_node("ReduceMean", ["stateN"], ["pooled"], axes=[0], keepdims=0, name="/ReduceMean"),
             helper.make_node("MatMul", ["pooled", "/Constant_3_output_0"], ["logit"], name="/MatMul"),
             helper.make_node("Sigmoid", ["logit"], ["prob"], name="/Sigmoid")]
    inputs = [helper.make_tensor_value_info("input", FLOAT, [1, 64]),
              helper.make_tensor_value_info("state", FLOAT, [2, 1, 16]),
              helper.make_tensor_value_info("sr", INT64, [])]
    outputs = [helper.make_tensor_value_info("prob", FLOAT, [1, 1]),
               helper.make_tensor_value_info("stateN", FLOAT, [2, 1, 16])]
    return _save(path, nodes, inputs, outputs, [numpy_helper.from_array(np.array([0], np.int64), "axes0")], opset=13)


BUILDERS = {"yolo-dfl": yolo_head, "paddle-constant": paddle_style, "if-branch": if_model}
