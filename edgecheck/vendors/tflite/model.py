"""Read a TFLite (LiteRT) model file without running it: its inputs, outputs, operators and parameters.

The file is read with the pure-Python flatbuffer accessors of the TFLite schema that ai-edge-litert
ships (`ai_edge_litert.schema_py_generated`), field by field: no interpreter is created and nothing
is unpacked whole, so a truncated, malformed or hostile file can only raise Python exceptions, each
a `ModelError` naming the file and the cause. Every entry read is charged against the file's size:
tables that share one offset (a few KB read as 640,000 operators) are refused before they are read.

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
INSTALL_HINT = "reading .tflite files needs ai-edge-litert: pip install 'pytest-edgecheck[tflite]'"

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
class TfliteConstant:
    """A constant tensor (one per buffer that holds data): what a recipe's comparison reads."""

    dtype: str
    shape: tuple[int, ...]
    sha256: str  # of its bytes
    nbytes: int
    behind_dequantize: bool = False  # a float16 constant a DEQUANTIZE op turns into float32


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
    parameter_bytes: int = 0  # bytes of those constant buffers
    constants: tuple[TfliteConstant, ...] = ()

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


class _Budget:
    """What a file's tables may hold: every entry read takes bytes of the file (a 4-byte offset or
    index at least), so entries read, as stored, beyond the file's size mean tables that share one
    offset (a 6 KB file read as 640,000 operators) or corrupt counts: refused before they are read."""

    def __init__(self, path: Path, size: int):
        self.path, self.size, self.spent = path, size, 0

    def take(self, count: int, entry_bytes: int, what: str) -> int:
        self.spent += max(count, 0) * entry_bytes
        if count < 0 or self.spent > self.size:
            raise ModelError(self.path, f"{what} claims {count:,} entries, and with those read so far the model's "
                             f"tables would hold more than its {self.size:,} bytes can ({self.spent:,} bytes of "
                             "entries): its tables share storage or its counts are corrupt (a hostile or broken "
                             "file?); refused")
        return count


def _vector(budget: _Budget, table, field: str, entry_bytes: int, what: str) -> list[int]:
    """An integer vector field, charged to the budget; [] where the field is absent."""
    count = budget.take(int(getattr(table, f"{field}Length")()), entry_bytes, what)
    if not count:
        return []
    return [int(v) for v in getattr(table, f"{field}AsNumpy")()[:count]]


def _string(budget: _Budget, value, what: str) -> str:
    if value is None:
        return ""
    budget.take(len(value), 1, what)
    return _text(value)


@dataclass(frozen=True)
class _Tensor:
    name: str
    shape: list[int]
    signature: list[int]
    type: int
    buffer: int
    scale: list[float]
    zero_point: list[int]


