"""Published architectures written as ONNX graphs, for the latency-estimator benchmark.

The estimator predicts latency from a model's graph: which operators, with which shapes, how many
parameters and multiply-accumulates. To check it against real networks rather than toy ones, this
module builds well-known architectures node by node with `onnx.helper` (no torch, nothing downloads),
laid out the way their common ONNX exports are:

* `mobilenet_v2`: torchvision / ONNX model zoo mobilenetv2-12 (BN folded into Conv, ReLU6 as Clip);
* `resnet50_v2`: ONNX model zoo resnet50-v2-7, i.e. MXNet Gluon's pre-activation ResNet-50 v2;
* the detectors of Rockchip's rknn_model_zoo, as that zoo's ONNX files are (its exports move box
  decoding, DFL and NMS out of the graph for the NPU; each builder's docstring says what its head keeps
  and where the layout comes from): `yolov5` (n, s, m, and s with ReLU), `yolov8` (n, s, m), `yolox`
  (s, m), `yolov7_tiny`, `yolov6n`. The registry's "yolov5s" is the graph the RK3588 cost model was
  calibrated on, kept node for node (it lacks the Sigmoids the zoo's export ends with, see `yolov5`).

Every weight is zero (BatchNormalization scale and variance are one, so the graph stays valid):
latency depends on shapes, not values, and zeros keep the builders fast and deterministic.
`ARCHITECTURES` is keyed by the names rknn_model_zoo uses; `PUBLISHED` holds the parameter and MAC
counts the graphs were checked against (tests/test_architectures.py), with their sources.
"""

from __future__ import annotations

from typing import Callable

import onnx

from detectors import (yolov5, yolov5m, yolov5n, yolov5s, yolov5s_relu, yolov6n, yolov7_tiny, yolov8, yolov8m,  # noqa: F401
                       yolov8n, yolov8s, yolox, yolox_m, yolox_s)
from onnx_graph import IR_VERSION, OPSET, _Graph  # noqa: F401


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


# depth and width multiples of ultralytics' models/yolov5{n,s,m}.yaml

ARCHITECTURES: dict[str, Callable[..., onnx.ModelProto]] = {
    "mobilenetv2": mobilenet_v2,
    "resnet50-v2": resnet50_v2,
    "yolov5n": yolov5n,
    "yolov5s": yolov5s,
    "yolov5s_relu": yolov5s_relu,
    "yolov5m": yolov5m,
    "yolov8n": yolov8n,
    "yolov8s": yolov8s,
    "yolov8m": yolov8m,
    "yolox_s": yolox_s,
    "yolox_m": yolox_m,
    "yolov7-tiny": yolov7_tiny,
    "yolov6n": yolov6n,
}

