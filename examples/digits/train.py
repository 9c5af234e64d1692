"""Train the small digits CNN shipped with edgecheck's example, distil a student MLP, export both.

Uses only numpy and scikit-learn: the 8x8 ``load_digits()`` images bundled with
scikit-learn (nothing is downloaded), a hand-written forward/backward pass
(im2col convolutions, softmax cross-entropy, Adam) and ``onnx.helper`` for export.
The run is deterministic: re-running it with the same numpy/BLAS gives byte-identical files.
The student has its own RNG stream, so adding it left the teacher's files unchanged.

Writes next to this file (or to ``--out-dir``):

* ``digits.onnx``      -- opset 13; input ``input`` [N,1,8,8] float32, output ``logits`` [N,10]
* ``test.npz``         -- held-out split: ``input`` [N,1,8,8] float32 in [0,1], ``labels`` int64
* ``calibration.npz``  -- ``input``: 128 training-split samples for INT8 calibration
* ``student.onnx``     -- Flatten-Gemm-Relu-Gemm MLP distilled from ``digits.onnx``; same I/O

Run with:  python examples/digits/train.py   (needs ``pip install -e .[examples]``)
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from numpy.lib.stride_tricks import sliding_window_view
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits  # installed with scikit-learn

SEED = 0
N_CALIBRATION = 128
MIN_ACCURACY = 0.95
TEMPERATURE, KD_ALPHA = 4.0, 0.7  # distillation: soften both softmaxes; weight of the KL term
STUDENT_EPOCHS = 100
TEACHER_SHAPES = {"conv1": (8, 1, 3, 3), "conv2": (16, 8, 3, 3), "fc1": (32, 256), "fc2": (10, 32)}
STUDENT_SHAPES = {"fc1": (24, 64), "fc2": (10, 24)}  # 1,810 parameters, >5x fewer than the teacher
Params = dict[str, np.ndarray]
Layers = list[tuple[str, str, list[str], dict]]  # (op, name, inputs, attributes) of an ONNX graph


def load_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stratified 70/30 split of the bundled digits, scaled to [0, 1], NCHW float32."""
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.3, stratify=y, random_state=SEED)
    return x_tr, y_tr, x_te, y_te


def init_params(rng: np.random.Generator, shapes: dict[str, tuple[int, ...]]) -> Params:
    """He-initialised weights in ONNX layouts: Conv [out,in,kh,kw], Gemm (transB=1) [out,in]."""
    params: Params = {}
    for name, shape in shapes.items():
        fan_in = int(np.prod(shape[1:]))
        weight = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
        params[f"{name}.weight"] = weight.astype(np.float32)
        params[f"{name}.bias"] = np.zeros(shape[0], dtype=np.float32)
    return params


def im2col(x: np.ndarray, stride: int) -> np.ndarray:
    """3x3 patches of x (padding 1) as rows: [N*Ho*Wo, C*9]."""
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    win = sliding_window_view(xp, (3, 3), axis=(2, 3))[:, :, ::stride, ::stride]  # N,C,Ho,Wo,3,3
    n, c, ho, wo = win.shape[:4]
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(n * ho * wo, c * 9)


def conv_forward(
    x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int
) -> tuple[np.ndarray, np.ndarray]:
    """3x3 convolution with padding 1; also returns the im2col matrix for the backward pass."""
    n, _, h, _ = x.shape
    ho = (h - 1) // stride + 1
    cols = im2col(x, stride)
    out = cols @ w.reshape(w.shape[0], -1).T + b
    return out.reshape(n, ho, ho, -1).transpose(0, 3, 1, 2), cols


