"""Where each layer of a built TensorRT engine runs and in what precision, read from what trtexec exported.

What is documented and what is inferred:
- Documented by TensorRT's own output: the build log's `[DlaLayer]` / `[GpuLayer]` lists under "Layers Running on
  DLA/GPU" (printed at build time on 8.x, in verbose logs later), and the detailed layer info's "Format/Datatype" of
  each tensor (`--profilingVerbosity=detailed --exportLayerInfo`).
- Inferred here: with a DLA core requested, a layer in the GPU list is a fallback from DLA (the build asked for DLA
  and TensorRT put it on the GPU). Without the log's lists, a layer named `{ForeignNode[first...last]}` is taken
  for a DLA subgraph, unless its type says Myelin (TensorRT's GPU compiler names its subgraphs the same way); every
  other layer is a fallback. How a DLA subgraph's LayerType reads in detailed layer info was not found in NVIDIA's
  material, so the name is the evidence. TensorRT's own data movement (reformat copy nodes, "X to nvm" / "X from nvm"
  / "X copy finish" around DLA subgraphs) runs on the GPU and is not counted as a fallback of a model layer.
- A layer's precision is that of its first input, as NVIDIA's engine explorer (trex) takes it (see exports.py).

placements/left_in_higher_precision/slowest_layers run on the board too (standard library only); the cross-check
with the shipped ONNX parser table is host side and imports edgecheck.analysis when called.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

from edgecheck.vendors.tensorrt.exports import EngineLayer, LayerProfile, TrtexecLog

if TYPE_CHECKING:
    from edgecheck.analysis.ops import NodeVerdict, OpsReport
    from edgecheck.analysis.optable import OpTable

GPU = "GPU"
DLA = "DLA"
FALLBACK = "GPU (fallback from DLA)"


@dataclass(frozen=True)
class LayerPlacement:
    name: str
    device: str  # GPU | DLA | GPU (fallback from DLA)
    precision: Optional[str]
    layer_type: Optional[str] = None
    evidence: str = ""  # why this device: the log's list, or the inference from the name


_PLUMBING = re.compile(r"^(Reformatting CopyNode |copied_squeeze_after_)|( to nvm| from nvm| copy finish)$"
                       r"|^\(Unnamed Layer\* \d+\) \[Shuffle\]$")
# layer types that move or reshape data without computing (detailed layer info's LayerType)
_DATA_MOVEMENT = {"reformat", "noop", "shuffle", "constant", "slice", "concatenation", "copy", "identity", "signal",
                  "wait"}
# float precisions from lowest to highest; integer/bool tensors (shapes, indices) are not "higher precision"
_RANK = {"FP4": 0, "INT4": 0, "FP8": 1, "INT8": 1, "FP16": 2, "BF16": 2, "FP32": 3, "FP64": 4}


def is_plumbing(name: str) -> bool:
    """TensorRT's own data movement (reformats, copies to and from DLA memory), by the names it gives them."""
    return _PLUMBING.search(name) is not None


def _dla_by_name(layer: EngineLayer) -> bool:
    kind = (layer.layer_type or "").lower()
    if "dla" in kind:
        return True
    return layer.name.startswith("{ForeignNode[") and "myelin" not in kind


def placements(layers: List[EngineLayer], log: Optional[TrtexecLog], dla_requested: bool) -> List[LayerPlacement]:
    """Each engine layer's device and precision. Without layer info, the log's lists alone (precision unknown)."""
    if not dla_requested:
        if layers:
            return [LayerPlacement(l.name, GPU, l.precision, l.layer_type, "no DLA core requested") for l in layers]
        return [LayerPlacement(n, GPU, None, None, "no DLA core requested") for n in (log.gpu_layers if log else [])]
    dla_names = set(log.dla_layers) if log else set()
    gpu_names = set(log.gpu_layers) if log else set()
    if not layers:
        return ([LayerPlacement(n, DLA, None, None, "the build log lists it under [DlaLayer]") for n in sorted(dla_names)]
                + [LayerPlacement(n, GPU if is_plumbing(n) else FALLBACK, None, None,
                                  "the build log lists it under [GpuLayer]") for n in (log.gpu_layers if log else [])])
    found = []
    for layer in layers:
        if layer.name in dla_names:
            device, evidence = DLA, "the build log lists it under [DlaLayer]"
        elif is_plumbing(layer.name):
            device, evidence = GPU, "TensorRT's own data movement, named so"
        elif layer.name in gpu_names:
            device, evidence = FALLBACK, "the build log lists it under [GpuLayer] though a DLA core was requested"
        elif _dla_by_name(layer):
            device, evidence = DLA, "inferred: named as a DLA subgraph ({ForeignNode[...]}), not in the build log's lists"
        else:
            device, evidence = FALLBACK, "inferred: not a DLA subgraph, so TensorRT ran it on the GPU"
        found.append(LayerPlacement(layer.name, device, layer.precision, layer.layer_type, evidence))
    return found


