"""LiteRT's (TFLite's) builtin operator table, read from the installed ai-edge-litert.

The operator names are the BuiltinOperator enum of the installed TFLite schema
(`ai_edge_litert/schema_py_generated.py`). The enum is not the kernel list: some names (the
StableHLO ops, DELEGATE, CALL, ...) have no kernel in the interpreter's builtin op resolver, and each
kernel covers a range of operator versions. So every name is probed against the installed
interpreter: a one-op model per (operator, version) is loaded (never invoked) and the interpreter
either finds a kernel for it or answers "Didn't find op for builtin opcode". Loading runs no kernel
code for builtin ops; the few custom ops the builtin resolver also registers are probed with an
empty options map up to their Prepare, which refuses the op for its missing inputs. MediaPipe's
custom ops that the XNNPACK delegate runs (LiteRT applies it by default) are probed with a
well-formed model each, with and without the default delegates.

Keys are those of `edgecheck.vendors.tflite.model`: builtin names as is ("CONV_2D"), custom ops as
"custom:<code>" ("custom:TFLite_Detection_PostProcess"). `versions` are OperatorCode versions.
Flex ops (custom codes starting with "Flex") are TensorFlow ops run by the Flex delegate and cannot
be listed one by one: they fall under `unlisted`, and a classifier tells them apart by their code.

The shipped `tables/litert-builtins.yaml` is this output for the release named in it;
`python -m edgecheck.vendors.tflite.table > edgecheck/vendors/tflite/tables/litert-builtins.yaml`
regenerates it.
"""

from __future__ import annotations

import sys


from edgecheck.analysis.optable import OpRule, OpTable, Unlisted, dump_table, merge_ranges
from edgecheck.vendors.tflite.model import CUSTOM_PREFIX

# Operator versions probed per op (TFLite's highest today is in the teens); a kernel still found at
# the last one is written as open-ended.
MAX_VERSION = 64
# Custom ops the builtin op resolver registers besides the builtins (tflite/kernels/register.cc).
RESOLVER_CUSTOM_OPS = ("AudioSpectrogram", "Mfcc", "NumericVerify", "TFLite_Detection_PostProcess")
# Custom ops no op resolver registers but that the XNNPACK delegate, which LiteRT's interpreter applies
# by default, takes (tflite/delegates/xnnpack/xnnpack_delegate.cc: MediaPipe's ops). Probed with a
# well-formed float32 model each, since the delegate claims a node only after checking it.
DELEGATE_CUSTOM_OPS = ("Convolution2DTransposeBias", "MaxPoolingWithArgmax2D", "MaxUnpooling2D")
# Enum entries that are no operator: CUSTOM marks a custom op (keyed by its code instead), and
# PLACEHOLDER_FOR_GREATER_OP_CODES the switch to the wide builtin_code field.
NOT_OPERATORS = ("CUSTOM", "PLACEHOLDER_FOR_GREATER_OP_CODES")
_NOT_FOUND = ("Didn't find op for builtin opcode", "Encountered unresolved custom op")