# Reference counts at the default input size. "params" counts trainable parameters as the source
# reports them; the graphs' initializers differ by what BN folding or BN running statistics add or
# remove (see "graph_params"). MACs are multiply-accumulates of the convolutions and Gemm (sources that
# give GFLOPs count 2 per MAC). "fused_params", where given, is the exact count the source's own tool
# prints for the BN-fused model, the same weights the graph holds less "export_removes" (what the zoo's
# export leaves out of the graph).
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
        "fused_params": 7_225_885,
        "source": "ultralytics/yolov5 README (v6.0+) table: YOLOv5s 7.2 M params, 16.5 GFLOPs at 640 "
                  "(FLOPs = 2 x MACs); fused model summary: '157 layers, 7225885 parameters, 16.4 GFLOPs'",
        "graph_params": "BN folded, so equal to the fused count 7225885",
    },
    "yolov5n": {
        "input": [1, 3, 640, 640],
        "params": 1_900_000,
        "macs": 4.5e9 / 2,
        "fused_params": 1_867_405,
        "source": "ultralytics/yolov5 README (v6.0+) table: YOLOv5n 1.9 M params, 4.5 GFLOPs at 640; fused model "
                  "summary printed by yolov5 (e.g. val.py): 'YOLOv5n summary: 157 layers, 1867405 parameters, "
                  "4.5 GFLOPs'",
        "graph_params": "BN folded, so equal to the fused count 1867405 (the README's 1.9 M is rounded up)",
    },
    "yolov5s_relu": {
        "input": [1, 3, 640, 640],
        "params": 7_225_885,
        "macs": 16.5e9 / 2,
        "fused_params": 7_225_885,
        "source": "YOLOv5s's figures (ultralytics/yolov5 README: 7.2 M params, 16.5 GFLOPs; fused 7225885): "
                  "airockchip/yolov5 only swaps SiLU for ReLU, which has no parameters",
        "graph_params": "BN folded, so equal to YOLOv5s's fused count 7225885",
    },
    "yolov5m": {
        "input": [1, 3, 640, 640],
        "params": 21_200_000,
        "macs": 49.0e9 / 2,
        "fused_params": 21_172_173,
        "source": "ultralytics/yolov5 README (v6.0+) table: YOLOv5m 21.2 M params, 49.0 GFLOPs at 640; fused "
                  "model summary: 'YOLOv5m summary: 212 layers, 21172173 parameters, 48.9 GFLOPs'",
        "graph_params": "BN folded, so equal to the fused count 21172173",
    },
    "yolov8n": {
        "input": [1, 3, 640, 640],
        "params": 3_200_000,
        "macs": 8.7e9 / 2,
        "fused_params": 3_151_904,
        "export_removes": 16,
        "source": "ultralytics docs / README, Detection (COCO) table: YOLOv8n 3.2 M params, 8.7 GFLOPs at 640; "
                  "fused model summary: 'YOLOv8n summary (fused): 168 layers, 3151904 parameters, 8.7 GFLOPs'",
        "graph_params": "BN folded: the fused count 3151904 less the DFL's fixed 1x1 conv (16 weights), which the "
                        "zoo's export leaves out: 3151888 (the fused model's trainable count)",
    },
    "yolov8s": {
        "input": [1, 3, 640, 640],
        "params": 11_200_000,
        "macs": 28.6e9 / 2,
        "fused_params": 11_156_544,
        "export_removes": 16,
        "source": "ultralytics docs / README, Detection (COCO) table: YOLOv8s 11.2 M params, 28.6 GFLOPs at 640; "
                  "fused model summary: 'YOLOv8s summary (fused): 168 layers, 11156544 parameters, 28.6 GFLOPs'",
        "graph_params": "BN folded: the fused count 11156544 less the DFL conv's 16 weights = 11156528",
    },
    "yolov8m": {
        "input": [1, 3, 640, 640],
        "params": 25_900_000,
        "macs": 78.9e9 / 2,
        "fused_params": 25_886_080,
        "export_removes": 16,
        "source": "ultralytics docs / README, Detection (COCO) table: YOLOv8m 25.9 M params, 78.9 GFLOPs at 640; "
                  "fused model summary: 'YOLOv8m summary (fused): 218 layers, 25886080 parameters, 78.9 GFLOPs'",
        "graph_params": "BN folded: the fused count 25886080 less the DFL conv's 16 weights = 25886064",
    },
    "yolox_s": {
        "input": [1, 3, 640, 640],
        "params": 9_000_000,
        "macs": 26.8e9 / 2,
        "source": "Megvii-BaseDetection/YOLOX README, standard models: YOLOX-s 640, 9.0 M params, 26.8 GFLOPs "
                  "(thop MACs x 2 on the unfused model)",
        "graph_params": "BN folded (one bias per BN channel instead of weight + bias: ~10 k fewer), plus the "
                        "export's fixed 2x2 space-to-depth conv (144 weights): 8956847",
    },
    "yolox_m": {
        "input": [1, 3, 640, 640],
        "params": 25_300_000,
        "macs": 73.8e9 / 2,
        "source": "Megvii-BaseDetection/YOLOX README, standard models: YOLOX-m 640, 25.3 M params, 73.8 GFLOPs",
        "graph_params": "BN folded, plus the export's fixed 2x2 space-to-depth conv (144 weights): 25304991",
    },
    "yolov7-tiny": {
        "input": [1, 3, 640, 640],
        "params": 6_200_000,
        "macs": 13.8e9 / 2,
        "source": "WongKinYiu/yolov7 README / YOLOv7 paper comparison table: YOLOv7-tiny-SiLU 6.2 M params, "
                  "13.8 GFLOPs at 640 (the same layers as the LeakyReLU yolov7-tiny: 5.8 GFLOPs at 416)",
        "graph_params": "deploy form: BN folded, the implicit layers of IDetect folded into its convs: 6219709",
    },
    "yolov6n": {
        "input": [1, 3, 640, 640],
        "params": 4_700_000,
        "macs": 11.4e9 / 2,
        "source": "meituan/YOLOv6 README (release 0.3.0, v3.0): YOLOv6-N 640, 4.7 M params, 11.4 GFLOPs, 'Params "
                  "and FLOPs of YOLOv6 are estimated on deployed models'",
        "graph_params": "deployed (RepVGG blocks reparameterised) with every Conv+BN folded: 4646940, 1.1 % "
                        "under the rounded 4.7 M (what YOLOv6's own count includes beyond the folded weights, "
                        "e.g. unfused BN or the unused DFL projection, was not checked)",
    },
}
