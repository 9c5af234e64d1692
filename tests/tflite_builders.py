"""Small real .tflite files for edgecheck's tests, built with the TFLite schema's object API (no TensorFlow).

`ai_edge_litert` ships `schema_py_generated.py`, the TFLite flatbuffer schema with its object API
(ModelT, SubGraphT, TensorT, ...); a model is packed with `flatbuffers.Builder` and finished with
the "TFL3" file identifier, exactly as the converter writes it. Importing this module needs
ai-edge-litert: test modules call `pytest.importorskip("ai_edge_litert")` first.
"""

from __future__ import annotations

from pathlib import Path

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

FEATURES, CLASSES = 4, 3
# The int8 model's quantization of its input: real = (q - zero_point) * scale.
INT8_SCALE, INT8_ZERO_POINT = 0.05, -3


def fc_weights(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The FULLY_CONNECTED layer's weight [CLASSES, FEATURES] and bias [CLASSES]: y = x @ W.T + b."""
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(CLASSES, FEATURES)).astype(np.float32),
            rng.normal(size=(CLASSES,)).astype(np.float32))


def _buffer(data: np.ndarray | None = None) -> schema.BufferT:
    buffer = schema.BufferT()
    if data is not None:
        buffer.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), dtype=np.uint8)
    return buffer


def _tensor(name: str, shape: list[int], dtype: int = schema.TensorType.FLOAT32, buffer: int = 0, *,
            signature: list[int] | None = None, scale: float | None = None,
            zero_point: int | None = None) -> schema.TensorT:
    tensor = schema.TensorT()
    tensor.name = name
    tensor.shape = list(shape)
    tensor.type = dtype
    tensor.buffer = buffer
    if signature is not None:
        tensor.shapeSignature = list(signature)
    if scale is not None:
        tensor.quantization = schema.QuantizationParametersT()
        tensor.quantization.scale = [scale]
        tensor.quantization.zeroPoint = [zero_point or 0]
    return tensor


def _opcode(builtin: int, custom: str | None = None, version: int = 1) -> schema.OperatorCodeT:
    code = schema.OperatorCodeT()
    code.builtinCode = builtin
    code.deprecatedBuiltinCode = min(builtin, schema.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES)
    code.customCode = custom
    code.version = version
    return code


def _operator(opcode: int, inputs: list[int], outputs: list[int], options=None, options_type: int = 0,
              custom_options: bytes | None = None) -> schema.OperatorT:
    op = schema.OperatorT()
    op.opcodeIndex = opcode
    op.inputs = list(inputs)
    op.outputs = list(outputs)
    if options is not None:
        op.builtinOptionsType = options_type
        op.builtinOptions = options
    if custom_options is not None:
        op.customOptions = list(custom_options)
    return op


def _tensor_map(name: str, index: int) -> schema.TensorMapT:
    entry = schema.TensorMapT()
    entry.name = name
    entry.tensorIndex = index
    return entry


def pack(model: schema.ModelT) -> bytes:
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def build_fc_tflite(path: Path | str, *, signature: bool = True, int8_io: bool = False,
                    custom_op: str | None = None, dynamic_batch: bool = False, seed: int = 0,
                    description: str = "edgecheck test model") -> tuple[np.ndarray, np.ndarray]:
    """A one-layer classifier x[1, 4] -> FULLY_CONNECTED (weights [3, 4], bias [3]) -> y[1, 3]; returns W, b.

    signature      a SignatureDef "serving_default" feeding "x" and giving "y" (tensor names differ:
                   "serving_default_x:0" and "StatefulPartitionedCall:0", as the converter names them)
    int8_io        the input is int8 (scale INT8_SCALE, zero point INT8_ZERO_POINT) and goes through
                   a DEQUANTIZE first: x_int8 -> DEQUANTIZE -> FULLY_CONNECTED -> y
    custom_op      a custom op of that code (e.g. "FlexErf", "MyCustom") applied to the output:
                   ... -> FULLY_CONNECTED -> <custom> -> y (such a model only runs where the op is registered)
    dynamic_batch  the input's and output's shape signature has -1 as batch
    """
    weight, bias = fc_weights(seed)
    batch_sig = -1 if dynamic_batch else 1
    tensors = []
    opcodes = [_opcode(schema.BuiltinOperator.FULLY_CONNECTED)]
    operators = []
    buffers = [_buffer(), _buffer(weight), _buffer(bias)]  # buffer 0: the empty sentinel every model has
    if int8_io:
        opcodes.append(_opcode(schema.BuiltinOperator.DEQUANTIZE))
        tensors.append(_tensor("serving_default_x:0", [1, FEATURES], schema.TensorType.INT8,
                               signature=[batch_sig, FEATURES], scale=INT8_SCALE, zero_point=INT8_ZERO_POINT))
        tensors.append(_tensor("x_float", [1, FEATURES], signature=[batch_sig, FEATURES]))
        operators.append(_operator(1, [0], [1], schema.DequantizeOptionsT(), schema.BuiltinOptions.DequantizeOptions))
        feature_input = 1
    else:
        tensors.append(_tensor("serving_default_x:0", [1, FEATURES], signature=[batch_sig, FEATURES]))
        feature_input = 0
    weight_index = len(tensors)
    tensors.append(_tensor("dense/MatMul", [CLASSES, FEATURES], buffer=1))
    tensors.append(_tensor("dense/BiasAdd/bias", [CLASSES], buffer=2))
    fc_output = len(tensors)
    tensors.append(_tensor("StatefulPartitionedCall:0" if custom_op is None else "dense/BiasAdd",
                           [1, CLASSES], signature=[batch_sig, CLASSES]))
    options = schema.FullyConnectedOptionsT()
    operators.append(_operator(0, [feature_input, weight_index, weight_index + 1], [fc_output],
                               options, schema.BuiltinOptions.FullyConnectedOptions))
    output = fc_output
    if custom_op is not None:
        opcodes.append(_opcode(schema.BuiltinOperator.CUSTOM, custom_op))
        output = len(tensors)
        tensors.append(_tensor("StatefulPartitionedCall:0", [1, CLASSES], signature=[batch_sig, CLASSES]))
        operators.append(_operator(len(opcodes) - 1, [fc_output], [output], custom_options=b""))
    input_index = 0  # the model's input is always tensor 0

    subgraph = schema.SubGraphT()
    subgraph.name = "main"
    subgraph.tensors = tensors
    subgraph.inputs = [input_index]
    subgraph.outputs = [output]
    subgraph.operators = operators

    model = schema.ModelT()
    model.version = 3
    model.description = description
    model.operatorCodes = opcodes
    model.subgraphs = [subgraph]
    model.buffers = buffers
    if signature:
        sig = schema.SignatureDefT()
        sig.signatureKey = "serving_default"
        sig.subgraphIndex = 0
        sig.inputs = [_tensor_map("x", input_index)]
        sig.outputs = [_tensor_map("y", output)]
        model.signatureDefs = [sig]
    Path(path).write_bytes(pack(model))
    return weight, bias