def left_in_higher_precision(placements: List[LayerPlacement], wanted: str) -> List[LayerPlacement]:
    """Compute layers TensorRT kept in a float precision above `wanted` ("int8", "fp16", "fp32", ...): what a user of
    an INT8 build looks for. Data movement (reformats, shuffles, copies) and integer tensors are left out."""
    if wanted.upper() not in _RANK:
        raise ValueError(f"unknown precision {wanted!r}: one of {', '.join(k.lower() for k in _RANK)}")
    limit = _RANK[wanted.upper()]
    return [p for p in placements
            if p.precision in _RANK and _RANK[p.precision] > limit
            and (p.layer_type or "").lower() not in _DATA_MOVEMENT and not is_plumbing(p.name)]


def compute_layers(placements: List[LayerPlacement]) -> List[LayerPlacement]:
    """The layers that compute: TensorRT's own data movement (reformats, shuffles, copies to and from DLA) left out."""
    return [p for p in placements if (p.layer_type or "").lower() not in _DATA_MOVEMENT and not is_plumbing(p.name)]


def engine_summary(placements: List[LayerPlacement], precision: str, dla_core: Optional[int]) -> Tuple[str, str]:
    """(note, mismatch) for the latency result of an engine: the note counts the layers per device (compute layers
    apart) and names the compute layers kept above the build's precision; the mismatch is why the engine measured is
    not the one asked for ('' where it is): a DLA core asked and no compute layer on it, or an INT8 build with no
    INT8 compute layer (its precision read from detailed layer info; unknown precisions are never taken for one)."""
    if not placements:
        return "", ""
    computing = compute_layers(placements)
    devices: Dict[str, List[int]] = {}
    for placed in placements:
        devices.setdefault(placed.device, [0, 0])[0] += 1
    for placed in computing:
        devices[placed.device][1] += 1
    counts = ", ".join(f"{device} {total} ({compute} computing)" for device, (total, compute) in sorted(devices.items()))
    note = f"engine layers per device: {counts}"
    if dla_core is not None:
        note = f"DLA core {dla_core} asked; " + note
    mismatch = ""
    if precision.upper() in _RANK:
        kept = left_in_higher_precision(placements, precision)
        if kept:
            shown = ", ".join(f"{_short(p.name, 60)} ({p.precision})" for p in kept[:8])
            more = f" and {len(kept) - 8} more" if len(kept) > 8 else ""
            note += (f"; {len(kept)} of {len(computing)} compute layers kept above the build's "
                     f"{precision.upper()}: {shown}{more}")
        elif computing:
            note += f"; no compute layer kept above the build's {precision.upper()}"
    if dla_core is not None and computing and not any(p.device == DLA for p in computing):
        mismatch = (f"DLA core {dla_core} was asked for and all {len(computing)} compute layers fell back to the GPU: "
                    "the engine measured is not the one asked for (a DLA engine)")
    known = [p for p in computing if p.precision]
    if precision.lower() == "int8" and known and not any(p.precision == "INT8" for p in known):
        found = sorted({str(p.precision) for p in known})
        reason = (f"an INT8 build with no INT8 compute layer (all {len(known)} run in {'/'.join(found)}): the engine "
                  "measured is not the one asked for (an INT8 engine); check the graph's Q/DQ nodes")
        mismatch = f"{mismatch}; {reason}" if mismatch else reason
    return note, mismatch


