"""What the tflite recipes tell onnx2tf, and what they say when it fails.

Real exports (detectors with dynamic height and width, Paddle graphs with Constant-node weights, models
with control flow) rarely convert as exported: projects that ship TFLite from ONNX (ultralytics' exporter
among them) first fix the input shapes and simplify the graph, then pass onnx2tf the options for what
it cannot infer. The recipes do the same: the shapes come from the recipe's `input_shapes`, else from
one calibration sample, and the batch stays as the model has it unless `batch_size` fixes it (or a
dynamic batch fails to convert: then the batch is fixed to 1 and the conversion tried again, and the
artifact's notes say so). Simplification (onnxsim, in onnx2tf's environment) is a step `simplify:
false` turns off. Where onnx2tf still fails, the message names the node, its operator and the option
to try next.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field

from edgecheck.compress import RecipeError, RecipeParams

# onnx2tf options passed through as they are (onnx2tf's own names; see its README)
PASSED = ("keep_shape_absolutely_input_names", "keep_ncw_or_nchw_or_ncdhw_input_names",
          "keep_nwc_or_nhwc_or_ndhwc_input_names", "disable_group_convolution", "enable_rnn_unroll",
          "disable_strict_mode", "output_names_to_interrupt_model_conversion")


class Onnx2tfParams(RecipeParams):
    """The parameters every onnx2tf conversion takes."""

    simplify: bool = Field(True, description="fix the input shapes and simplify the graph (onnxsim) before onnx2tf")
    input_shapes: dict[str, list[int]] | None = Field(
        None, description="shape per input, fixing its dynamic dimensions (default: one calibration sample's shape)")
    batch_size: int | None = Field(None, ge=1, description="fix the batch dimension (onnx2tf's -b); default: the "
                                   "model's, and 1 where a dynamic batch does not convert")
    keep_shape_absolutely_input_names: list[str] | None = Field(
        None, description="inputs onnx2tf must leave in their ONNX shape (no NHWC transpose)")
    keep_ncw_or_nchw_or_ncdhw_input_names: list[str] | None = Field(
        None, description="inputs onnx2tf must keep channels first")
    keep_nwc_or_nhwc_or_ndhwc_input_names: list[str] | None = Field(
        None, description="inputs that already are channels last")
    disable_group_convolution: bool = Field(False, description="split grouped convolutions (onnx2tf -dgc)")
    enable_rnn_unroll: bool = Field(False, description="unroll LSTM/GRU/RNN loops (onnx2tf -eru)")
    disable_strict_mode: bool = Field(False, description="onnx2tf's faster, less exact layout search (-dsm)")
    output_names_to_interrupt_model_conversion: list[str] | None = Field(
        None, description="stop the conversion at these ONNX tensors (they become the outputs)")

    def passed_options(self) -> dict:
        """The onnx2tf keyword arguments set away from their defaults."""
        return {name: getattr(self, name) for name in PASSED if getattr(self, name)}


def _is_dim(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def fixed_shapes(info, calibration: Path | None, params: Onnx2tfParams, batch: int | None,
                 recipe: str) -> dict[str, list[int | None]]:
    """Each input's shape with as many dynamic dimensions fixed as the parameters and data tell (None:
    left dynamic). The batch (a dynamic first dimension) is `batch` or left dynamic; the other dynamic
    dimensions are taken from `input_shapes`, else (where simplifying) from one calibration sample."""
    given = params.input_shapes or {}
    unknown = sorted(set(given) - {t.name for t in info.inputs})
    if unknown:
        raise RecipeError(f"recipe {recipe!r}: input_shapes names {', '.join(map(repr, unknown))}, which the model "
                          f"does not have (its inputs: {', '.join(t.name for t in info.inputs)})")
    # simplify: false converts the model as exported, but for the shapes the parameters give
    samples = _calibration_sample_shapes(info, calibration) if calibration is not None and params.simplify else {}
    shapes: dict[str, list[int | None]] = {}
    for tensor in info.inputs:
        dims: list[int | None] = [d if _is_dim(d) else None for d in tensor.shape]
        if tensor.name in given:
            wanted = given[tensor.name]
            if len(wanted) != len(dims) or any(not _is_dim(w) or (d is not None and d != w)
                                               for w, d in zip(wanted, dims)):
                raise RecipeError(f"recipe {recipe!r}: input_shapes gives {tensor.name!r} {wanted}, which does not fit "
                                  f"the model's {tensor.shape_text()} (a positive size for each dimension)")
            shapes[tensor.name] = list(wanted)
            continue
        sample = samples.get(tensor.name)
        if sample is not None and len(sample) == len(dims) - 1:  # one sample: every axis but the batch
            dims[1:] = [d if d is not None else s for d, s in zip(dims[1:], sample)]
        if dims and dims[0] is None and batch is not None:
            dims[0] = batch
        shapes[tensor.name] = dims
    return shapes


def _calibration_sample_shapes(info, calibration: Path) -> dict[str, tuple[int, ...]]:
    """The shape of one sample per input in the calibration file (its first axis counts the samples)."""
    from edgecheck.data import calibration_feeds

    try:
        feeds = calibration_feeds(info, calibration, 1).feeds
    except Exception:  # the data's own check reports a broken file; here it only cannot tell shapes
        return {}
    return {name: tuple(int(d) for d in array.shape[1:]) for name, array in feeds[0].items()} if feeds else {}


def shapes_text(shapes: dict[str, list[int | None]]) -> str:
    return ", ".join(f"{name} [{', '.join('?' if d is None else str(d) for d in dims)}]" for name, dims in shapes.items())


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(?:Error|Exception)\b:?\s*(.*)$")


def failed_node(log: str) -> tuple[str, str]:
    """The node onnx2tf names in its error (`onnx_op_name: wa/x`, its own prefix dropped) and the first
    exception it raised there ('' where the log names none)."""
    lines = [_ANSI.sub("", line).strip() for line in log.splitlines()]
    node = ""
    for line in lines:
        match = re.search(r"onnx_op_name:\s*(\S+)", line)
        if match:
            node = re.sub(r"^wa/", "/", match.group(1))
    exception = next((line for line in lines if _EXCEPTION.match(line) and not line.startswith(("ERROR", "WARNING"))
                      and ":" in line), "")
    return node, exception[:500]


def shape_failure(exception: str) -> bool:
    """Whether onnx2tf's exception is about shapes (which fixing the batch may settle)."""
    return bool(re.search(r"dimension|shape|broadcast|axes|rank|must be equal|incompatible|size|none", exception, re.I))


