"""Read a TFLite (LiteRT) model file without running it: its inputs, outputs, operators and parameters.

The file is parsed by the pure-Python flatbuffer reader of the TFLite schema that ai-edge-litert ships
(`ai_edge_litert.schema_py_generated`); no interpreter is created, so a truncated, malformed or
hostile file can only raise Python exceptions, and each becomes a `ModelError` naming the file and
the cause.

Names. The names a user feeds and reads a model by are its signature's keys when the model has
exactly one signature (what `Interpreter.get_signature_runner()` takes), else the tensor names of
subgraph 0's inputs and outputs. Each I/O tensor keeps both: `key` (the feed name) and `name`/`index`
(the tensor in its subgraph).

Operator keys (`TfliteOp.key`, `ModelInfo.op_counts`, the LiteRT operator table):
  builtin ops   the BuiltinOperator name as is: "CONV_2D", "FULLY_CONNECTED"; an op code newer than
                the installed schema knows is "BUILTIN_<code>"
  custom ops    "custom:<custom code>": "custom:TFLite_Detection_PostProcess", "custom:MyCustom"
  flex ops      custom ops whose code starts with "Flex" (TensorFlow ops run by the Flex delegate):
                also "custom:<code>", e.g. "custom:FlexErf"; `TfliteOp.kind` tells them apart
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from edgecheck.errors import ModelError
from edgecheck.model import ModelInfo, TensorInfo

IDENTIFIER = b"TFL3"
CUSTOM_PREFIX = "custom:"
FLEX_PREFIX = "Flex"
INSTALL_HINT = "reading .tflite files needs ai-edge-litert: pip install 'edgecheck[tflite]'"

OpKind = Literal["builtin", "custom", "flex"]

# TensorType names whose numpy name is not simply the lower-cased enum name.
_DTYPE_EXCEPTIONS = {"STRING": "str", "RESOURCE": "<resource>", "VARIANT": "<variant>"}


@dataclass(frozen=True)
class TfliteTensor:
    """An input or output of the model."""

    name: str  # the tensor's name in the file
    index: int  # its index in its subgraph's tensor list
    dtype: str  # numpy name: float32, int8, uint8, int32, int64, float16, bool, str, ...
    shape: tuple[int | None, ...]  # the shape signature where the file has one (None: dynamic), else the shape
    scale: float | None  # per-tensor quantization (real = (q - zero_point) * scale); None: float or per-channel
    zero_point: int | None
    key: str  # the name it is fed or read by: its signature key, else the tensor name
    subgraph: int = 0

    @property
    def quantized(self) -> bool:
        return self.scale is not None


@dataclass(frozen=True)
class TfliteOp:
    index: int  # its position in its subgraph's operator list (execution order)
    subgraph: int
    name: str  # builtin name ("CONV_2D") or the custom code ("FlexErf", "TFLite_Detection_PostProcess")
    kind: OpKind
    version: int  # the operator code's version: which kernel variant the runtime must have
    outputs: tuple[str, ...]  # output tensor names

    @property
    def key(self) -> str:
        return op_key(self.name, self.kind)


def op_key(name: str, kind: OpKind) -> str:
    """The key operator tables and op counts use: the builtin name, or "custom:<code>" (flex ops too)."""
    return name if kind == "builtin" else f"{CUSTOM_PREFIX}{name}"


@dataclass(frozen=True)
class TfliteModel:
    path: Path
    version: int  # the TFLite schema version the file was written with (3 today)
    description: str
    subgraphs: int
    signature: str | None  # the signature whose keys name the I/O; None unless the model has exactly one
    signatures: tuple[str, ...]  # every signature key in the file
    inputs: tuple[TfliteTensor, ...]
    outputs: tuple[TfliteTensor, ...]
    ops: tuple[TfliteOp, ...]  # every subgraph's, subgraph by subgraph
    parameters: int  # elements of the constant tensors (each constant buffer counted once)
    size_bytes: int
    sha256: str

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(t.key for t in self.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(t.key for t in self.outputs)

    def input(self, key: str) -> TfliteTensor | None:
        return next((t for t in self.inputs if t.key == key), None)

    def output(self, key: str) -> TfliteTensor | None:
        return next((t for t in self.outputs if t.key == key), None)

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for op in self.ops:
            counts[op.key] = counts.get(op.key, 0) + 1
        return dict(sorted(counts.items()))


def _schema(path: Path):
    try:
        from ai_edge_litert import schema_py_generated
    except ImportError:
        raise ModelError(path, INSTALL_HINT) from None
    return schema_py_generated


def _enum_names(enum_class) -> dict[int, str]:
    return {value: name for name, value in vars(enum_class).items()
            if not name.startswith("_") and isinstance(value, int)}


def builtin_operator_names() -> dict[int, str]:
    """Every BuiltinOperator code of the installed schema, with its name (raises ImportError without it)."""
    from ai_edge_litert import schema_py_generated

    return _enum_names(schema_py_generated.BuiltinOperator)


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _ints(values) -> list[int]:
    return [] if values is None else [int(v) for v in values]


def read_tflite(path: Path | str) -> TfliteModel:
    """Parse a .tflite file (never run it); every failure is a `ModelError` naming the file and the cause."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(path, "file not found")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(path, f"cannot read the file: {exc.strerror or exc}") from None
    if not data:
        raise ModelError(path, "the file is empty")
    if len(data) < 8 or data[4:8] != IDENTIFIER:
        raise ModelError(path, "not a TFLite model (no TFL3 identifier: truncated or another format?)")
    schema = _schema(path)
    try:
        model = schema.ModelT.InitFromPackedBuf(data, 0)
    except Exception as exc:  # noqa: BLE001  the reader's errors on a bad file: struct.error, IndexError, ...
        raise ModelError(path, f"cannot read the TFLite flatbuffer (truncated or corrupt?): "
                               f"{type(exc).__name__}: {exc}") from None
    try:
        return _interpret(path, model, schema, data)
    except (IndexError, KeyError, TypeError, ValueError, OverflowError, AttributeError) as exc:
        # Fields of types or values the checks below did not foresee: still the file's fault.
        raise ModelError(path, f"malformed TFLite model: {type(exc).__name__}: {exc}") from None