def _probe_model(schema, code: int, version: int, custom: str | None = None) -> bytes:
    """A model with one operator of that code and version, no inputs, and (custom ops) empty options."""
    import flatbuffers
    from flatbuffers import flexbuffers

    opcode = schema.OperatorCodeT()
    opcode.builtinCode = code
    opcode.deprecatedBuiltinCode = min(code, schema.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES)
    opcode.customCode = custom
    opcode.version = version
    op = schema.OperatorT()
    op.opcodeIndex = 0
    op.inputs, op.outputs = [], []
    if custom is not None:
        op.customOptions = list(flexbuffers.Dumps({}))
    tensor = schema.TensorT()
    tensor.name, tensor.shape, tensor.type = "probe", [1], schema.TensorType.FLOAT32
    subgraph = schema.SubGraphT()
    subgraph.tensors, subgraph.inputs, subgraph.outputs, subgraph.operators = [tensor], [0], [0], [op]
    model = schema.ModelT()
    model.version, model.operatorCodes, model.subgraphs, model.buffers = 3, [opcode], [subgraph], [schema.BufferT()]
    builder = flatbuffers.Builder(256)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _has_kernel(schema, code: int, version: int, custom: str | None = None) -> bool:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    content = _probe_model(schema, code, version, custom)
    try:
        interpreter = Interpreter(model_content=content,
                                  experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        if custom is not None:
            interpreter.allocate_tensors()  # custom ops are looked up when the graph is prepared
    except (RuntimeError, ValueError) as exc:
        return not str(exc).startswith(_NOT_FOUND) and "unresolved custom op" not in str(exc)
    return True  # loaded: a builtin was found (its options, absent here, are read only later)


def _delegate_probe_model(schema, custom: str, version: int) -> bytes:
    """A float32 NHWC model with one `custom` op, as MediaPipe writes them (options: the TfLite params struct)."""
    import struct

    import flatbuffers
    import numpy as np

    def tensor(name: str, shape: list[int], buffer: int = 0):
        t = schema.TensorT()
        t.name, t.shape, t.type, t.buffer = name, shape, schema.TensorType.FLOAT32, buffer
        return t

    buffers = [schema.BufferT()]
    if custom == "Convolution2DTransposeBias":  # padding SAME, stride 2x2: [1,4,4,2] -> [1,8,8,3]
        for array in (np.zeros((3, 3, 3, 2), np.float32), np.zeros(3, np.float32)):
            buffer = schema.BufferT()
            buffer.data = np.frombuffer(array.tobytes(), np.uint8)
            buffers.append(buffer)
        tensors = [tensor("x", [1, 4, 4, 2]), tensor("w", [3, 3, 3, 2], 1), tensor("b", [3], 2),
                   tensor("y", [1, 8, 8, 3])]
        ins, outs, inputs, options = [0, 1, 2], [3], [0], struct.pack("<3i", 1, 2, 2)
    else:  # 2x2 pooling, stride 2, padding VALID: [1,4,4,2] <-> [1,2,2,2] values and indices
        options = struct.pack("<10i", 2, 2, 2, 2, 2, 0, 0, 0, 0, 0)
        if custom == "MaxPoolingWithArgmax2D":
            tensors = [tensor("x", [1, 4, 4, 2]), tensor("v", [1, 2, 2, 2]), tensor("i", [1, 2, 2, 2])]
            ins, outs, inputs = [0], [1, 2], [0]
        else:
            tensors = [tensor("v", [1, 2, 2, 2]), tensor("i", [1, 2, 2, 2]), tensor("y", [1, 4, 4, 2])]
            ins, outs, inputs = [0, 1], [2], [0, 1]
    opcode = schema.OperatorCodeT()
    opcode.builtinCode = opcode.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    opcode.customCode, opcode.version = custom, version
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs, op.customOptions = 0, ins, outs, list(options)
    subgraph = schema.SubGraphT()
    subgraph.tensors, subgraph.inputs, subgraph.outputs, subgraph.operators = tensors, inputs, outs, [op]
    model = schema.ModelT()
    model.version, model.operatorCodes, model.subgraphs, model.buffers = 3, [opcode], [subgraph], buffers
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _runs_on_default_delegate(schema, custom: str, version: int) -> bool:
    """Whether the interpreter, as LiteRT makes it by default (its default delegates applied), prepares
    the op, while its builtin resolver alone refuses it: the delegate runs it."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    content = _delegate_probe_model(schema, custom, version)
    verdicts = []
    for resolver in (OpResolverType.BUILTIN, OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES):
        try:
            Interpreter(model_content=content, experimental_op_resolver_type=resolver).allocate_tensors()
            verdicts.append(True)
        except (RuntimeError, ValueError):
            verdicts.append(False)
    return verdicts == [True, False]


def _probe(schema, code: int, custom: str | None = None) -> list[tuple[int, int | None]]:
    return merge_ranges([(v, v) for v in range(1, MAX_VERSION + 1) if _has_kernel(schema, code, v, custom)], MAX_VERSION)


def table_from_litert() -> OpTable:
    """The builtin operators of the installed ai-edge-litert, with the versions its interpreter has kernels for."""
    import ai_edge_litert
    from ai_edge_litert import schema_py_generated as schema

    from edgecheck.vendors.tflite.model import builtin_operator_names

    version = f"ai-edge-litert {ai_edge_litert.__version__}"
    ops: dict[str, OpRule] = {}
    for code, name in sorted(builtin_operator_names().items(), key=lambda item: item[1]):
        if name in NOT_OPERATORS:
            continue
        versions = _probe(schema, code)
        if versions:
            ops[name] = OpRule(versions=versions)
        else:
            ops[name] = OpRule(status="unsupported", note=(
                f"in the TFLite schema, but the {version} interpreter's builtin op resolver has no kernel for "
                "it: loading the model fails (\"Didn't find op for builtin opcode\")"))
    for custom in RESOLVER_CUSTOM_OPS:
        versions = _probe(schema, schema.BuiltinOperator.CUSTOM, custom)
        if versions:
            ops[f"{CUSTOM_PREFIX}{custom}"] = OpRule(versions=versions, note=(
                "a custom op the builtin op resolver registers: runs without registering it"))
    for custom in DELEGATE_CUSTOM_OPS:
        versions = merge_ranges([(v, v) for v in range(1, MAX_VERSION + 1)
                                 if _runs_on_default_delegate(schema, custom, v)], MAX_VERSION)
        if versions:
            ops[f"{CUSTOM_PREFIX}{custom}"] = OpRule(versions=versions, note=(
                "a MediaPipe custom op that the XNNPACK delegate runs, which LiteRT's interpreter applies by default "
                "(float32, 4-D, static shapes): no op resolver registers it, so a runtime built without the "
                "default delegates refuses it (\"Encountered unresolved custom op\")"))
    return OpTable(
        name="litert-builtins", title="LiteRT builtin operators", backend="tflite", format="tflite", version=version,
        source="the BuiltinOperator enum of the installed ai-edge-litert's TFLite schema (schema_py_generated.py); "
               "kernels and versions from its interpreter's builtin op resolver, probed op by op",
        url="https://github.com/google-ai-edge/LiteRT/blob/main/tflite/converter/schema/schema.fbs",
        unlisted=Unlisted(status="unsupported", reason="not a builtin operator of this LiteRT: a custom op needs "
                          "the runtime to register it"),
        ops=ops)


def dump(table: OpTable) -> str:
    return dump_table(table, ("# Generated by `python -m edgecheck.vendors.tflite.table` from the installed ai-edge-litert;\n"
              "# edit nothing by hand. Keys: TFLite builtin operator names, custom ops as custom:<code>; versions:\n"
              "# OperatorCode versions the interpreter has a kernel for. Flex ops (custom:Flex...) are TensorFlow\n"
              "# ops run by the Flex delegate: not listable one by one, they are unlisted here.\n"))


if __name__ == "__main__":
    sys.stdout.write(dump(table_from_litert()))
