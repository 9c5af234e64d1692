"""The small ONNX graph builder the benchmark architectures are written with: zero initializers, each node's
output tensor named after the node (benchmarks/classifiers.py, benchmarks/detectors.py)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET, IR_VERSION = 13, 8


class _Graph:
    """Collects nodes and zero initializers; each node's output tensor is named after the node."""

    def __init__(self, name: str) -> None:
        self.name, self.nodes, self.inits = name, [], []

    def const(self, name: str, value, dtype=np.float32) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def node(self, op: str, inputs: list[str], name: str, out: str | None = None, **attrs) -> str:
        out = out or name
        self.nodes.append(helper.make_node(op, inputs, [out], name=name, **attrs))
        return out

    def concat(self, xs: list[str], name: str) -> str:
        return self.node("Concat", xs, name, axis=1)

    def pool_chain(self, x: str, name: str, count: int = 3) -> list[str]:
        """x and `count` chained 5x5/1 max-pools of it (<name>.0, .1, ...): SPPF's 5, 9 and 13 windows."""
        pooled = [x]
        for i in range(count):
            pooled.append(self.node("MaxPool", [pooled[-1]], f"{name}.{i}", kernel_shape=[5, 5], strides=[1, 1],
                                    pads=[2] * 4))
        return pooled

    def split(self, x: str, name: str, parts: int, axis: int = 1) -> list[str]:
        """Equal Split (torch's chunk) into outputs <name>.0, <name>.1, ..."""
        outs = [f"{name}.{i}" for i in range(parts)]
        self.nodes.append(helper.make_node("Split", [x], outs, name=name, axis=axis))
        return outs

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