def _interpret(path: Path, model, schema, data: bytes) -> TfliteModel:
    subgraphs = model.subgraphs or []
    if not subgraphs:
        raise ModelError(path, "the TFLite model has no subgraph (truncated or not a model?)")
    buffers = model.buffers or []
    dtype_names = {code: _DTYPE_EXCEPTIONS.get(name, name.lower()) for code, name in _enum_names(schema.TensorType).items()}
    builtin_names = _enum_names(schema.BuiltinOperator)
    custom_code = schema.BuiltinOperator.CUSTOM

    def tensor_of(s: int, index: int, what: str):
        tensors = subgraphs[s].tensors or []
        if not 0 <= index < len(tensors) or tensors[index] is None:
            raise ModelError(path, f"{what} names tensor {index}, which subgraph {s} does not have "
                                   f"({len(tensors)} tensors): corrupt model")
        return tensors[index]

    def io_tensor(s: int, index: int, key: str | None, what: str) -> TfliteTensor:
        tensor = tensor_of(s, index, what)
        name = _text(tensor.name)
        signature = _ints(tensor.shapeSignature)
        dims = signature if signature else _ints(tensor.shape)
        scale = zero_point = None
        quant = tensor.quantization
        if quant is not None and quant.scale is not None and len(quant.scale) == 1:
            scale = float(quant.scale[0])
            points = _ints(quant.zeroPoint)
            zero_point = points[0] if len(points) == 1 else None
        return TfliteTensor(
            name=name, index=index,
            dtype=dtype_names.get(int(tensor.type), f"<tflite type {int(tensor.type)}>"),
            shape=tuple(None if d < 0 else d for d in dims),
            scale=scale, zero_point=zero_point, key=name if key is None else key, subgraph=s)

    signatures = [sig for sig in (model.signatureDefs or []) if sig is not None]
    keys = tuple(_text(sig.signatureKey) for sig in signatures)
    if len(signatures) == 1:
        sig = signatures[0]
        s = int(sig.subgraphIndex)
        if not 0 <= s < len(subgraphs):
            raise ModelError(path, f"signature {keys[0]!r} names subgraph {s}; the model has {len(subgraphs)}")
        inputs = tuple(io_tensor(s, int(m.tensorIndex), _text(m.name), f"input {_text(m.name)!r} of signature "
                                 f"{keys[0]!r}") for m in sig.inputs or [])
        outputs = tuple(io_tensor(s, int(m.tensorIndex), _text(m.name), f"output {_text(m.name)!r} of signature "
                                  f"{keys[0]!r}") for m in sig.outputs or [])
        signature: str | None = keys[0]
    else:
        main = subgraphs[0]
        inputs = tuple(io_tensor(0, i, None, "an input of subgraph 0") for i in _ints(main.inputs))
        outputs = tuple(io_tensor(0, i, None, "an output of subgraph 0") for i in _ints(main.outputs))
        signature = None

    codes = model.operatorCodes or []
    ops: list[TfliteOp] = []
    for s, subgraph in enumerate(subgraphs):
        for i, op in enumerate(subgraph.operators or []):
            where = f"operator {i} of subgraph {s}"
            if op is None or not 0 <= int(op.opcodeIndex) < len(codes) or codes[op.opcodeIndex] is None:
                raise ModelError(path, f"{where} names an operator code the model does not have: corrupt model")
            code = codes[op.opcodeIndex]
            builtin = max(int(code.deprecatedBuiltinCode), int(code.builtinCode))  # as TFLite's GetBuiltinCode
            if builtin == custom_code:
                name = _text(code.customCode)
                if not name:
                    raise ModelError(path, f"{where} is a custom op without a custom code: corrupt model")
                kind: OpKind = "flex" if name.startswith(FLEX_PREFIX) else "custom"
            else:
                name = builtin_names.get(builtin, f"BUILTIN_{builtin}")
                kind = "builtin"
            outs = tuple(_text(tensor_of(s, o, f"an output of {where}").name) for o in _ints(op.outputs) if o >= 0)
            ops.append(TfliteOp(index=i, subgraph=s, name=name, kind=kind, version=int(code.version), outputs=outs))

    parameters = 0
    counted: set[int] = set()
    for s, subgraph in enumerate(subgraphs):
        for t, tensor in enumerate(subgraph.tensors or []):
            b = int(tensor.buffer) if tensor is not None else 0
            if b <= 0 or b in counted:
                continue  # buffer 0 is the empty sentinel: not a constant
            if b >= len(buffers):
                raise ModelError(path, f"tensor {t} of subgraph {s} names buffer {b}; the model has {len(buffers)}")
            if _holds_data(path, buffers[b], b, len(data)):
                counted.add(b)
                count = 1
                for dim in _ints(tensor.shape):
                    count *= max(dim, 0)
                parameters += count
    return TfliteModel(
        path=path, version=int(model.version), description=_text(model.description), subgraphs=len(subgraphs),
        signature=signature, signatures=keys, inputs=inputs, outputs=outputs, ops=tuple(ops),
        parameters=parameters, size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest())


