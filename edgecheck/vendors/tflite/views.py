"""What `edgecheck inspect` and `fit` print for a .tflite file (its judge hands them to the command):
the signature, parameters and operators, and each device's operator compatibility."""

from __future__ import annotations

from edgecheck.analysis.optable import OpTable
from edgecheck.analysis.static import table_for
from edgecheck.devices import DeviceProfile
from edgecheck.errors import CannotJudge
from edgecheck.analysis.views import DeviceFit
from edgecheck.textable import format_table
from edgecheck.vendors.tflite.model import TfliteModel
from edgecheck.vendors.tflite.ops import TfliteGraph, classify_tflite


def _mib(value: float) -> str:
    return f"{value / 2**20:.3g} MiB"


def tflite_inspect_lines(model: TfliteModel) -> list[str]:
    """A .tflite file's signature, parameters and operators, as `inspect` prints an ONNX model's."""
    lines = [f"model: {model.path} (TFLite schema {model.version}, {model.subgraphs} subgraphs)"]
    if model.signature:
        lines.append(f"  signature: {model.signature} (inputs and outputs named by its keys)")
    for kind, tensors in (("input", model.inputs), ("output", model.outputs)):
        for tensor in tensors:
            shape = "[" + ", ".join("?" if d is None else str(d) for d in tensor.shape) + "]"
            quant = f" (scale {tensor.scale:g}, zero point {tensor.zero_point})" if tensor.quantized else ""
            named = f" (tensor {tensor.name!r})" if tensor.name != tensor.key else ""
            lines.append(f"  {kind} {tensor.key}: {tensor.dtype} {shape}{quant}{named}")
    rows = [("parameters", f"{model.parameters:,} ({_mib(model.parameter_bytes)})"),
            ("file size", _mib(model.size_bytes)),
            ("operators", f"{len(model.ops)}: " + ", ".join(f"{k} {v}" for k, v in model.op_counts().items()))]
    lines += format_table(rows, indent="  ")
    lines.append("  note: MACs, bytes moved and the activation peak are computed for ONNX graphs only")
    return lines


def tflite_fit_rows(model: TfliteModel, graph: TfliteGraph, profiles: dict[str, DeviceProfile],
                    tables: dict[str, OpTable]) -> list[DeviceFit]:
    """Each device on a backend that reads .tflite files: operator compatibility and the memory the
    weights leave; no latency estimate (the cost model reads ONNX graphs)."""
    fits = []
    for name, profile in sorted(profiles.items()):
        if profile.is_host:
            continue
        backends = [b for b in profile.backends if b == "tflite"] or list(profile.backends)
        backend = backends[0]
        headroom = 1 - model.parameter_bytes / (profile.memory_gb * 2**30) if profile.memory_gb else None
        try:
            counts = classify_tflite(graph, table_for(tables, profile, backend, model_format="tflite")).counts()
            unsupported, fallback = counts["unsupported"], counts["fallback"]
        except CannotJudge:
            unsupported = fallback = None
        fits.append(DeviceFit(name, backend, None, "none (the cost model reads ONNX graphs; measure the .tflite)",
                              headroom, unsupported, fallback, None))
    return sorted(fits, key=DeviceFit.rank_key)
