"""Published architectures written as ONNX graphs, for the latency-estimator benchmark.

The estimator predicts latency from a model's graph: which operators, with which shapes, how many
parameters and multiply-accumulates. To check it against real networks rather than toy ones, this
module builds three well-known architectures node by node with `onnx.helper` (no torch, nothing
downloads), laid out the way their common ONNX exports are:

* `mobilenet_v2`: torchvision / ONNX model zoo mobilenetv2-12 (BN folded into Conv, ReLU6 as Clip);
* `resnet50_v2`: ONNX model zoo resnet50-v2-7, i.e. MXNet Gluon's pre-activation ResNet-50 v2;
* `yolov5s`: ultralytics YOLOv5s v6.x as Rockchip's rknn_model_zoo exports it (no box decoding).

Every weight is zero (BatchNormalization scale and variance are one, so the graph stays valid):
latency depends on shapes, not values, and zeros keep the builders fast and deterministic.
`PUBLISHED` holds the parameter and MAC counts the graphs were checked against, with their sources.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET, IR_VERSION = 13, 8


class _Graph:
    """Collects nodes and zero initializers; each node's output tensor is named after the node."""

    def __init__(self, name: str) -> None:
        self.name, self.nodes, self.inits = name, [], []

    def const(self, name: str, value) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value, np.float32), name))
        return name

    def node(self, op: str, inputs: list[str], name: str, out: str | None = None, **attrs) -> str:
        out = out or name
        self.nodes.append(helper.make_node(op, inputs, [out], name=name, **attrs))
        return out

    def conv(self, x: str, name: str, cin: int, cout: int, k: int, stride: int = 1, pad: int | None = None,
             group: int = 1, bias: bool = True, out: str | None = None) -> str:
        pad = k // 2 if pad is None else pad
        inputs = [x, self.const(f"{name}.weight", np.zeros((cout, cin // group, k, k)))]
        if bias:
            inputs.append(self.const(f"{name}.bias", np.zeros(cout)))
        return self.node("Conv", inputs, name, out, kernel_shape=[k, k], strides=[stride, stride],
                         pads=[pad] * 4, group=group)

    def bn(self, x: str, name: str, c: int) -> str:
        stats = {"weight": np.ones(c), "bias": np.zeros(c), "running_mean": np.zeros(c), "running_var": np.ones(c)}
        inputs = [x] + [self.const(f"{name}.{key}", value) for key, value in stats.items()]
        return self.node("BatchNormalization", inputs, name, epsilon=1e-5)

    def head(self, x: str, name: str, cin: int, classes: int, out: str) -> str:
        """GlobalAveragePool -> Flatten -> Gemm, the classifier tail of both image classifiers."""
        x = self.node("GlobalAveragePool", [x], f"{name}.pool")
        x = self.node("Flatten", [x], f"{name}.flatten", axis=1)
        weight = self.const(f"{name}.weight", np.zeros((classes, cin)))
        return self.node("Gemm", [x, weight, self.const(f"{name}.bias", np.zeros(classes))], name, out, transB=1)

    def model(self, inputs: list[tuple[str, list[int]]], outputs: list[tuple[str, list[int]]]) -> onnx.ModelProto:
        def info(name, shape):
            return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)

        graph = helper.make_graph(self.nodes, self.name, [info(*i) for i in inputs], [info(*o) for o in outputs],
                                  initializer=self.inits)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
                                 producer_name="edgecheck.benchmarks.architectures")


# (expansion t, output channels c, repeats n, first stride s), table 2 of the MobileNetV2 paper
MOBILENET_V2_SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                         (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def mobilenet_v2(batch: int = 1, size: int = 224) -> onnx.ModelProto:
    """MobileNetV2 1.0 as torchvision exports it (node names follow torchvision's module names)."""
    g = _Graph("mobilenet_v2")
    g.const("relu6.min", 0.0)
    g.const("relu6.max", 6.0)

    def conv_relu6(x: str, name: str, cin: int, cout: int, k: int, stride: int = 1, group: int = 1) -> str:
        x = g.conv(x, f"{name}.0", cin, cout, k, stride, group=group)
        return g.node("Clip", [x, "relu6.min", "relu6.max"], f"{name}.2")

    x, cin, index = conv_relu6("input", "features.0", 3, 32, 3, 2), 32, 1
    for t, c, n, s in MOBILENET_V2_SETTINGS:
        for i in range(n):
            stride, hidden, prefix = (s if i == 0 else 1), cin * t, f"features.{index}.conv"
            y, j = x, 0
            if t != 1:  # 1x1 expansion
                y, j = conv_relu6(y, f"{prefix}.0", cin, hidden, 1), 1
            y = conv_relu6(y, f"{prefix}.{j}", hidden, hidden, 3, stride, group=hidden)  # 3x3 depthwise
            y = g.conv(y, f"{prefix}.{j + 1}", hidden, c, 1)  # linear 1x1 projection
            if stride == 1 and cin == c:
                y = g.node("Add", [x, y], f"features.{index}.add")
            x, cin, index = y, c, index + 1
    x = conv_relu6(x, "features.18", cin, 1280, 1)
    g.head(x, "classifier.1", 1280, 1000, out="output")
    return g.model([("input", [batch, 3, size, size])], [("output", [batch, 1000])])


# (bottleneck units, bottleneck width, first stride) of ResNet-50's four stages
RESNET50_STAGES = [(3, 64, 1), (4, 128, 2), (6, 256, 2), (3, 512, 2)]


def resnet50_v2(batch: int = 1, size: int = 224) -> onnx.ModelProto:
    """Pre-activation ResNet-50 (He et al. 2016, "Identity mappings") in Gluon's layout, as in resnet50-v2-7.

    Gluon normalises the raw input with a BatchNorm, then conv 7x7/2 + BN + ReLU + max-pool; every
    bottleneck runs BN+ReLU first, and its first unit takes a 1x1 projection (no BN) of that
    pre-activated input as the shortcut; the stride sits on the 3x3 conv; BN + ReLU close the trunk.
    """
    g = _Graph("resnet50_v2")

    def bn_relu(x: str, name: str, c: int, relu: str) -> str:
        return g.node("Relu", [g.bn(x, name, c)], relu)

    x = g.bn("data", "bn_data", 3)
    x = bn_relu(g.conv(x, "conv0", 3, 64, 7, 2, bias=False), "bn0", 64, "relu0")
    x = g.node("MaxPool", [x], "pool0", kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4)
    cin = 64
    for stage, (units, width, first_stride) in enumerate(RESNET50_STAGES, start=1):
        for unit in range(1, units + 1):
            p, stride, cout = f"stage{stage}.unit{unit}", (first_stride if unit == 1 else 1), width * 4
            pre = bn_relu(x, f"{p}.bn1", cin, f"{p}.relu1")
            shortcut = g.conv(pre, f"{p}.downsample", cin, cout, 1, stride, bias=False) if unit == 1 else x
            y = bn_relu(g.conv(pre, f"{p}.conv1", cin, width, 1, bias=False), f"{p}.bn2", width, f"{p}.relu2")
            y = bn_relu(g.conv(y, f"{p}.conv2", width, width, 3, stride, bias=False), f"{p}.bn3", width, f"{p}.relu3")
            y = g.conv(y, f"{p}.conv3", width, cout, 1, bias=False)
            x, cin = g.node("Add", [y, shortcut], f"{p}.add"), cout
    x = bn_relu(x, "bn1", cin, "relu1")
    g.head(x, "dense0", cin, 1000, out="output")
    return g.model([("data", [batch, 3, size, size])], [("output", [batch, 1000])])


def yolov5s(batch: int = 1, size: int = 640) -> onnx.ModelProto:
    """YOLOv5s v6.x (models/yolov5s.yaml: depth 0.33, width 0.50), Detect reduced to its three 1x1 convs.

    Node names follow ultralytics' module paths (model.<layer>...). Outputs output0/1/2 are the raw
    head maps [batch, 3*(80+5), size/8|16|32, ...], as rknn_model_zoo's export leaves them.
    """
    g = _Graph("yolov5s")
    g.const("resize.scales", [1.0, 1.0, 2.0, 2.0])

    def conv(x: str, name: str, cin: int, cout: int, k: int = 1, stride: int = 1, pad: int | None = None) -> str:
        y = g.conv(x, f"{name}.conv", cin, cout, k, stride, pad)  # BN folded into the conv's bias
        return g.node("Mul", [y, g.node("Sigmoid", [y], f"{name}.act.sigmoid")], f"{name}.act")  # SiLU

    def c3(x: str, name: str, cin: int, cout: int, n: int, shortcut: bool = True) -> str:
        hidden = cout // 2
        a = conv(x, f"{name}.cv1", cin, hidden)
        for i in range(n):
            b = conv(conv(a, f"{name}.m.{i}.cv1", hidden, hidden), f"{name}.m.{i}.cv2", hidden, hidden, 3)
            a = g.node("Add", [a, b], f"{name}.m.{i}.add") if shortcut else b
        b = conv(x, f"{name}.cv2", cin, hidden)
        return conv(g.node("Concat", [a, b], f"{name}.concat", axis=1), f"{name}.cv3", 2 * hidden, cout)

    def sppf(x: str, name: str, cin: int, cout: int) -> str:
        pooled = [conv(x, f"{name}.cv1", cin, cin // 2)]
        for i in range(3):
            pooled.append(g.node("MaxPool", [pooled[-1]], f"{name}.m.{i}", kernel_shape=[5, 5], strides=[1, 1],
                                 pads=[2] * 4))
        return conv(g.node("Concat", pooled, f"{name}.concat", axis=1), f"{name}.cv2", 2 * cin, cout)

    def upsample(x: str, name: str) -> str:  # nn.Upsample(scale_factor=2, mode='nearest') as torch exports it
        return g.node("Resize", [x, "", "resize.scales"], name, mode="nearest",
                      coordinate_transformation_mode="asymmetric", nearest_mode="floor")

    def concat(xs: list[str], name: str) -> str:
        return g.node("Concat", xs, name, axis=1)

    # backbone
    x = conv("images", "model.0", 3, 32, 6, 2, 2)
    x = c3(conv(x, "model.1", 32, 64, 3, 2), "model.2", 64, 64, 1)
    p3 = c3(conv(x, "model.3", 64, 128, 3, 2), "model.4", 128, 128, 2)
    p4 = c3(conv(p3, "model.5", 128, 256, 3, 2), "model.6", 256, 256, 3)
    x = c3(conv(p4, "model.7", 256, 512, 3, 2), "model.8", 512, 512, 1)
    x = sppf(x, "model.9", 512, 512)
    # PANet neck
    h10 = conv(x, "model.10", 512, 256)
    x = c3(concat([upsample(h10, "model.11"), p4], "model.12"), "model.13", 512, 256, 1, shortcut=False)
    h14 = conv(x, "model.14", 256, 128)
    small = c3(concat([upsample(h14, "model.15"), p3], "model.16"), "model.17", 256, 128, 1, shortcut=False)
    x = concat([conv(small, "model.18", 128, 128, 3, 2), h14], "model.19")
    medium = c3(x, "model.20", 256, 256, 1, shortcut=False)
    x = concat([conv(medium, "model.21", 256, 256, 3, 2), h10], "model.22")
    large = c3(x, "model.23", 512, 512, 1, shortcut=False)
    # Detect: one 1x1 conv per scale to 3 anchors x (80 classes + 5), no decoding
    outputs = []
    for i, (x, c, stride) in enumerate([(small, 128, 8), (medium, 256, 16), (large, 512, 32)]):
        g.conv(x, f"model.24.m.{i}", c, 255, 1, out=f"output{i}")
        outputs.append((f"output{i}", [batch, 255, size // stride, size // stride]))
    return g.model([("images", [batch, 3, size, size])], outputs)


ARCHITECTURES: dict[str, Callable[..., onnx.ModelProto]] = {
    "mobilenetv2": mobilenet_v2,
    "resnet50-v2": resnet50_v2,
    "yolov5s": yolov5s,
}

# Reference counts at the default input size. "params" counts trainable parameters as the source
# reports them; the graphs' initializers differ by what BN folding or BN running statistics add or
# remove (see "graph_params"). MACs are multiply-accumulates of the convolutions and Gemm.
PUBLISHED: dict[str, dict] = {
    "mobilenetv2": {
        "input": [1, 3, 224, 224],
        "params": 3_504_872,
        "macs": 0.30e9,
        "source": "torchvision docs, MobileNet_V2_Weights.IMAGENET1K_V1: num_params 3504872, GFLOPS 0.30 "
                  "(torchvision's 'GFLOPS' count multiply-adds); MobileNetV2 paper: 300M multiply-adds",
        "graph_params": "BN folded: 3504872 - 17056 BN channels (each BN's weight+bias -> one conv bias) "
                        "= 3487816, matching OpenVINO OMZ's 3.489 MParams for the exported model",
    },
    "resnet50-v2": {
        "input": [1, 3, 224, 224],
        "params": 25_500_000,
        "macs": 4.1e9,
        "source": "commonly quoted (~25.5 M params, ~4.1 G MACs for ResNet-50 v2 at 224); cross-check: the ONNX "
                  "model zoo's resnet50-v2-7.onnx is 97.7 MB (MiB) of float32, i.e. ~25.6 M stored values",
        "graph_params": "25595060 initializer values = 25549486 trainable + 45574 BN running mean/var "
                        "(97.64 MiB as float32, matching the zoo file)",
    },
    "yolov5s": {
        "input": [1, 3, 640, 640],
        "params": 7_225_885,
        "macs": 16.5e9 / 2,
        "source": "ultralytics/yolov5 README (v6.0+) table: YOLOv5s 7.2 M params, 16.5 GFLOPs at 640 "
                  "(FLOPs = 2 x MACs); fused model summary: '157 layers, 7225885 parameters, 16.4 GFLOPs'",
        "graph_params": "BN folded, so equal to the fused count 7225885",
    },
}