def _holds_data(path: Path, buffer, index: int, file_size: int) -> bool:
    """Whether a buffer holds a constant: data inside the flatbuffer, or (models over 2 GB) at offset/size
    in the file after it (offset > 1: TFLite's marker for data outside the flatbuffer)."""
    if buffer is None:
        return False
    if buffer.data is not None and len(buffer.data) > 0:
        return True
    offset, size = int(buffer.offset), int(buffer.size)
    if offset > 1 and size > 0:
        if offset + size > file_size:
            raise ModelError(path, f"buffer {index}'s data (bytes {offset}..{offset + size}) lies beyond the end "
                                   f"of the file ({file_size} bytes): truncated?")
        return True
    return False


def inspect_tflite(path: Path | str) -> ModelInfo:
    """Facts of a .tflite file, in the form `inspect_onnx` gives them for ONNX.

    Inputs and outputs are named by their feed names (signature keys, see `read_tflite`); dynamic
    dimensions are None. op_counts keys: builtin names as is, custom and flex ops as "custom:<code>".
    opsets: {"tflite": <schema version>}. sha256: of the file (the bytes that were parsed).
    """
    model = read_tflite(path)
    return ModelInfo(
        path=model.path,
        format="tflite",
        inputs=tuple(TensorInfo(t.key, t.dtype, t.shape) for t in model.inputs),
        outputs=tuple(TensorInfo(t.key, t.dtype, t.shape) for t in model.outputs),
        size_bytes=model.size_bytes,
        parameters=model.parameters,
        opsets={"tflite": model.version},
        op_counts=model.op_counts(),
        sha256=model.sha256,
    )