def conv_backward(
    dout: np.ndarray, cols: np.ndarray, w: np.ndarray, x_shape: tuple[int, ...], stride: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients w.r.t. input, weight and bias (col2im scatters the patch gradients back)."""
    n, c, h, wd = x_shape
    f, ho, wo = dout.shape[1:]
    d2 = dout.transpose(0, 2, 3, 1).reshape(-1, f)
    dw = (d2.T @ cols).reshape(w.shape)
    dcols = (d2 @ w.reshape(f, -1)).reshape(n, ho, wo, c, 3, 3)
    dxp = np.zeros((n, c, h + 2, wd + 2), dtype=dout.dtype)
    for i in range(3):
        for j in range(3):
            rs, cs = slice(i, i + stride * ho, stride), slice(j, j + stride * wo, stride)
            dxp[:, :, rs, cs] += dcols[..., i, j].transpose(0, 3, 1, 2)
    return dxp[:, :, 1:-1, 1:-1], dw, d2.sum(axis=0)


def forward(p: Params, x: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Logits plus the activations the backward pass needs."""
    z1, cols1 = conv_forward(x, p["conv1.weight"], p["conv1.bias"], stride=1)
    a1 = np.maximum(z1, 0)
    z2, cols2 = conv_forward(a1, p["conv2.weight"], p["conv2.bias"], stride=2)
    a2 = np.maximum(z2, 0)
    flat = a2.reshape(len(x), -1)  # same C,H,W order as ONNX Flatten(axis=1)
    logits, c = head_forward(p, flat)
    return logits, {"cols1": cols1, "a1": a1, "cols2": cols2, "a2": a2, **c}


def head_forward(p: Params, flat: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """fc1-Relu-fc2, shared by teacher (after the convs) and student (on raw pixels)."""
    h = np.maximum(flat @ p["fc1.weight"].T + p["fc1.bias"], 0)
    return h @ p["fc2.weight"].T + p["fc2.bias"], {"flat": flat, "h": h}


def head_backward(p: Params, dlogits: np.ndarray, c: dict) -> tuple[Params, np.ndarray]:
    """Gradients of fc1/fc2 and w.r.t. the head's input, from d(loss)/d(logits)."""
    g: Params = {"fc2.weight": dlogits.T @ c["h"], "fc2.bias": dlogits.sum(axis=0)}
    dh = (dlogits @ p["fc2.weight"]) * (c["h"] > 0)
    g["fc1.weight"], g["fc1.bias"] = dh.T @ c["flat"], dh.sum(axis=0)
    return g, dh @ p["fc1.weight"]


def student_forward(p: Params, x: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The student is just the head on the flattened 8x8 image (ONNX Flatten(axis=1))."""
    return head_forward(p, x.reshape(len(x), -1))


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)


def loss_and_grads(p: Params, x: np.ndarray, y: np.ndarray) -> tuple[float, Params]:
    """Mean softmax cross-entropy and its gradient for every parameter."""
    logits, c = forward(p, x)
    prob = softmax(logits)
    n = len(x)
    loss = float(-np.log(prob[np.arange(n), y] + 1e-12).mean())
    dlogits = prob
    dlogits[np.arange(n), y] -= 1
    dlogits /= n
    g, dflat = head_backward(p, dlogits, c)
    da2 = dflat.reshape(c["a2"].shape) * (c["a2"] > 0)
    da1, g["conv2.weight"], g["conv2.bias"] = conv_backward(
        da2, c["cols2"], p["conv2.weight"], c["a1"].shape, 2
    )
    dz1 = da1 * (c["a1"] > 0)
    _, g["conv1.weight"], g["conv1.bias"] = conv_backward(
        dz1, c["cols1"], p["conv1.weight"], x.shape, 1
    )
    return loss, g


def kd_loss_and_grads(
    p: Params, x: np.ndarray, y: np.ndarray, teacher_logits: np.ndarray
) -> tuple[float, Params]:
    """a*T^2*KL(teacher_T || student_T) + (1-a)*CE(labels); T^2 keeps soft grads in scale."""
    logits, c = student_forward(p, x)
    n, t, a = len(x), TEMPERATURE, KD_ALPHA
    p_teacher, p_soft, prob = softmax(teacher_logits / t), softmax(logits / t), softmax(logits)
    kl = (p_teacher * (np.log(p_teacher + 1e-12) - np.log(p_soft + 1e-12))).sum(axis=1).mean()
    ce = -np.log(prob[np.arange(n), y] + 1e-12).mean()
    onehot = np.eye(prob.shape[1], dtype=prob.dtype)[y]
    dlogits = (a * t * (p_soft - p_teacher) + (1 - a) * (prob - onehot)) / n
    g, _ = head_backward(p, dlogits, c)
    return float(a * t * t * kl + (1 - a) * ce), g


def accuracy(p: Params, x: np.ndarray, y: np.ndarray, fwd: Callable = forward) -> float:
    return float((fwd(p, x)[0].argmax(axis=1) == y).mean())


def train(
    p: Params,
    loss_fn: Callable[..., tuple[float, Params]],
    fwd: Callable,
    data: tuple[np.ndarray, ...],
    epochs: int,
    rng: np.random.Generator,
    batch: int = 32,
    lr: float = 3e-3,
    weight_decay: float = 1e-2,
) -> Params:
    """Mini-batch AdamW, cosine decay; loss_fn gets batches of data = (x, labels, *targets)."""
    n = len(data[0])
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(val) for k, val in p.items()}
    b1, b2, eps, step = 0.9, 0.999, 1e-8, 0
    steps_per_epoch = -(-n // batch)
    for epoch in range(epochs):
        order = rng.permutation(n)
        losses = []
        for s in range(steps_per_epoch):
            idx = order[s * batch : (s + 1) * batch]
            loss, g = loss_fn(p, *(a[idx] for a in data))
            losses.append(loss)
            step += 1
            lr_t = lr * 0.5 * (1 + np.cos(np.pi * step / (epochs * steps_per_epoch)))
            for k in p:
                m[k] = b1 * m[k] + (1 - b1) * g[k]
                v[k] = b2 * v[k] + (1 - b2) * g[k] ** 2
                update = (m[k] / (1 - b1**step)) / (np.sqrt(v[k] / (1 - b2**step)) + eps)
                decay = weight_decay * p[k] if k.endswith(".weight") else 0.0
                p[k] = (p[k] - lr_t * (update + decay)).astype(np.float32)
        if epoch % 10 == 9 or epoch == epochs - 1:
            acc = accuracy(p, data[0], data[1], fwd)
            print(f"epoch {epoch + 1:3d}  loss {np.mean(losses):.4f}  train acc {acc:.4f}")
    return p


_CONV = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}
TEACHER_LAYERS: Layers = [  # each node writes "<name>.out", the last one "logits"
    ("Conv", "conv1", ["input", "conv1.weight", "conv1.bias"], {**_CONV, "strides": [1, 1]}),
    ("Relu", "relu1", ["conv1.out"], {}),
    ("Conv", "conv2", ["relu1.out", "conv2.weight", "conv2.bias"], {**_CONV, "strides": [2, 2]}),
    ("Relu", "relu2", ["conv2.out"], {}),
    ("Flatten", "flatten", ["relu2.out"], {"axis": 1}),
    ("Gemm", "fc1", ["flatten.out", "fc1.weight", "fc1.bias"], {"transB": 1}),
    ("Relu", "relu3", ["fc1.out"], {}),
    ("Gemm", "fc2", ["relu3.out", "fc2.weight", "fc2.bias"], {"transB": 1}),
]
STUDENT_LAYERS: Layers = [
    ("Flatten", "flatten", ["input"], {"axis": 1}),
    ("Gemm", "fc1", ["flatten.out", "fc1.weight", "fc1.bias"], {"transB": 1}),
    ("Relu", "relu1", ["fc1.out"], {}),
    ("Gemm", "fc2", ["relu1.out", "fc2.weight", "fc2.bias"], {"transB": 1}),
]


def export_onnx(p: Params, layers: Layers, graph_name: str, doc: str, path: Path) -> None:
    """Build the graph with onnx.helper; both models share the I/O contract input -> logits."""
    nodes = [
        helper.make_node(
            op, inputs, ["logits" if i == len(layers) - 1 else f"{name}.out"], name=name, **attrs
        )
        for i, (op, name, inputs, attrs) in enumerate(layers)
    ]
    graph = helper.make_graph(
        nodes,
        graph_name,
        inputs=[helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 8, 8])],
        outputs=[helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        initializer=[numpy_helper.from_array(p[k], name=k) for k in sorted(p)],
    )
    opsets = [helper.make_opsetid("", 13)]
    model = helper.make_model(
        graph,
        opset_imports=opsets,
        producer_name="edgecheck-examples",
        doc_string=doc,
    )
    model.ir_version = helper.find_min_ir_version_for(opsets)
    onnx.checker.check_model(model, full_check=True)
    path.write_bytes(model.SerializeToString())


def onnx_accuracy(path: Path, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits = sess.run(["logits"], {"input": x})[0]
    return float((logits.argmax(axis=1) == y).mean()), logits


def distill(teacher: Params, train_set: tuple, test_set: tuple, epochs: int, out: Path) -> None:
    """Train, export and check student.onnx; its own RNG leaves the teacher's files unchanged."""
    (x_tr, y_tr), (x_te, y_te, teacher_logits) = train_set, test_set
    rng = np.random.default_rng(SEED + 1)
    t0 = time.perf_counter()
    with threadpool_limits(limits=1):
        data = (x_tr, y_tr, forward(teacher, x_tr)[0])  # soft targets: numpy teacher pass
        student = init_params(rng, STUDENT_SHAPES)
        student = train(student, kd_loss_and_grads, student_forward, data, epochs, rng)
    n_params = sum(v.size for v in student.values())
    print(f"distilled a {n_params}-parameter student in {time.perf_counter() - t0:.1f} s")
    acc_np = accuracy(student, x_te, y_te, student_forward)

    path = out / "student.onnx"
    doc = f"edgecheck-examples: digits MLP, distilled student of digits.onnx (T={TEMPERATURE:g})."
    export_onnx(student, STUDENT_LAYERS, "digits_student_mlp", doc, path)
    acc_ort, logits = onnx_accuracy(path, x_te, y_te)
    agree = float((logits.argmax(axis=1) == teacher_logits.argmax(axis=1)).mean())
    print(f"student held-out top-1: numpy {acc_np:.4f}  onnxruntime {acc_ort:.4f}", end="  ")
    print(f"agreement with teacher {agree:.4f}")
    assert acc_ort == acc_np, "onnxruntime and numpy disagree on the student"
    assert acc_ort >= MIN_ACCURACY, f"student accuracy {acc_ort:.4f} is below {MIN_ACCURACY}"
    print(f"{'student.onnx':16s} {path.stat().st_size / 1024:6.1f} KiB")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--student-epochs", type=int, default=STUDENT_EPOCHS)
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)

    rng = np.random.default_rng(SEED)
    x_tr, y_tr, x_te, y_te = load_data()
    calib = x_tr[np.sort(rng.choice(len(x_tr), N_CALIBRATION, replace=False))]
    print(f"train {len(x_tr)}  test {len(x_te)}  calibration {len(calib)}")

    t0 = time.perf_counter()
    with threadpool_limits(limits=1):  # BLAS results must not depend on the number of cores
        params = init_params(rng, TEACHER_SHAPES)
        params = train(params, loss_and_grads, forward, (x_tr, y_tr), args.epochs, rng)
    n_params = sum(v.size for v in params.values())
    print(f"trained {n_params} parameters in {time.perf_counter() - t0:.1f} s")
    acc_np = accuracy(params, x_te, y_te)

    onnx_path = args.out_dir / "digits.onnx"
    doc = "edgecheck-examples: 8x8 digits CNN (sklearn load_digits), raw logits."
    export_onnx(params, TEACHER_LAYERS, "digits_cnn", doc, onnx_path)
    np.savez_compressed(args.out_dir / "test.npz", input=x_te, labels=y_te)
    np.savez_compressed(args.out_dir / "calibration.npz", input=calib)

    acc_ort, logits = onnx_accuracy(onnx_path, x_te, y_te)
    max_diff = float(np.abs(logits - forward(params, x_te)[0]).max())
    print(f"held-out top-1: numpy {acc_np:.4f}  onnxruntime {acc_ort:.4f}", end="  ")
    print(f"(max |logit diff| {max_diff:.2e})")
    assert acc_ort == acc_np, "onnxruntime and numpy disagree"
    assert acc_ort >= MIN_ACCURACY, f"accuracy {acc_ort:.4f} is below {MIN_ACCURACY}"
    for name in ("digits.onnx", "test.npz", "calibration.npz"):
        print(f"{name:16s} {(args.out_dir / name).stat().st_size / 1024:6.1f} KiB")
    distill(params, (x_tr, y_tr), (x_te, y_te, logits), args.student_epochs, args.out_dir)


if __name__ == "__main__":
    main()