def build_fp16_weights_tflite(path: Path | str, *, seed: int = 0, offset_buffers: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The classifier of `build_fc_tflite` as MediaPipe ships its models: the weight and the bias are
    FLOAT16 constants, each behind a DEQUANTIZE to float32 that the FULLY_CONNECTED reads:
    W_fp16 -> DEQUANTIZE -> W; b_fp16 -> DEQUANTIZE -> b; x[1, 4] -> FULLY_CONNECTED(x, W, b) -> y[1, 3].
    Returns W and b as float32 (rounded through float16). `offset_buffers` stores the weights outside
    the flatbuffer (offset and size, as models over 2 GB are written): edgecheck's rewrite does not
    reach them there."""
    weight, bias = (a.astype(np.float16) for a in fc_weights(seed))
    tensors = [_tensor("serving_default_x:0", [1, FEATURES]),
               _tensor("dense/MatMul_fp16", [CLASSES, FEATURES], schema.TensorType.FLOAT16, buffer=1),
               _tensor("dense/BiasAdd_fp16", [CLASSES], schema.TensorType.FLOAT16, buffer=2),
               _tensor("dense/MatMul", [CLASSES, FEATURES]),
               _tensor("dense/BiasAdd/bias", [CLASSES]),
               _tensor("StatefulPartitionedCall:0", [1, CLASSES])]
    opcodes = [_opcode(schema.BuiltinOperator.DEQUANTIZE), _opcode(schema.BuiltinOperator.FULLY_CONNECTED)]
    dequantize = (schema.DequantizeOptionsT(), schema.BuiltinOptions.DequantizeOptions)
    operators = [_operator(0, [1], [3], *dequantize), _operator(0, [2], [4], *dequantize),
                 _operator(1, [0, 3, 4], [5], schema.FullyConnectedOptionsT(), schema.BuiltinOptions.FullyConnectedOptions)]
    subgraph = schema.SubGraphT()
    subgraph.name = "main"
    subgraph.tensors, subgraph.inputs, subgraph.outputs, subgraph.operators = tensors, [0], [5], operators
    model = schema.ModelT()
    model.version = 3
    model.description = "MediaPipe-style float16 weights"
    model.operatorCodes = opcodes
    model.subgraphs = [subgraph]
    model.buffers = [_buffer(), _buffer(weight), _buffer(bias)]
    sig = schema.SignatureDefT()
    sig.signatureKey = "serving_default"
    sig.subgraphIndex = 0
    sig.inputs = [_tensor_map("x", 0)]
    sig.outputs = [_tensor_map("y", 5)]
    model.signatureDefs = [sig]
    if offset_buffers:  # the data after the flatbuffer, each buffer naming its offset and size
        payloads = [weight.tobytes(), bias.tobytes()]
        for buffer, payload in zip(model.buffers[1:], payloads):
            buffer.data, buffer.offset, buffer.size = None, 1, len(payload)  # placeholders, set below
        packed = pack(model)
        start = (len(packed) + 15) // 16 * 16
        for buffer, payload in zip(model.buffers[1:], payloads):
            buffer.offset, start = start, start + len(payload)
        packed = pack(model)
        first = model.buffers[1].offset
        data = packed.ljust(first, b"\0") + payloads[0] + payloads[1]
        Path(path).write_bytes(data)
    else:
        Path(path).write_bytes(pack(model))
    return weight.astype(np.float32), bias.astype(np.float32)