def read_tflite(path: Path | str) -> TfliteModel:
    """Parse a .tflite file (never run it); every failure is a `ModelError` naming the file and the cause.

    The file is read with the schema's accessors, field by field, never unpacked whole: only what
    edgecheck uses is read, and every entry is charged against the file's size (see `_Budget`)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(path, "file not found" if not path.exists() else "not a regular file")
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
        return _interpret(path, schema.Model.GetRootAs(data, 0), schema, data)
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001  the accessors' errors on a bad file: struct.error, IndexError, ...
        raise ModelError(path, f"cannot read the TFLite flatbuffer (truncated or corrupt?): "
                               f"{type(exc).__name__}: {exc}") from None


def _interpret(path: Path, model, schema, data: bytes) -> TfliteModel:
    budget = _Budget(path, len(data))
    subgraph_count = budget.take(model.SubgraphsLength(), 4, "the subgraph list")
    if not subgraph_count:
        raise ModelError(path, "the TFLite model has no subgraph (truncated or not a model?)")
    dtype_names = {code: _DTYPE_EXCEPTIONS.get(name, name.lower())
                   for code, name in _enum_names(schema.TensorType).items()}
    builtin_names = _enum_names(schema.BuiltinOperator)
    custom_code = schema.BuiltinOperator.CUSTOM
    buffer_count = budget.take(model.BuffersLength(), 4, "the buffer list")
    codes = []
    for c in range(budget.take(model.OperatorCodesLength(), 4, "the operator code list")):
        code = model.OperatorCodes(c)
        codes.append((max(int(code.DeprecatedBuiltinCode()), int(code.BuiltinCode())),  # as TFLite's GetBuiltinCode
                      _string(budget, code.CustomCode(), f"operator code {c}'s custom code"), int(code.Version())))

    tensors: list[list[_Tensor]] = []
    graphs = []
    for s in range(subgraph_count):
        graph = model.Subgraphs(s)
        graphs.append((graph, budget.take(graph.OperatorsLength(), 4, f"subgraph {s}'s operator list")))
        own = []
        for t in range(budget.take(graph.TensorsLength(), 4, f"subgraph {s}'s tensor list")):
            tensor = graph.Tensors(t)
            what = f"tensor {t} of subgraph {s}"
            quant = tensor.Quantization()
            own.append(_Tensor(
                _string(budget, tensor.Name(), f"{what}'s name"),
                _vector(budget, tensor, "Shape", 4, f"{what}'s shape"),
                _vector(budget, tensor, "ShapeSignature", 4, f"{what}'s shape signature"), int(tensor.Type()),
                int(tensor.Buffer()),
                [float(v) for v in _vector_float(budget, quant, "Scale", f"{what}'s scales")] if quant else [],
                _vector(budget, quant, "ZeroPoint", 8, f"{what}'s zero points") if quant else []))
        tensors.append(own)

    def tensor_of(s: int, index: int, what: str) -> _Tensor:
        if not 0 <= index < len(tensors[s]):
            raise ModelError(path, f"{what} names tensor {index}, which subgraph {s} does not have "
                                   f"({len(tensors[s])} tensors): corrupt model")
        return tensors[s][index]

    def io_tensor(s: int, index: int, key: str | None, what: str) -> TfliteTensor:
        tensor = tensor_of(s, index, what)
        dims = tensor.signature if tensor.signature else tensor.shape
        scale = zero_point = None
        if len(tensor.scale) == 1:
            scale = tensor.scale[0]
            zero_point = tensor.zero_point[0] if len(tensor.zero_point) == 1 else None
        return TfliteTensor(
            name=tensor.name, index=index, dtype=dtype_names.get(tensor.type, f"<tflite type {tensor.type}>"),
            shape=tuple(None if d < 0 else d for d in dims), scale=scale, zero_point=zero_point,
            key=tensor.name if key is None else key, subgraph=s)

    signatures = []
    for g in range(budget.take(model.SignatureDefsLength(), 4, "the signature list")):
        sig = model.SignatureDefs(g)
        name = _string(budget, sig.SignatureKey(), f"signature {g}'s key")
        maps = []
        for kind, count, get in (("input", sig.InputsLength(), sig.Inputs),
                                 ("output", sig.OutputsLength(), sig.Outputs)):
            entries = [get(i) for i in range(budget.take(count, 4, f"signature {name!r}'s {kind} list"))]
            maps.append([(_string(budget, m.Name(), f"a name in signature {name!r}"), int(m.TensorIndex()))
                         for m in entries])
        signatures.append((name, int(sig.SubgraphIndex()), maps[0], maps[1]))
    keys = tuple(sig[0] for sig in signatures)
    if len(signatures) == 1:
        key, s, sig_inputs, sig_outputs = signatures[0]
        if not 0 <= s < subgraph_count:
            raise ModelError(path, f"signature {key!r} names subgraph {s}; the model has {subgraph_count}")
        inputs = tuple(io_tensor(s, i, n, f"input {n!r} of signature {key!r}") for n, i in sig_inputs)
        outputs = tuple(io_tensor(s, i, n, f"output {n!r} of signature {key!r}") for n, i in sig_outputs)
        signature: str | None = key
    else:
        main = graphs[0][0]
        inputs = tuple(io_tensor(0, i, None, "an input of subgraph 0")
                       for i in _vector(budget, main, "Inputs", 4, "subgraph 0's input list"))
        outputs = tuple(io_tensor(0, i, None, "an output of subgraph 0")
                        for i in _vector(budget, main, "Outputs", 4, "subgraph 0's output list"))
        signature = None

    ops: list[TfliteOp] = []
    dequantize = schema.BuiltinOperator.DEQUANTIZE
    dequantized: set[tuple[int, int]] = set()  # (subgraph, tensor) a DEQUANTIZE reads
    for s, (graph, op_count) in enumerate(graphs):
        for i in range(op_count):
            op = graph.Operators(i)
            where = f"operator {i} of subgraph {s}"
            index = int(op.OpcodeIndex())
            if not 0 <= index < len(codes):
                raise ModelError(path, f"{where} names an operator code the model does not have: corrupt model")
            builtin, custom, version = codes[index]
            if builtin == custom_code:
                if not custom:
                    raise ModelError(path, f"{where} is a custom op without a custom code: corrupt model")
                name = custom
                kind: OpKind = "flex" if name.startswith(FLEX_PREFIX) else "custom"
            else:
                name = builtin_names.get(builtin, f"BUILTIN_{builtin}")
                kind = "builtin"
            outs = tuple(tensor_of(s, o, f"an output of {where}").name
                         for o in _vector(budget, op, "Outputs", 4, f"{where}'s outputs") if o >= 0)
            ops.append(TfliteOp(index=i, subgraph=s, name=name, kind=kind, version=version, outputs=outs))
            if builtin == dequantize:
                dequantized.update((s, t) for t in _vector(budget, op, "Inputs", 4, f"{where}'s inputs")[:1])

    parameters = parameter_bytes = 0
    counted: set[int] = set()
    constants: list[TfliteConstant] = []
    for s, own in enumerate(tensors):
        for t, tensor in enumerate(own):
            b = tensor.buffer
            if b <= 0 or b in counted:
                continue  # buffer 0 is the empty sentinel: not a constant
            if b >= buffer_count:
                raise ModelError(path, f"tensor {t} of subgraph {s} names buffer {b}; the model has {buffer_count}")
            buffer = model.Buffers(b)
            if _holds_data(path, buffer, b, len(data)):
                counted.add(b)
                # its bytes are charged too: buffer entries that all name one stored buffer would have
                # the same bytes copied and hashed once per entry
                budget.take(int(buffer.DataLength()) or int(buffer.Size()), 1, f"buffer {b}'s data")
                content = _buffer_bytes(buffer, data)
                parameter_bytes += len(content)
                dtype = dtype_names.get(tensor.type, f"<tflite type {tensor.type}>")
                constants.append(TfliteConstant(dtype, tuple(tensor.shape), hashlib.sha256(content).hexdigest(),
                                                len(content), dtype == "float16" and (s, t) in dequantized))
                count = 1
                for dim in tensor.shape:
                    count *= max(dim, 0)
                parameters += count
    return TfliteModel(
        path=path, version=int(model.Version()), description=_text(model.Description()), subgraphs=subgraph_count,
        signature=signature, signatures=keys, inputs=inputs, outputs=outputs, ops=tuple(ops),
        parameters=parameters, size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest(),
        parameter_bytes=parameter_bytes, constants=tuple(constants))


def _buffer_bytes(buffer, data: bytes) -> bytes:
    """A constant buffer's bytes: inside the flatbuffer, or (models over 2 GB) at offset/size after it;
    `_holds_data` has already checked that they lie inside the file."""
    if int(buffer.DataLength()):
        return buffer.DataAsNumpy().tobytes()
    offset = int(buffer.Offset())
    return data[offset:offset + int(buffer.Size())]


def _vector_float(budget: _Budget, table, field: str, what: str) -> list[float]:
    count = budget.take(int(getattr(table, f"{field}Length")()), 4, what)
    return [] if not count else [float(v) for v in getattr(table, f"{field}AsNumpy")()[:count]]


def _holds_data(path: Path, buffer, index: int, file_size: int) -> bool:
    """Whether a buffer holds a constant: data inside the flatbuffer, or (models over 2 GB) at offset/size
    in the file after it (offset > 1: TFLite's marker for data outside the flatbuffer)."""
    if buffer is None:
        return False
    length = int(buffer.DataLength())
    if length > file_size:
        raise ModelError(path, f"buffer {index} claims {length:,} bytes of data; the file has {file_size:,}: corrupt")
    if length > 0:
        return True
    offset, size = int(buffer.Offset()), int(buffer.Size())
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
        inputs=tuple(TensorInfo(t.key, t.dtype, t.shape, t.quantized) for t in model.inputs),
        outputs=tuple(TensorInfo(t.key, t.dtype, t.shape, t.quantized) for t in model.outputs),
        size_bytes=model.size_bytes,
        parameters=model.parameters,
        opsets={"tflite": model.version},
        op_counts=model.op_counts(),
        sha256=model.sha256,
    )
