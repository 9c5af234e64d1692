"""Models the benchmarks build in place (nothing downloads): a MobileNet-style image classifier.

The layer pattern of MobileNetV1 as exported to ONNX (batch norm folded into each convolution's
bias, ReLU6 as Clip): a 3x3 stride-2 stem, then depthwise-separable blocks (3x3 depthwise + 1x1
pointwise), global average pooling, a classifier. Weights are random (He-initialised, seeded), so
accuracy means nothing here: the benchmarks compare compressed artifacts with this model's outputs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# (output channels, stride) of each depthwise-separable block, as in MobileNetV1
BLOCKS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1), (1024, 2)]


def mobilenet_style(path: Path, width: float = 0.5, resolution: int = 96, classes: int = 100,
                    seed: int = 0) -> Path:
    """Write the model to `path`: input `image` [N,3,R,R] float32, output `logits` [N,classes]."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []

    def conv(name: str, x: str, cin: int, cout: int, k: int, stride: int, group: int = 1) -> str:
        fan_in = cin // group * k * k
        w = rng.standard_normal((cout, cin // group, k, k)) * np.sqrt(2.0 / fan_in)
        b = rng.standard_normal(cout) * 0.01
        inits.append(numpy_helper.from_array(w.astype(np.float32), f"{name}.weight"))
        inits.append(numpy_helper.from_array(b.astype(np.float32), f"{name}.bias"))
        nodes.append(helper.make_node("Conv", [x, f"{name}.weight", f"{name}.bias"], [f"{name}.out"], name=name,
                                      kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4, group=group))
        nodes.append(helper.make_node("Clip", [f"{name}.out", "relu6.min", "relu6.max"], [f"{name}.act"],
                                      name=f"{name}.relu6"))
        return f"{name}.act"

    inits += [numpy_helper.from_array(np.array(0.0, np.float32), "relu6.min"),
              numpy_helper.from_array(np.array(6.0, np.float32), "relu6.max")]
    channels = max(8, int(32 * width))
    x = conv("stem", "image", 3, channels, 3, 2)
    for index, (out, stride) in enumerate(BLOCKS, start=1):
        out = max(8, int(out * width))
        x = conv(f"block{index}.dw", x, channels, channels, 3, stride, group=channels)
        x = conv(f"block{index}.pw", x, channels, out, 1, 1)
        channels = out
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["pool.out"], name="pool"))
    nodes.append(helper.make_node("Flatten", ["pool.out"], ["flat.out"], name="flatten", axis=1))
    w = rng.standard_normal((classes, channels)) * np.sqrt(1.0 / channels)
    inits.append(numpy_helper.from_array(w.astype(np.float32), "classifier.weight"))
    inits.append(numpy_helper.from_array(np.zeros(classes, np.float32), "classifier.bias"))
    nodes.append(helper.make_node("Gemm", ["flat.out", "classifier.weight", "classifier.bias"], ["logits"],
                                  name="classifier", transB=1))
    graph = helper.make_graph(
        nodes, "mobilenet_style",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, resolution, resolution])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes])],
        initializer=inits,
    )
    opsets = [helper.make_opsetid("", 13)]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="edgecheck-benchmarks")
    model.ir_version = helper.find_min_ir_version_for(opsets)
    _normalise(model, images(32, resolution, seed=seed + 100))
    onnx.checker.check_model(model, full_check=True)
    path.write_bytes(model.SerializeToString())
    return path


def _normalise(model: onnx.ModelProto, batch: np.ndarray) -> None:
    """Data-dependent initialisation (batch norm folded, as in an exported trained network): scale
    each layer so its pre-activations have zero mean and unit variance per channel on `batch`.
    Without it a random deep network maps every input to nearly the same logits."""
    import onnxruntime as ort

    weights = {t.name: t for t in model.graph.initializer}
    layers = [n for n in model.graph.node if n.op_type in ("Conv", "Gemm")]
    for node in layers:
        probe = onnx.ModelProto()
        probe.CopyFrom(model)
        probe.graph.output.append(helper.make_tensor_value_info(node.output[0], TensorProto.FLOAT, None))
        session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
        values = session.run([node.output[0]], {"image": batch})[0]
        axes = (0, 2, 3) if values.ndim == 4 else (0,)
        mean, std = values.mean(axis=axes), values.std(axis=axes) + 1e-6
        w = numpy_helper.to_array(weights[node.input[1]])
        b = numpy_helper.to_array(weights[node.input[2]])
        shape = (-1,) + (1,) * (w.ndim - 1)
        weights[node.input[1]].CopyFrom(numpy_helper.from_array((w / std.reshape(shape)).astype(np.float32),
                                                                node.input[1]))
        weights[node.input[2]].CopyFrom(numpy_helper.from_array(((b - mean) / std).astype(np.float32),
                                                                node.input[2]))


def images(count: int, resolution: int = 96, seed: int = 1) -> np.ndarray:
    """Smooth random images in [0, 1] (blurred noise, closer to photos than white noise)."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((count, 3, resolution // 8, resolution // 8)).astype(np.float32)
    return np.repeat(np.repeat(coarse, 8, axis=2), 8, axis=3)


# The bare-script side of the overhead and memory benchmarks: an ONNX Runtime session made the way
# edgecheck's backend makes it (edgecheck/vendors/onnxruntime/backend.py), and the feed; a script defines
# `model`, `feed_path` and `threads` first.
BARE_SESSION = '''\
options = ort.SessionOptions()
options.intra_op_num_threads = int(threads)
options.inter_op_num_threads = 1
options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
options.log_severity_level = 3
sess = ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
with np.load(feed_path) as data:
    feed = {name: data[name] for name in data.files}
'''