def next_option(op_type: str, exception: str, tried_batch_1: bool, simplified: bool) -> str:
    """The option to try next for a node onnx2tf could not convert, by what failed there."""
    text = exception.lower()
    if op_type in ("If", "Loop", "Scan") and not simplified:
        return "simplify: true (the default): it copies the constants the branches read into them"
    if op_type in ("If", "Loop", "Scan"):
        return (f"onnx2tf cannot convert this {op_type} (control flow whose branches read values from outside "
                "them); export the model with the branch chosen (e.g. for one sample rate), or stop the conversion "
                "before it with output_names_to_interrupt_model_conversion")
    if "dimension -1" in text or "must be >= 0" in text or "none" in text:
        return "fix the dynamic dimensions with input_shapes: {<input>: [...]} (or batch_size: 1)"
    if any(word in text for word in ("dimensions must be equal", "axes don't match", "broadcast", "incompatible shapes")):
        if not tried_batch_1:
            return "batch_size: 1, or keep_shape_absolutely_input_names: [<input>] to keep the input's ONNX layout"
        return ("keep_shape_absolutely_input_names: [<input>] to keep the input's ONNX layout, or "
                "disable_strict_mode: true")
    if op_type in ("LSTM", "GRU", "RNN"):
        return "enable_rnn_unroll: true"
    if op_type == "Conv" and "group" in text:
        return "disable_group_convolution: true"
    if not simplified:
        return "simplify: true (the default) with input_shapes for the dynamic dimensions"
    return "onnx2tf's parameter replacement for this node (https://github.com/PINTO0309/onnx2tf#parameter-replacement)"


def op_type_of(model: Path, node: str) -> str:
    """The operator of the node called `node` in the ONNX model ('' where none is)."""
    import onnx

    try:
        graph = onnx.load(str(model), load_external_data=False).graph
    except Exception:
        return ""
    return next((n.op_type for n in graph.node if n.name == node or n.name == node.lstrip("/")), "")


def converter_message(error: str, log: str, status: int) -> str:
    """The converter's own words: its error lines, else the end of its log."""
    lines = [_ANSI.sub("", line).strip() for line in log.splitlines()]
    noise = ("W0000", "I0000", "E0000", "WARNING: All log")  # TensorFlow's start-up chatter (cuDNN, cuBLAS ...)
    lines = [line for line in lines if line and not line.startswith(noise) and "Unable to register" not in line]
    errors = [line for line in lines if "ERROR" in line or "Error" in line]
    said = " | ".join((errors or lines)[-6:])[-1500:]
    return "; ".join(part for part in (error, said or f"exit status {status}, nothing logged") if part)