def _short(name: str, width: int = 90) -> str:
    return name if len(name) <= width else name[:width // 2 - 1] + " … " + name[-(width // 2 - 2):]


def slowest_layers(profile: LayerProfile, placements: Optional[List[LayerPlacement]], count: int = 5) -> List[str]:
    """Lines for a latency failure: the `count` layers with the largest share of the time, per inference, with where
    they ran and in what precision where known: "  38.1 %  0.910 ms  conv1 + relu  [GPU, FP16]"."""
    where = {p.name: p for p in placements or []}
    rows = sorted((l for l in profile.layers if l.total_ms > 0), key=lambda l: (l.percentage, l.total_ms),
                  reverse=True)
    lines = []
    for layer in rows[:count]:
        line = f"{layer.percentage:6.1f} %  {layer.average_ms:.3f} ms  {_short(layer.name)}"
        placed = where.get(layer.name)
        if placed is not None:
            line += f"  [{placed.device}, {placed.precision or 'precision unknown'}]"
        lines.append(line)
    return lines


# --- cross-check with the shipped ONNX parser table (host side) ---------------------------------------------------


def onnx_names(layer_name: str) -> List[str]:
    """The ONNX node names a layer's name carries: a fusion "a + b + PWN(c, d)", or a subgraph's first and last
    node "{ForeignNode[a...z]}" (TensorRT names the endpoints only)."""
    foreign = re.fullmatch(r"\{ForeignNode\[(.*)\]\}", layer_name)
    if foreign is not None:
        return [n for n in foreign.group(1).split("...") if n]
    names = []
    for part in re.split(r"\s+\+\s+", layer_name):
        names.extend(n.strip() for n in re.split(r"PWN\(|[(),]\s*|\)", part) if n.strip())
    return names


def placement_report(engine: List[LayerPlacement], table: "OpTable", onnx_verdicts: List["NodeVerdict"],
                     who: str) -> Tuple["OpsReport", List[str]]:
    """The engine's placement as an ops report (a fallback from DLA counts as fallback: the authority for a built
    engine) and where the shipped parser table's verdict on the source graph disagrees: a node the table calls
    unsupported or a fallback that TensorRT built anyway, and the reverse, a node the table calls supported whose
    layer fell back from the DLA asked for to the GPU. `who` names the build ("TensorRT 8.5.2 on jetson-nx")."""
    from edgecheck.analysis.ops import CompiledLayer, NodeVerdict, OpsReport

    by_name: Dict[str, "NodeVerdict"] = {}
    for verdict in onnx_verdicts:
        by_name.setdefault(verdict.node.name, verdict)
    verdicts, mapped, reverse = [], set(), []
    for placed in engine:
        sources = [by_name[n] for n in onnx_names(placed.name) if n in by_name]
        mapped.update(v.node.label for v in sources)
        origin = (", from ONNX " + ", ".join(f"{v.node.op_type} {v.node.name!r}" for v in sources[:3])
                  + (" ..." if len(sources) > 3 else "")) if sources else ""
        status = "fallback" if placed.device == FALLBACK else "supported"
        reason = f"{placed.device} ({placed.precision or 'precision unknown'}; {placed.evidence}{origin})"
        verdicts.append(NodeVerdict(CompiledLayer(placed.name, placed.layer_type or "layer"), status,  # type: ignore[arg-type]
                                    reason, who))
        supported = [v for v in sources if v.status == "supported"]
        if placed.device == FALLBACK and supported:  # the reverse: the table has it, the build did not place it as asked
            reverse.append(", ".join(f"{v.node.label} ({v.node.key})" for v in supported[:3])
                           + f": {table.name} says supported, yet {who} ran its layer {_short(placed.name, 60)!r} on "
                           "the GPU, not on the DLA core asked for (the table judges TensorRT's ONNX parser, not the DLA)")
    disagreements = []
    for verdict in onnx_verdicts:
        if verdict.status in ("unsupported", "fallback"):
            disagreements.append(f"{verdict.node.label} ({verdict.node.key}): {table.name} says {verdict.status} "
                                 f"({verdict.reason}), yet {who} built the engine"
                                 + ("" if verdict.node.label in mapped else " (the node was fused, folded or renamed)"))
    return OpsReport(table, verdicts), disagreements + reverse


def from_records(records: object, field: str = "layers") -> List[LayerPlacement]:
    """The placements a board's timing run sent (timing.layer_records), checked: a garbled record is a ValueError
    naming its index and field, never a layer taken for placed."""
    if not isinstance(records, list):
        raise ValueError(f"{field}: a list of layers expected, not {type(records).__name__}")
    found = []
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise ValueError(f"{field}[{index}]: a mapping expected, not {type(record).__name__}")
        name, device = record.get("name"), record.get("device")
        if not isinstance(name, str) or not name:
            raise ValueError(f"{field}[{index}].name: a layer name expected, not {name!r}")
        if device not in (GPU, DLA, FALLBACK):
            raise ValueError(f"{field}[{index}].device: one of {GPU!r}, {DLA!r}, {FALLBACK!r} expected, not {device!r}")
        extras = {key: record.get(key) for key in ("precision", "type", "evidence")}
        for key, value in extras.items():
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{field}[{index}].{key}: text expected, not {value!r}")
        found.append(LayerPlacement(name, device, extras["precision"], extras["type"], extras["evidence"] or ""))
    return found
