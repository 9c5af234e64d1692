"""The detectors of Rockchip's rknn_model_zoo as ONNX graphs, laid out as that zoo's ONNX files are (its exports
move box decoding, DFL and NMS out of the graph for the NPU; each builder's docstring says what its head keeps
and where the layout comes from): `yolov5` (n, s, m, and s with ReLU), `yolov8` (n, s, m), `yolox` (s, m),
`yolov7_tiny`, `yolov6n`. Registered, with their published counts, in benchmarks/architectures.py.
"""

from __future__ import annotations

import math

import numpy as np
import onnx

from onnx_graph import _Graph


YOLOV5_SCALES = {"n": (0.33, 0.25), "s": (0.33, 0.50), "m": (0.67, 0.75)}


def _divisible(x: float, divisor: int = 8) -> int:
    """ultralytics' make_divisible: channels rounded up to a multiple of 8."""
    return int(math.ceil(x / divisor) * divisor)


def _repeats(n: int, depth: float) -> int:
    """ultralytics' parse_model: a block's repeats scaled by the depth multiple."""
    return max(round(n * depth), 1) if n > 1 else n


def yolov5(variant: str, act: str = "silu", batch: int = 1, size: int = 640, sigmoid: bool = True,
           graph_name: str | None = None) -> onnx.ModelProto:
    """YOLOv5 v6.x (models/yolov5.yaml, P5) at one of YOLOV5_SCALES, as airockchip/yolov5 exports it for
    rknn_model_zoo: Detect reduced to its three 1x1 convs, each followed by a Sigmoid, no box decoding.

    `act` is "silu" (Sigmoid + Mul, ultralytics' default) or "relu" (airockchip/yolov5's NPU variant,
    the zoo's yolov5s_relu). Node names follow ultralytics' module paths (model.<layer>...); outputs
    output0/1/2 are [batch, 3*(80+5), size/8|16|32, ...]. The zoo's postprocess (examples/yolov5/python/
    yolov5.py, cpp/postprocess.cc) reads them as probabilities (xy*2-0.5, thresholds on the raw values),
    so its export keeps the Sigmoid in the graph (airockchip/yolov5 Detect.forward under RKNN_model_hack:
    sigmoid(m[i](x[i]))). `sigmoid=False` drops it: the registry's "yolov5s" is built that way, the
    layout the RK3588 cost model was calibrated on (three element-wise nodes on the outputs less).
    """
    if act not in ("silu", "relu"):
        raise ValueError(f"act must be 'silu' or 'relu', not {act!r}")
    depth, width = YOLOV5_SCALES[variant]
    g = _Graph(graph_name or f"yolov5{variant}")
    g.const("resize.scales", [1.0, 1.0, 2.0, 2.0])

    def ch(c: int) -> int:
        return _divisible(c * width)

    def conv(x: str, name: str, cin: int, cout: int, k: int = 1, stride: int = 1, pad: int | None = None) -> str:
        y = g.conv(x, f"{name}.conv", cin, cout, k, stride, pad)  # BN folded into the conv's bias
        if act == "relu":
            return g.node("Relu", [y], f"{name}.act")
        return g.node("Mul", [y, g.node("Sigmoid", [y], f"{name}.act.sigmoid")], f"{name}.act")  # SiLU

    def c3(x: str, name: str, cin: int, cout: int, n: int, shortcut: bool = True) -> str:
        hidden = cout // 2
        a = conv(x, f"{name}.cv1", cin, hidden)
        for i in range(_repeats(n, depth)):
            b = conv(conv(a, f"{name}.m.{i}.cv1", hidden, hidden), f"{name}.m.{i}.cv2", hidden, hidden, 3)
            a = g.node("Add", [a, b], f"{name}.m.{i}.add") if shortcut else b
        b = conv(x, f"{name}.cv2", cin, hidden)
        return conv(g.concat([a, b], f"{name}.concat"), f"{name}.cv3", 2 * hidden, cout)

    def sppf(x: str, name: str, cin: int, cout: int) -> str:
        pooled = g.pool_chain(conv(x, f"{name}.cv1", cin, cin // 2), f"{name}.m")
        return conv(g.concat(pooled, f"{name}.concat"), f"{name}.cv2", 2 * cin, cout)

    c64, c128, c256, c512, c1024 = (ch(c) for c in (64, 128, 256, 512, 1024))
    # backbone
    x = conv("images", "model.0", 3, c64, 6, 2, 2)
    x = c3(conv(x, "model.1", c64, c128, 3, 2), "model.2", c128, c128, 3)
    p3 = c3(conv(x, "model.3", c128, c256, 3, 2), "model.4", c256, c256, 6)
    p4 = c3(conv(p3, "model.5", c256, c512, 3, 2), "model.6", c512, c512, 9)
    x = c3(conv(p4, "model.7", c512, c1024, 3, 2), "model.8", c1024, c1024, 3)
    x = sppf(x, "model.9", c1024, c1024)
    # PANet neck
    h10 = conv(x, "model.10", c1024, c512)
    x = c3(g.concat([_upsample(g, h10, "model.11"), p4], "model.12"), "model.13", 2 * c512, c512, 3, shortcut=False)
    h14 = conv(x, "model.14", c512, c256)
    small = c3(g.concat([_upsample(g, h14, "model.15"), p3], "model.16"), "model.17", 2 * c256, c256, 3,
               shortcut=False)
    x = g.concat([conv(small, "model.18", c256, c256, 3, 2), h14], "model.19")
    medium = c3(x, "model.20", 2 * c256, c512, 3, shortcut=False)
    x = g.concat([conv(medium, "model.21", c512, c512, 3, 2), h10], "model.22")
    large = c3(x, "model.23", 2 * c512, c1024, 3, shortcut=False)
    # Detect: one 1x1 conv per scale to 3 anchors x (80 classes + 5), no decoding
    outputs = []
    for i, (x, c, stride) in enumerate([(small, c256, 8), (medium, c512, 16), (large, c1024, 32)]):
        if sigmoid:
            g.node("Sigmoid", [g.conv(x, f"model.24.m.{i}", c, 255, 1)], f"model.24.m.{i}.sigmoid", out=f"output{i}")
        else:
            g.conv(x, f"model.24.m.{i}", c, 255, 1, out=f"output{i}")
        outputs.append((f"output{i}", [batch, 255, size // stride, size // stride]))
    return g.model([("images", [batch, 3, size, size])], outputs)


def _upsample(g: _Graph, x: str, name: str) -> str:
    """nn.Upsample(scale_factor=2, mode='nearest') as torch exports it (scales in the graph's "resize.scales")."""
    return g.node("Resize", [x, "", "resize.scales"], name, mode="nearest",
                  coordinate_transformation_mode="asymmetric", nearest_mode="floor")


def yolov5n(batch: int = 1, size: int = 640) -> onnx.ModelProto:
    """YOLOv5n (depth 0.33, width 0.25, SiLU), the zoo's yolov5n.onnx layout."""
    return yolov5("n", "silu", batch, size)


def yolov5s(batch: int = 1, size: int = 640) -> onnx.ModelProto:
    """YOLOv5s (depth 0.33, width 0.50, SiLU) without the head's Sigmoids: the graph the RK3588 cost
    model was calibrated on, kept node for node (see `yolov5`)."""
    return yolov5("s", "silu", batch, size, sigmoid=False)


def yolov5s_relu(batch: int = 1, size: int = 640) -> onnx.ModelProto:
    """YOLOv5s with ReLU activations, the zoo's yolov5s_relu.onnx (airockchip/yolov5 trained with nn.ReLU)."""
    return yolov5("s", "relu", batch, size, graph_name="yolov5s_relu")


def yolov5m(batch: int = 1, size: int = 640) -> onnx.ModelProto:
    """YOLOv5m (depth 0.67, width 0.75, SiLU), the zoo's yolov5m.onnx layout."""
    return yolov5("m", "silu", batch, size)


# (depth, width, max_channels) of ultralytics' models/v8/yolov8.yaml scales
YOLOV8_SCALES = {"n": (0.33, 0.25, 1024), "s": (0.33, 0.50, 1024), "m": (0.67, 0.75, 768)}


def _silu(g: _Graph, y: str, name: str) -> str:
    """SiLU as torch exports it: Sigmoid, Mul (node <name>.sigmoid, <name>)."""
    return g.node("Mul", [y, g.node("Sigmoid", [y], f"{name}.sigmoid")], name)


def _class_sum(g: _Graph, cls: str, name: str, out: str) -> str:
    """The zoo's NPU-friendly score sum beside each class map: ReduceSum over classes, clipped to [0, 1]."""
    total = g.node("ReduceSum", [cls, "class_sum.axes"], name, keepdims=1)
    return g.node("Clip", [total, "class_sum.min", "class_sum.max"], f"{name}.clip", out=out)


def yolov8(variant: str, batch: int = 1, size: int = 640) -> onnx.ModelProto:
    """YOLOv8 (ultralytics models/v8/yolov8.yaml) at one of YOLOV8_SCALES, as rknn_model_zoo exports it
    with airockchip/ultralytics_yolov8 (format="rknn").

    C2f blocks (cv1, Split in two, n bottlenecks each appending to the list, Concat, cv2), SPPF, SiLU as
    Sigmoid + Mul, BN folded. The zoo's Detect head (airockchip/ultralytics_yolov8 ultralytics/nn/modules/
    head.py, branch `self.export and self.format == 'rknn'`) drops DFL and box decoding: per scale it
    returns cv2[i](x) (box distribution [batch, 64, h, w], before DFL), sigmoid(cv3[i](x)) (80 class
    scores) and clamp(sum over classes, 0, 1) (ReduceSum + Clip, [batch, 1, h, w]); the zoo's README
    (examples/yolov8) lists these nine outputs in that order, output0..output8 here. Node names follow
    ultralytics' module paths (model.<layer>...).
    """
    depth, width, max_channels = YOLOV8_SCALES[variant]
    g = _Graph(f"yolov8{variant}")
    g.const("resize.scales", [1.0, 1.0, 2.0, 2.0])
    g.const("class_sum.axes", [1], np.int64)
    g.const("class_sum.min", 0.0)
    g.const("class_sum.max", 1.0)

    def ch(c: int) -> int:
        return _divisible(min(c, max_channels) * width)

    def conv(x: str, name: str, cin: int, cout: int, k: int = 1, stride: int = 1) -> str:
        return _silu(g, g.conv(x, f"{name}.conv", cin, cout, k, stride), f"{name}.act")

    def c2f(x: str, name: str, cin: int, cout: int, n: int, shortcut: bool = False) -> str:
        hidden = cout // 2
        ys = g.split(conv(x, f"{name}.cv1", cin, 2 * hidden), f"{name}.split", 2)
        for i in range(_repeats(n, depth)):
            b = conv(conv(ys[-1], f"{name}.m.{i}.cv1", hidden, hidden, 3), f"{name}.m.{i}.cv2", hidden, hidden, 3)
            ys.append(g.node("Add", [ys[-1], b], f"{name}.m.{i}.add") if shortcut else b)
        return conv(g.concat(ys, f"{name}.concat"), f"{name}.cv2", len(ys) * hidden, cout)

    def sppf(x: str, name: str, cin: int, cout: int) -> str:
        pooled = g.pool_chain(conv(x, f"{name}.cv1", cin, cin // 2), f"{name}.m")
        return conv(g.concat(pooled, f"{name}.concat"), f"{name}.cv2", 2 * cin, cout)

    c64, c128, c256, c512, c1024 = (ch(c) for c in (64, 128, 256, 512, 1024))
    # backbone
    x = conv("images", "model.0", 3, c64, 3, 2)
    x = c2f(conv(x, "model.1", c64, c128, 3, 2), "model.2", c128, c128, 3, shortcut=True)
    p3 = c2f(conv(x, "model.3", c128, c256, 3, 2), "model.4", c256, c256, 6, shortcut=True)
    p4 = c2f(conv(p3, "model.5", c256, c512, 3, 2), "model.6", c512, c512, 6, shortcut=True)
    x = c2f(conv(p4, "model.7", c512, c1024, 3, 2), "model.8", c1024, c1024, 3, shortcut=True)
    p5 = sppf(x, "model.9", c1024, c1024)
    # PAN neck
    h12 = c2f(g.concat([_upsample(g, p5, "model.10"), p4], "model.11"), "model.12", c1024 + c512, c512, 3)
    small = c2f(g.concat([_upsample(g, h12, "model.13"), p3], "model.14"), "model.15", c512 + c256, c256, 3)
    medium = c2f(g.concat([conv(small, "model.16", c256, c256, 3, 2), h12], "model.17"), "model.18", c256 + c512,
                 c512, 3)
    large = c2f(g.concat([conv(medium, "model.19", c512, c512, 3, 2), p5], "model.20"), "model.21", c512 + c1024,
                c1024, 3)
    # Detect, the zoo's layout: box branch (before DFL), class branch with Sigmoid, class-score sum
    box_c, cls_c = max(16, c256 // 4, 16 * 4), max(c256, min(80, 100))
    outputs = []
    for i, (x, c, stride) in enumerate([(small, c256, 8), (medium, c512, 16), (large, c1024, 32)]):
        h = w = size // stride
        box = conv(conv(x, f"model.22.cv2.{i}.0", c, box_c, 3), f"model.22.cv2.{i}.1", box_c, box_c, 3)
        g.conv(box, f"model.22.cv2.{i}.2", box_c, 64, 1, out=f"output{3 * i}")
        cls = conv(conv(x, f"model.22.cv3.{i}.0", c, cls_c, 3), f"model.22.cv3.{i}.1", cls_c, cls_c, 3)
        cls = g.node("Sigmoid", [g.conv(cls, f"model.22.cv3.{i}.2", cls_c, 80, 1)], f"model.22.sigmoid.{i}",
                     out=f"output{3 * i + 1}")
        _class_sum(g, cls, f"model.22.class_sum.{i}", f"output{3 * i + 2}")
        outputs += [(f"output{3 * i}", [batch, 64, h, w]), (f"output{3 * i + 1}", [batch, 80, h, w]),
                    (f"output{3 * i + 2}", [batch, 1, h, w])]
    return g.model([("images", [batch, 3, size, size])], outputs)


def yolov8n(batch: int = 1, size: int = 640) -> onnx.ModelProto:
    return yolov8("n", batch, size)


def yolov8s(batch: int = 1, size: int = 640) -> onnx.ModelProto:
    return yolov8("s", batch, size)


def yolov8m(batch: int = 1, size: int = 640) -> onnx.ModelProto:
    return yolov8("m", batch, size)


# (depth, width) of YOLOX's exps/default/yolox_{s,m}.py
YOLOX_SCALES = {"s": (0.33, 0.50), "m": (0.67, 0.75)}


def yolox(variant: str, batch: int = 1, size: int = 640) -> onnx.ModelProto:
    """YOLOX (Megvii YOLOX v0.3.0: CSPDarknet, YOLOPAFPN, decoupled YOLOXHead; SiLU) at one of
    YOLOX_SCALES, as rknn_model_zoo exports it with airockchip/YOLOX (tools/export_onnx.py --rknpu).

    The zoo's README (examples/yolox) says its model keeps the outputs of the head's three Concat nodes,
    [batch, 85, size/8|16|32, ...] = cat(reg 4, sigmoid(obj) 1, sigmoid(cls) 80), and drops the
    flatten/decoding after them; its postprocess reads obj and cls as probabilities. airockchip/YOLOX's
    README_rkopt_manual: "Optimize focus/SPPF block, getting better performance with same result". The
    fork's export code could not be read; modelled here as a downstream project's notes on that export
    describe it ("Focus -> Focus_conv, a convolution replaces the slices"; "SPPBottleneck: large kernels
    split"): Focus's four strided slices + Concat become one fixed 2x2 stride-2 convolution (3 -> 12
    channels, no bias, a one-hot space-to-depth: same result) before the stem's 3x3 conv, and
    SPPBottleneck's 9x9 and 13x13 max-pools become chained 5x5 pools (5, 5∘5, 5∘5∘5: same result). Had
    the export folded slices and 3x3 conv into one 6x6/2 conv instead (YOLOv5 v6's equivalent), the
    graph would have one conv less: 144 weights and 15 M MACs at 640, 0.1 % of the model.
    Node names follow YOLOX's module paths (backbone.backbone.dark2..., backbone.C3_p4..., head.stems.0...).
    """
    depth, width = YOLOX_SCALES[variant]
    g = _Graph(f"yolox_{variant}")
    g.const("resize.scales", [1.0, 1.0, 2.0, 2.0])

    def conv(x: str, name: str, cin: int, cout: int, k: int = 1, stride: int = 1) -> str:  # BaseConv
        return _silu(g, g.conv(x, f"{name}.conv", cin, cout, k, stride), f"{name}.act")

    def csp(x: str, name: str, cin: int, cout: int, n: int, shortcut: bool = True) -> str:  # CSPLayer
        hidden = cout // 2
        a = conv(x, f"{name}.conv1", cin, hidden)
        b = conv(x, f"{name}.conv2", cin, hidden)
        for i in range(n):
            y = conv(conv(a, f"{name}.m.{i}.conv1", hidden, hidden), f"{name}.m.{i}.conv2", hidden, hidden, 3)
            a = g.node("Add", [y, a], f"{name}.m.{i}.add") if shortcut else y
        return conv(g.concat([a, b], f"{name}.concat"), f"{name}.conv3", 2 * hidden, cout)

    def spp(x: str, name: str, cin: int, cout: int) -> str:  # SPPBottleneck, pools 5/9/13 as chained 5x5
        pooled = g.pool_chain(conv(x, f"{name}.conv1", cin, cin // 2), f"{name}.m")
        return conv(g.concat(pooled, f"{name}.concat"), f"{name}.conv2", 2 * cin, cout)

    c = [int(v * width) for v in (64, 128, 256, 512, 1024)]
    base_depth, n = max(round(depth * 3), 1), round(3 * depth)
    # backbone: CSPDarknet; the stem's Focus with its slices as a fixed 2x2/2 convolution
    bb = "backbone.backbone"
    x = g.conv("images", f"{bb}.stem.space_to_depth", 3, 12, 2, 2, 0, bias=False)
    x = conv(x, f"{bb}.stem.conv", 12, c[0], 3)
    x = csp(conv(x, f"{bb}.dark2.0", c[0], c[1], 3, 2), f"{bb}.dark2.1", c[1], c[1], base_depth)
    x3 = csp(conv(x, f"{bb}.dark3.0", c[1], c[2], 3, 2), f"{bb}.dark3.1", c[2], c[2], base_depth * 3)
    x4 = csp(conv(x3, f"{bb}.dark4.0", c[2], c[3], 3, 2), f"{bb}.dark4.1", c[3], c[3], base_depth * 3)
    x = spp(conv(x4, f"{bb}.dark5.0", c[3], c[4], 3, 2), f"{bb}.dark5.1", c[4], c[4])
    x5 = csp(x, f"{bb}.dark5.2", c[4], c[4], base_depth, shortcut=False)
    # YOLOPAFPN
    fpn0 = conv(x5, "backbone.lateral_conv0", c[4], c[3])
    x = csp(g.concat([_upsample(g, fpn0, "backbone.upsample.0"), x4], "backbone.cat.0"), "backbone.C3_p4",
            2 * c[3], c[3], n, shortcut=False)
    fpn1 = conv(x, "backbone.reduce_conv1", c[3], c[2])
    pan2 = csp(g.concat([_upsample(g, fpn1, "backbone.upsample.1"), x3], "backbone.cat.1"), "backbone.C3_p3",
               2 * c[2], c[2], n, shortcut=False)
    x = g.concat([conv(pan2, "backbone.bu_conv2", c[2], c[2], 3, 2), fpn1], "backbone.cat.2")
    pan1 = csp(x, "backbone.C3_n3", 2 * c[2], c[3], n, shortcut=False)
    x = g.concat([conv(pan1, "backbone.bu_conv1", c[3], c[3], 3, 2), fpn0], "backbone.cat.3")
    pan0 = csp(x, "backbone.C3_n4", 2 * c[3], c[4], n, shortcut=False)
    # YOLOXHead: stem, two 3x3 convs per branch, cls/reg/obj 1x1 predictions, cat(reg, sigmoid(obj), sigmoid(cls))
    hidden, outputs = int(256 * width), []
    for i, (x, cin, stride) in enumerate([(pan2, c[2], 8), (pan1, c[3], 16), (pan0, c[4], 32)]):
        x = conv(x, f"head.stems.{i}", cin, hidden)
        cls = conv(conv(x, f"head.cls_convs.{i}.0", hidden, hidden, 3), f"head.cls_convs.{i}.1", hidden, hidden, 3)
        reg = conv(conv(x, f"head.reg_convs.{i}.0", hidden, hidden, 3), f"head.reg_convs.{i}.1", hidden, hidden, 3)
        cls = g.node("Sigmoid", [g.conv(cls, f"head.cls_preds.{i}", hidden, 80, 1)], f"head.cls_preds.{i}.sigmoid")
        box = g.conv(reg, f"head.reg_preds.{i}", hidden, 4, 1)
        obj = g.node("Sigmoid", [g.conv(reg, f"head.obj_preds.{i}", hidden, 1, 1)], f"head.obj_preds.{i}.sigmoid")
        g.node("Concat", [box, obj, cls], f"head.cat.{i}", out=f"output{i}", axis=1)
        outputs.append((f"output{i}", [batch, 85, size // stride, size // stride]))
    return g.model([("images", [batch, 3, size, size])], outputs)


def yolox_s(batch: int = 1, size: int = 640) -> onnx.ModelProto:
    return yolox("s", batch, size)


def yolox_m(batch: int = 1, size: int = 640) -> onnx.ModelProto:
    return yolox("m", batch, size)


# cfg/deploy/yolov7-tiny.yaml of WongKinYiu/yolov7, layer by layer: (from, module, args). "conv" args are
# (channels, kernel, stride), LeakyReLU(0.1) after each; "mp" is MaxPool 2x2/2; "sp" a stride-1 max-pool of
# the given size; "up" nearest upsampling x2; "cat" a channel Concat.
def _elan(c: int, p: int) -> list:  # the tiny ELAN block: two 1x1 branches, two 3x3 on the second, Concat, 1x1
    return [(-1, "conv", (c, 1, 1)), (-2, "conv", (c, 1, 1)), (-1, "conv", (c, 3, 1)), (-1, "conv", (c, 3, 1)),
            ([-1, -2, -3, -4], "cat", ()), (-1, "conv", (p, 1, 1))]


YOLOV7_TINY = [
    (-1, "conv", (32, 3, 2)), (-1, "conv", (64, 3, 2)), *_elan(32, 64),  # 0-7
    (-1, "mp", ()), *_elan(64, 128),  # 8-14 (P3)
    (-1, "mp", ()), *_elan(128, 256),  # 15-21 (P4)
    (-1, "mp", ()), *_elan(256, 512),  # 22-28 (P5)
    # head: SPPCSP-tiny
    (-1, "conv", (256, 1, 1)), (-2, "conv", (256, 1, 1)), (-1, "sp", (5,)), (-2, "sp", (9,)), (-3, "sp", (13,)),
    ([-1, -2, -3, -4], "cat", ()), (-1, "conv", (256, 1, 1)), ([-1, -7], "cat", ()), (-1, "conv", (256, 1, 1)),  # 37
    (-1, "conv", (128, 1, 1)), (-1, "up", ()), (21, "conv", (128, 1, 1)), ([-1, -2], "cat", ()), *_elan(64, 128),  # 47
    (-1, "conv", (64, 1, 1)), (-1, "up", ()), (14, "conv", (64, 1, 1)), ([-1, -2], "cat", ()), *_elan(32, 64),  # 57
    (-1, "conv", (128, 3, 2)), ([-1, 47], "cat", ()), *_elan(64, 128),  # 65
    (-1, "conv", (256, 3, 2)), ([-1, 37], "cat", ()), *_elan(128, 256),  # 73
    (57, "conv", (128, 3, 1)), (65, "conv", (256, 3, 1)), (73, "conv", (512, 3, 1)),  # 74-76, into Detect (77)
]


def yolov7_tiny(batch: int = 1, size: int = 640) -> onnx.ModelProto:
    """YOLOv7-tiny (WongKinYiu/yolov7 cfg/deploy/yolov7-tiny.yaml, LeakyReLU 0.1, 80 classes) as
    rknn_model_zoo exports it with airockchip/yolov7 (export.py --rknpu).

    The deploy form: BN folded, IDetect's implicit layers folded into Detect's 1x1 convs. As for YOLOv5,
    the zoo's outputs output0/1/2 are each scale's 1x1 conv followed by a Sigmoid, [batch, 255, h, w]
    (its postprocess, examples/yolov7/python/yolov7.py, reads them as probabilities). airockchip/yolov7's
    README_rkopt_manual: "Optimize SPP block, getting better performance with same result"; the code was
    not found, so the 9x9 and 13x13 max-pools of the SP layers are written as chains of 5x5 pools (two and
    three: the same result), each SP layer its own chain. Node names follow the module paths (model.<i>...).
    """
    g = _Graph("yolov7-tiny")
    g.const("resize.scales", [1.0, 1.0, 2.0, 2.0])
    outs: list[str] = []  # each layer's output and channels, indexed as the yaml's "from" indexes them
    chans: list[int] = []
    for i, (src, module, args) in enumerate(YOLOV7_TINY):
        sources = [j if j >= 0 else i + j for j in ([src] if isinstance(src, int) else src)]
        ins = [outs[j] if j >= 0 else "images" for j in sources]
        cin = [chans[j] if j >= 0 else 3 for j in sources]
        name = f"model.{i}"
        if module == "conv":
            cout, k, stride = args
            y = g.conv(ins[0], f"{name}.conv", cin[0], cout, k, stride)
            x, c = g.node("LeakyRelu", [y], f"{name}.act", alpha=0.1), cout
        elif module == "mp":
            x, c = g.node("MaxPool", ins, f"{name}.m", kernel_shape=[2, 2], strides=[2, 2]), cin[0]
        elif module == "sp":  # k x k max-pool as (k - 1) / 4 chained 5x5 pools: 5 -> one, 9 -> two, 13 -> three
            x, c = g.pool_chain(ins[0], f"{name}.m", (args[0] - 1) // 4)[-1], cin[0]
        elif module == "up":
            x, c = _upsample(g, ins[0], name), cin[0]
        else:  # cat
            x, c = g.concat(ins, name), sum(cin)
        outs.append(x)
        chans.append(c)
    outputs = []
    for i, (layer, stride) in enumerate([(74, 8), (75, 16), (76, 32)]):
        y = g.conv(outs[layer], f"model.77.m.{i}", chans[layer], 255, 1)
        g.node("Sigmoid", [y], f"model.77.m.{i}.sigmoid", out=f"output{i}")
        outputs.append((f"output{i}", [batch, 255, size // stride, size // stride]))
    return g.model([("images", [batch, 3, size, size])], outputs)


def yolov6n(batch: int = 1, size: int = 640) -> onnx.ModelProto:
    """YOLOv6-N v3.0 (meituan/YOLOv6 release 0.3.0, configs/yolov6n.py: depth 0.33, width 0.25) deployed,
    as rknn_model_zoo exports it with airockchip/YOLOv6.

    EfficientRep backbone (fuse_P2, SimCSPSPPF) and RepBiFPANNeck (BiFusion: a 2x2/2 ConvTranspose
    upsample, 1x1 lateral convs and a 3x3/2 downsample of the finer map), every RepVGG block
    reparameterised to one 3x3 convolution with bias + ReLU (switch_to_deploy, `rbr_reparam`), every
    Conv+BN+ReLU fused; the EffiDeHead keeps SiLU (stem 1x1, cls/reg 3x3). N is trained without DFL
    (reg_max 0), so the box branch gives 4 distances. The zoo's README (examples/yolov6) lists per scale
    the box [batch, 4, h, w], the class scores after Sigmoid [batch, 80, h, w] and a ReduceSum + Clip
    class-score sum [batch, 1, h, w], the same layout as its YOLOv8: output0..output8 here. Node names
    follow YOLOv6's module paths (backbone.ERBlock_2.0.rbr_reparam, neck.Bifusion0.cv1.block.conv, ...).
    Which YOLOv6 release airockchip/YOLOv6 forks is not stated; v3.0 is inferred from the zoo's
    postprocess (4-channel boxes, or DFL over reg_max + 1 bins as v3.0's larger models have).
    """
    g = _Graph("yolov6n")
    g.const("class_sum.axes", [1], np.int64)
    g.const("class_sum.min", 0.0)
    g.const("class_sum.max", 1.0)
    depth, width = 0.33, 0.25
    ch = [_divisible(c * width) for c in (64, 128, 256, 512, 1024, 256, 128, 128, 256, 256, 512)]
    reps = [_repeats(n, depth) for n in (1, 6, 12, 18, 6, 12, 12, 12, 12)]

    def rep(x: str, name: str, cin: int, cout: int, stride: int = 1) -> str:  # RepVGGBlock, deployed
        return g.node("Relu", [g.conv(x, f"{name}.rbr_reparam", cin, cout, 3, stride)], f"{name}.nonlinearity")

    def rep_block(x: str, name: str, cin: int, cout: int, n: int) -> str:  # RepBlock: conv1 + (n-1) blocks
        x = rep(x, f"{name}.conv1", cin, cout)
        for i in range(n - 1):
            x = rep(x, f"{name}.block.{i}", cout, cout)
        return x

    def cbr(x: str, name: str, cin: int, cout: int, k: int = 1, stride: int = 1) -> str:  # ConvBNReLU, fused
        return g.node("Relu", [g.conv(x, f"{name}.block.conv", cin, cout, k, stride)], f"{name}.block.act")

    def cbs(x: str, name: str, cin: int, cout: int, k: int = 1) -> str:  # ConvBNSiLU, fused
        return _silu(g, g.conv(x, f"{name}.block.conv", cin, cout, k), f"{name}.block.act")

    def csp_sppf(x: str, name: str, cin: int, cout: int) -> str:  # SimCSPSPPF
        hidden = cout // 2
        x1 = cbr(cbr(cbr(x, f"{name}.cv1", cin, hidden), f"{name}.cv3", hidden, hidden, 3), f"{name}.cv4", hidden,
                 hidden)
        y0 = cbr(x, f"{name}.cv2", cin, hidden)
        pooled = g.pool_chain(x1, f"{name}.m")
        y3 = cbr(cbr(g.concat(pooled, f"{name}.concat"), f"{name}.cv5", 4 * hidden, hidden), f"{name}.cv6", hidden,
                 hidden, 3)
        return cbr(g.concat([y0, y3], f"{name}.concat2"), f"{name}.cv7", 2 * hidden, cout)

    def bifusion(xs: list[str], name: str, cins: tuple[int, int], cout: int) -> str:
        up = g.node("ConvTranspose", [xs[0], g.const(f"{name}.upsample.upsample_transpose.weight",
                                                     np.zeros((cout, cout, 2, 2))),
                                      g.const(f"{name}.upsample.upsample_transpose.bias", np.zeros(cout))],
                    f"{name}.upsample.upsample_transpose", kernel_shape=[2, 2], strides=[2, 2])
        lateral = cbr(xs[1], f"{name}.cv1", cins[0], cout)
        down = cbr(cbr(xs[2], f"{name}.cv2", cins[1], cout), f"{name}.downsample", cout, cout, 3, 2)
        return cbr(g.concat([up, lateral, down], f"{name}.concat"), f"{name}.cv3", 3 * cout, cout)

    # EfficientRep backbone (P2 kept for the BiFusion)
    x = rep("images", "backbone.stem", 3, ch[0], 2)
    p2 = rep_block(rep(x, "backbone.ERBlock_2.0", ch[0], ch[1], 2), "backbone.ERBlock_2.1", ch[1], ch[1], reps[1])
    p3 = rep_block(rep(p2, "backbone.ERBlock_3.0", ch[1], ch[2], 2), "backbone.ERBlock_3.1", ch[2], ch[2], reps[2])
    p4 = rep_block(rep(p3, "backbone.ERBlock_4.0", ch[2], ch[3], 2), "backbone.ERBlock_4.1", ch[3], ch[3], reps[3])
    x = rep_block(rep(p4, "backbone.ERBlock_5.0", ch[3], ch[4], 2), "backbone.ERBlock_5.1", ch[4], ch[4], reps[4])
    p5 = csp_sppf(x, "backbone.ERBlock_5.2", ch[4], ch[4])
    # RepBiFPANNeck
    fpn0 = cbr(p5, "neck.reduce_layer0", ch[4], ch[5])
    x = rep_block(bifusion([fpn0, p4, p3], "neck.Bifusion0", (ch[3], ch[2]), ch[5]), "neck.Rep_p4", ch[5], ch[5],
                  reps[5])
    fpn1 = cbr(x, "neck.reduce_layer1", ch[5], ch[6])
    pan2 = rep_block(bifusion([fpn1, p3, p2], "neck.Bifusion1", (ch[2], ch[1]), ch[6]), "neck.Rep_p3", ch[6], ch[6],
                     reps[6])
    x = g.concat([cbr(pan2, "neck.downsample2", ch[6], ch[7], 3, 2), fpn1], "neck.concat1")
    pan1 = rep_block(x, "neck.Rep_n3", ch[6] + ch[7], ch[8], reps[7])
    x = g.concat([cbr(pan1, "neck.downsample1", ch[8], ch[9], 3, 2), fpn0], "neck.concat2")
    pan0 = rep_block(x, "neck.Rep_n4", ch[5] + ch[9], ch[10], reps[8])
    # EffiDeHead, the zoo's layout: box (4 distances), Sigmoid class scores, their ReduceSum + Clip
    outputs = []
    for i, (x, c, stride) in enumerate([(pan2, ch[6], 8), (pan1, ch[8], 16), (pan0, ch[10], 32)]):
        h = w = size // stride
        x = cbs(x, f"detect.stems.{i}", c, c)
        cls = cbs(x, f"detect.cls_convs.{i}", c, c, 3)
        reg = cbs(x, f"detect.reg_convs.{i}", c, c, 3)
        cls = g.node("Sigmoid", [g.conv(cls, f"detect.cls_preds.{i}", c, 80, 1)], f"detect.sigmoid.{i}",
                     out=f"output{3 * i + 1}")
        g.conv(reg, f"detect.reg_preds.{i}", c, 4, 1, out=f"output{3 * i}")
        _class_sum(g, cls, f"detect.class_sum.{i}", f"output{3 * i + 2}")
        outputs += [(f"output{3 * i}", [batch, 4, h, w]), (f"output{3 * i + 1}", [batch, 80, h, w]),
                    (f"output{3 * i + 2}", [batch, 1, h, w])]
    return g.model([("images", [batch, 3, size, size])], outputs)
