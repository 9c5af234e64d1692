"""Load a model file safely and read the facts later stages need (signature, size, parameters).

A truncated, malformed or hostile file becomes a `ModelError` naming the file and the cause;
external data may only live beside the model, never elsewhere on disk.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from edgecheck.errors import ModelError

Dim = int | str | None  # a fixed size, a symbolic name, or unknown
# metadata key under which a recipe's artifact keeps onnx.checker's complaint about it, once ONNX
# Runtime (the runtime that runs it) has loaded it anyway (edgecheck.compress.verify)
RUNTIME_LOADS_KEY = "edgecheck.onnxruntime_loads_despite_checker"


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str  # numpy name: float32, int64, ...
    shape: tuple[Dim, ...]
    quantized: bool = False  # a .tflite integer tensor with a scale: it is fed and read as real values

    @property
    def dynamic_dims(self) -> list[int]:
        return [i for i, d in enumerate(self.shape) if not isinstance(d, int) or d < 1]

    def shape_text(self) -> str:
        return "[" + ", ".join("?" if d is None else str(d) for d in self.shape) + "]"


@dataclass(frozen=True)
class ModelInfo:
    """What edgecheck knows about one model file without running it."""

    path: Path
    format: str
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    size_bytes: int  # the file plus its external data
    parameters: int
    opsets: dict[str, int]
    op_counts: dict[str, int]
    sha256: str

    def input(self, name: str) -> TensorInfo | None:
        return next((t for t in self.inputs if t.name == name), None)

    def output(self, name: str) -> TensorInfo | None:
        return next((t for t in self.outputs if t.name == name), None)


def file_sha256(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


LFS_POINTER = b"version https://git-lfs.github.com/spec/"


def refuse_lfs_pointer(path: Path) -> None:
    """A file checked out without Git LFS is a small text pointer, not the file: say that, not 'truncated'."""
    try:
        with path.open("rb") as handle:
            head = handle.read(len(LFS_POINTER))
    except OSError:
        return
    if head == LFS_POINTER:
        raise ModelError(path, "a Git LFS pointer, not the model: fetch the file with `git lfs pull` (in GitHub "
                         "Actions, actions/checkout with `lfs: true`)")


def load_onnx(path: Path | str):  # -> onnx.ModelProto (onnx is imported lazily)
    """Parse and check an ONNX file, with external data confined to the model's folder."""
    import onnx
    from google.protobuf.message import DecodeError

    path = Path(path)
    if not path.is_file():
        raise ModelError(path, "file not found")
    if path.stat().st_size == 0:
        raise ModelError(path, "the file is empty")
    refuse_lfs_pointer(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, OSError) as exc:
        raise ModelError(path, f"not a valid ONNX model (truncated or not ONNX?): {exc}") from None
    if not model.HasField("graph") or not model.opset_import:
        raise ModelError(path, "not a valid ONNX model: it has no graph or no opset (truncated or not ONNX?)")
    _check_external_data(model, path)
    try:
        onnx.checker.check_model(model if not _external_files(model) else str(path))
    except (onnx.checker.ValidationError, ValueError, RuntimeError) as exc:
        complaint = one_line(str(exc)) or type(exc).__name__
        accepted = {p.value for p in model.metadata_props if p.key == RUNTIME_LOADS_KEY}
        if complaint not in accepted:  # a recipe's artifact ONNX Runtime loaded despite this very complaint passes
            raise ModelError(path, f"ONNX checker rejected the model: {complaint}") from None
    return model


def one_line(text: str, limit: int = 2000) -> str:
    """A tool's message on one line, whole: the checker puts the node's name on the line after its
    sentence ("... input 'r' of node: / name: mm OpType: MatMul / is not output of any previous
    nodes."), so a first line alone would cut the name off. Past `limit`, its middle goes."""
    import re

    flat = re.sub(r"\s+", " ", text).strip()
    if len(flat) <= limit:
        return flat
    return flat[: limit * 2 // 3] + " [...] " + flat[-(limit // 3):]


def _external_files(model) -> list[str]:
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    files = []
    for tensor in model.graph.initializer:
        if uses_external_data(tensor):
            files.append(ExternalDataInfo(tensor).location)
    return files


def external_data_files(path: Path | str) -> list[Path]:
    """The external data files an ONNX model names (resolved, inside its folder: checked on load)."""
    path = Path(path)
    model = load_onnx(path)
    return sorted({(path.parent / location).resolve() for location in _external_files(model)})


def _check_external_data(model, path: Path) -> None:
    folder = path.parent.resolve()
    for location in _external_files(model):
        target = (folder / location).resolve()
        if not target.is_relative_to(folder) or Path(location).is_absolute():
            raise ModelError(path, f"external data {location!r} points outside the model's folder; refused")
        if not target.is_file():
            raise ModelError(path, f"external data file {location!r} is missing")


def inspect_onnx(path: Path | str) -> ModelInfo:
    """Facts of an ONNX file: inputs (initializers excluded), outputs, size, parameters, ops."""
    from onnx import helper

    path = Path(path)
    model = load_onnx(path)
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    external = sorted({(path.parent / loc).resolve() for loc in _external_files(model)})
    parameters = graph_parameters(graph)
    op_counts: dict[str, int] = {}
    for node in _all_nodes(graph):
        key = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
        op_counts[key] = op_counts.get(key, 0) + 1
    return ModelInfo(
        path=path,
        format="onnx",
        inputs=tuple(_tensor_info(v, helper) for v in graph.input if v.name not in initializers),
        outputs=tuple(_tensor_info(v, helper) for v in graph.output),
        size_bytes=path.stat().st_size + sum(p.stat().st_size for p in external),
        parameters=parameters,
        opsets={(o.domain or "ai.onnx"): o.version for o in model.opset_import},
        op_counts=dict(sorted(op_counts.items())),
        sha256=file_sha256([path, *external]),
    )


def graph_parameters(graph) -> int:
    """Elements of a graph's constant tensors: its initializers and the tensors its Constant nodes
    hold (Paddle exports keep weights there), in subgraphs too."""
    import math

    from onnx import helper

    total = sum(math.prod(t.dims) for t in graph.initializer)
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            for attribute in node.attribute:
                if attribute.name == "value":
                    total += math.prod(attribute.t.dims)
                elif attribute.name == "sparse_value":
                    total += math.prod(attribute.sparse_tensor.dims)
                elif attribute.name in ("value_floats", "value_ints", "value_strings"):
                    total += len(helper.get_attribute_value(attribute))
                elif attribute.name in ("value_float", "value_int", "value_string"):
                    total += 1
        for attribute in node.attribute:
            for sub in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
                total += graph_parameters(sub)
    return total


def _all_nodes(graph):
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            if attribute.g.node:
                yield from _all_nodes(attribute.g)
            for sub in attribute.graphs:
                yield from _all_nodes(sub)


def _tensor_info(value, helper) -> TensorInfo:
    kind = value.type.WhichOneof("value")
    if kind != "tensor_type":
        return TensorInfo(value.name, f"<{kind}>", ())
    tensor = value.type.tensor_type
    try:
        dtype = helper.tensor_dtype_to_np_dtype(tensor.elem_type).name
    except (KeyError, TypeError, ValueError):
        dtype = f"<onnx type {tensor.elem_type}>"
    shape: list[Dim] = []
    if tensor.HasField("shape"):
        for dim in tensor.shape.dim:
            if dim.HasField("dim_value"):
                shape.append(int(dim.dim_value))
            else:
                shape.append(dim.dim_param or None)
    return TensorInfo(value.name, dtype, tuple(shape))
