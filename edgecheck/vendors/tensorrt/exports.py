"""Readers of what trtexec writes: its JSON exports (`--exportTimes`, `--exportProfile`, `--exportLayerInfo`,
`--exportOutput`) and its log. Key names follow trtexec's writer (samples/common/sampleReporting.cpp, in the 8.2-era
and the 8.6/10-era forms); both forms are read.

This module is imported on the board (Python 3.8, standard library and numpy only). A figure read here becomes a
verdict, so nothing is guessed: a truncated file, a record without a key, a negative or non-finite time, an output
whose values disagree with its dimensions is refused with a TrtexecOutputError that names the file and the field or
record. A log without a performance summary reads as `summary={}`: whether that is an error is the caller's call.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np


class TrtexecOutputError(ValueError):
    """What trtexec wrote cannot be read as a result: names the file and the field, record or line."""


@dataclass(frozen=True)
class InferenceTime:
    """One inference of `--exportTimes`, in milliseconds. `end_to_end_ms` only in the 8.2-era form."""

    enqueue_ms: float
    h2d_ms: float
    compute_ms: float
    d2h_ms: float
    latency_ms: float
    end_to_end_ms: Optional[float]


@dataclass(frozen=True)
class LayerTime:
    """One layer of `--exportProfile`: time over all profiled runs, per run, and its share of the total."""

    name: str
    total_ms: float
    average_ms: float
    median_ms: Optional[float]  # newer trtexec only
    percentage: float


@dataclass(frozen=True)
class LayerProfile:
    count: Optional[int]  # profiled runs (the file's leading {"count": N})
    layers: List[LayerTime]


@dataclass(frozen=True)
class EngineLayer:
    """A layer of the built engine. With `--profilingVerbosity=detailed` (detailed=True) it has a type,
    precision, origin and tactic; the default names-only export gives the name alone."""

    name: str
    layer_type: Optional[str]
    precision: Optional[str]  # "FP32", "FP16", "BF16", "INT8", "FP8", "INT32", ... (see tensor_precision)
    origin: Optional[str]  # "QDQ", "REFORMAT", ... as TensorRT says
    tactic: Optional[str]  # TacticName, else TacticValue
    detailed: bool


@dataclass(frozen=True)
class TrtexecLog:
    version: Optional[str]  # dotted, "8.2.1", "10.3.0"
    passed: Optional[bool]  # &&&& PASSED / &&&& FAILED; None when neither line is there (killed, truncated)
    device: Optional[str]
    compute_capability: Optional[str]
    summary: Dict[str, Dict[str, float]]  # "GPU Compute Time" -> {"min", "max", "mean", "median", "p99", ...} in ms
    throughput_qps: Optional[float]
    memory_bytes: Dict[str, int]  # "Total Device Persistent Memory", "Total Activation Memory", ... -> bytes
    gpu_layers: List[str]
    dla_layers: List[str]
    errors: List[str]
    warnings: List[str]
    totals_s: Dict[str, float] = field(default_factory=dict)  # "Total Host Walltime", "Total GPU Compute Time"
    warmup_queries: Optional[int] = None  # "Warmup completed N queries over X ms"
    timed_queries: Optional[int] = None  # "Timing trace has N queries over X s"


# --- JSON helpers --------------------------------------------------------------------------------------------------


def _fail(source: str, what: str) -> TrtexecOutputError:
    return TrtexecOutputError(f"{source}: {what}")


def _load(text: str, source: str, non_finite: bool = False) -> Any:
    if not text.strip():
        raise _fail(source, "empty file (trtexec wrote nothing: did it fail before the export?)")
    try:
        # strict=False: TensorRT 8.6+ layer metadata may hold raw \x1E/\x1F separators inside strings
        return json.loads(text, strict=False, parse_constant=float if non_finite else _no_constant)
    except RecursionError:
        raise _fail(source, "not readable as JSON (nested too deeply)") from None
    except json.JSONDecodeError as exc:
        hint = ""
        if exc.pos >= len(text.rstrip()) - 1 or exc.msg.startswith("Unterminated string"):
            hint = " (the file ends early: truncated, or trtexec was stopped while writing it)"
        elif re.match(r"-?(nan|inf)", text[exc.pos:exc.pos + 4], re.IGNORECASE):
            hint = " (trtexec wrote a non-finite number there)"
        raise _fail(source, f"not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}{hint}") from None
    except ValueError as exc:  # a non-finite constant (NaN, Infinity), an integer of thousands of digits
        raise _fail(source, f"not readable as JSON: {exc}") from None


def _no_constant(name: str) -> float:
    raise ValueError(f"non-finite number {name}")


def _number(record: Dict[str, Any], key: str, source: str, where: str, optional: bool = False) -> Optional[float]:
    if key not in record:
        if optional:
            return None
        raise _fail(source, f"{where} has no {key!r}")
    value = record[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(source, f"{where}: {key!r} is {value!r}, not a number")
    value = float(value)
    if not math.isfinite(value):
        raise _fail(source, f"{where}: {key!r} is {value}, not finite")
    if value < 0:
        raise _fail(source, f"{where}: {key!r} is {value:g}, a negative time")
    return value


def _record(item: Any, source: str, where: str) -> Dict[str, Any]:
    if not isinstance(item, dict):
        raise _fail(source, f"{where} is {type(item).__name__}, not a JSON object")
    return item


# --- --exportTimes ---------------------------------------------------------------------------------------------------


def read_times(text: str, source: str) -> List[InferenceTime]:
    """Per-inference times of `--exportTimes`. Enqueue time is endEnqMs - startEnqMs. The 8.2-era writer also
    exports the warm-up queries (its records carry endToEndMs); `without_warmup` drops them using the log."""
    data = _load(text, source)
    if not isinstance(data, list):
        raise _fail(source, f"the top level is {type(data).__name__}, not a list of inference records")
    if not data:
        raise _fail(source, "holds no inference records")
    times = []
    for index, item in enumerate(data):
        where = f"record {index}"
        record = _record(item, source, where)
        start = _number(record, "startEnqMs", source, where)
        end = _number(record, "endEnqMs", source, where)
        assert start is not None and end is not None
        if end < start:
            raise _fail(source, f"{where}: endEnqMs {end:g} is before startEnqMs {start:g}")
        values = {key: _number(record, key, source, where) for key in ("h2dMs", "computeMs", "d2hMs", "latencyMs")}
        times.append(InferenceTime(end - start, values["h2dMs"], values["computeMs"], values["d2hMs"],  # type: ignore[arg-type]
                                   values["latencyMs"], _number(record, "endToEndMs", source, where, optional=True)))  # type: ignore[arg-type]
    return times


def without_warmup(times: List[InferenceTime], log: TrtexecLog) -> List[InferenceTime]:
    """The timed queries only: where the file holds more records than the log's "Timing trace has N queries"
    (the 8.2-era writer exports warm-ups first), the last N. Where the log does not say N but the records are
    the 8.2-era form (endToEndMs), the log's "Warmup completed M queries" first ones are dropped; else unchanged
    (the newer writer exports no warm-up)."""
    if log.timed_queries is not None:
        if len(times) <= log.timed_queries:
            return list(times)
        return list(times[len(times) - log.timed_queries:])
    old_form = bool(times) and times[0].end_to_end_ms is not None
    if old_form and log.warmup_queries and len(times) > log.warmup_queries:
        return list(times[log.warmup_queries:])
    return list(times)


# --- --exportProfile -------------------------------------------------------------------------------------------------


def read_profile(text: str, source: str) -> LayerProfile:
    """Per-layer times of `--exportProfile`: a leading {"count": N}, then one record per layer with timeMs,
    averageMs, percentage and (newer trtexec) medianMs."""
    data = _load(text, source)
    if not isinstance(data, list):
        raise _fail(source, f"the top level is {type(data).__name__}, not a list of layer records")
    count: Optional[int] = None
    layers = []
    for index, item in enumerate(data):
        where = f"record {index}"
        record = _record(item, source, where)
        if "name" not in record and "count" in record:
            value = record["count"]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise _fail(source, f"{where}: 'count' is {value!r}, not a run count")
            count = value
            continue
        name = record.get("name")
        if not isinstance(name, str):
            raise _fail(source, f"{where} has no layer 'name'" if name is None else f"{where}: 'name' is {name!r}")
        where = f"record {index} ({name[:60]!r})"
        total, average, percentage = (_number(record, key, source, where) for key in ("timeMs", "averageMs", "percentage"))
        layers.append(LayerTime(name, total, average, _number(record, "medianMs", source, where, optional=True),  # type: ignore[arg-type]
                                percentage))  # type: ignore[arg-type]
    return LayerProfile(count, layers)


# --- --exportLayerInfo -----------------------------------------------------------------------------------------------

# The data-type word of a "Format/Datatype" text ("Channel major FP16 format where channel % 8 == 0",
# "Four wide channel vectorized row major Int8 format", TensorRT 10's bare "Half"), as trex reads it
# (NVIDIA/TensorRT tools/experimental/trt-engine-explorer/trex/activations.py).
_DTYPE_WORDS = {
    "FP32": "FP32", "Float": "FP32", "FP16": "FP16", "Half": "FP16", "BF16": "BF16", "BFloat16": "BF16",
    "FP8": "FP8", "FP4": "FP4", "Double": "FP64", "Int8": "INT8", "INT8": "INT8", "Int4": "INT4", "INT4": "INT4",
    "Int16": "INT16", "Int32": "INT32", "INT32": "INT32", "Int64": "INT64", "INT64": "INT64", "UInt8": "UINT8",
    "UInt16": "UINT16", "UInt32": "UINT32", "UInt64": "UINT64", "BOOL": "BOOL", "Bool": "BOOL",
}


def tensor_precision(text: str) -> Optional[str]:
    """The precision named by a "Format/Datatype" text; None for "Unknown format" or a text without one."""
    for word in re.split(r"[^A-Za-z0-9]+", text):
        if word in _DTYPE_WORDS:
            return _DTYPE_WORDS[word]
    return None


def _tensor_precisions(record: Dict[str, Any], key: str) -> List[Optional[str]]:
    tensors = record.get(key)
    if not isinstance(tensors, list):
        return []
    return [tensor_precision(t["Format/Datatype"]) for t in tensors
            if isinstance(t, dict) and isinstance(t.get("Format/Datatype"), str)]


def _layer_precision(record: Dict[str, Any]) -> Optional[str]:
    # The precision a layer computes in is that of its first input, as trex takes it: an INT8 convolution may write
    # FP16 (features.2.conv.2 in trex's mobilenet.qat sample: Int8 in, FP16 out, tactic ...i8816cudnn_int8...).
    # A layer without input formats (a constant) is read by its outputs.
    for key in ("Inputs", "Outputs"):
        found = [p for p in _tensor_precisions(record, key) if p is not None]
        if found:
            return found[0]
    return None


def _optional_text(record: Dict[str, Any], key: str, source: str, where: str) -> Optional[str]:
    value = record.get(key)
    if value is None:
        return None
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise _fail(source, f"{where}: {key!r} is {value!r}, not text")


def read_layer_info(text: str, source: str) -> Tuple[List[EngineLayer], List[str]]:
    """The engine's layers and bindings from `--exportLayerInfo`: objects with `--profilingVerbosity=detailed`,
    names only without it. Older TensorRT writes no Bindings (then [])."""
    data = _load(text, source)
    if not isinstance(data, dict):
        raise _fail(source, f"the top level is {type(data).__name__}, not an object with 'Layers'")
    if "Layers" not in data:
        raise _fail(source, "has no 'Layers'")
    if not isinstance(data["Layers"], list):
        raise _fail(source, "'Layers' is not a list")
    layers = []
    for index, item in enumerate(data["Layers"]):
        where = f"Layers[{index}]"
        if isinstance(item, str):
            layers.append(EngineLayer(item, None, None, None, None, detailed=False))
            continue
        record = _record(item, source, where)
        name = record.get("Name")
        if not isinstance(name, str):
            raise _fail(source, f"{where} has no 'Name'" if name is None else f"{where}: 'Name' is {name!r}")
        tactic = _optional_text(record, "TacticName", source, where) or _optional_text(record, "TacticValue", source, where)
        layers.append(EngineLayer(name, _optional_text(record, "LayerType", source, where), _layer_precision(record),
                                  _optional_text(record, "Origin", source, where), tactic, detailed=True))
    bindings = data.get("Bindings", [])
    if not isinstance(bindings, list) or not all(isinstance(b, str) for b in bindings):
        raise _fail(source, "'Bindings' is not a list of names")
    return layers, list(bindings)


# --- --exportOutput --------------------------------------------------------------------------------------------------

# C++ streams write non-finite floats as nan, -nan, inf, -inf: not JSON, but real outputs (a model may produce NaN).
_VALUES = re.compile(r'("values"\s*:\s*\[)([^\]]*)(\])')
_NON_FINITE = re.compile(r"(?<![\w.])(-?)(nan|inf)(?![\w.])", re.IGNORECASE)


def _json_non_finite(match: "re.Match[str]") -> str:
    body = _NON_FINITE.sub(lambda m: "NaN" if m.group(2).lower() == "nan" else f"{m.group(1)}Infinity", match.group(2))
    return match.group(1) + body + match.group(3)


def _dimensions(value: Any, source: str, where: str) -> Tuple[int, ...]:
    if not isinstance(value, str):
        raise _fail(source, f"{where}: 'dimensions' is {value!r}, not text like '1x3x224x224'")
    text = value.strip()
    if not text:
        return ()
    if not re.fullmatch(r"\d{1,18}(x\d{1,18})*", text):
        raise _fail(source, f"{where}: 'dimensions' {value!r} is not of the form '1x3x224x224'")
    return tuple(int(d) for d in text.split("x"))


def read_output(text: str, source: str) -> Dict[str, "np.ndarray"]:
    """Each output of `--exportOutput` as a float64 array of its dimensions. The export prints 6 significant digits
    and no data type: the caller casts to the binding's type, and tight parity tolerances do not fit these values."""
    data = _load(_VALUES.sub(_json_non_finite, text), source, non_finite=True)
    if not isinstance(data, list):
        raise _fail(source, f"the top level is {type(data).__name__}, not a list of outputs")
    outputs: Dict[str, np.ndarray] = {}
    for index, item in enumerate(data):
        where = f"output {index}"
        record = _record(item, source, where)
        for key in ("name", "dimensions", "values"):
            if key not in record:
                raise _fail(source, f"{where} has no {key!r}")
        name = record["name"]
        if not isinstance(name, str):
            raise _fail(source, f"{where}: 'name' is {name!r}")
        where = f"output {index} ({name!r})"
        if name in outputs:
            raise _fail(source, f"{where} appears twice")
        shape = _dimensions(record["dimensions"], source, where)
        values = record["values"]
        if not isinstance(values, list) or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in values):
            raise _fail(source, f"{where}: 'values' is not a list of numbers")
        expected = math.prod(shape)
        if len(values) != expected:
            raise _fail(source, f"{where}: {len(values)} values for dimensions {record['dimensions']!r} "
                                f"({expected} expected)")
        try:
            outputs[name] = np.asarray(values, dtype=np.float64).reshape(shape)
        except OverflowError:
            raise _fail(source, f"{where}: a value is too large for a float") from None
    return outputs


# --- the log ---------------------------------------------------------------------------------------------------------

_PREFIX = re.compile(r"^\s*(?:\[\d\d/\d\d/\d{4}-\d\d:\d\d:\d\d\]\s*)?")
_LEVEL = re.compile(r"^(?:\[TRT\]\s*)?\[([IWEVF])\]\s*(?:\[TRT\]\s*)?")
_BANNER = re.compile(r"&&&& (RUNNING|PASSED|FAILED)\b(?:.*?\[TensorRT v(\d{1,9})\])?")
_DOTTED = re.compile(r"TensorRT version:\s*(\d+\.\d+(?:\.\d+)*)")
_STAT = re.compile(r"^([A-Za-z][A-Za-z0-9 /\-]*?): (min = .*)$")
_PAIR = re.compile(r"^\s*(min|max|mean|median|percentile\((\d+(?:\.\d+)?)%\))\s*=\s*(\S+)\s*ms\s*$")
_MEMORY = re.compile(r"^((?:Total|Max) [A-Za-z ]*Memory): (\d{1,18})(?: bytes)?\s*$")
_PLACED = re.compile(r"^\[(GpuLayer|DlaLayer)\]\s*(.*?)\s*$")
_TYPE_PREFIX = re.compile(r"^[A-Z][A-Z0-9_]*: ")


def packed_version(digits: str) -> str:
    """TensorRT's packed version as its banner prints it: v8201 -> 8.2.1 (MAJOR*1000 + MINOR*100 + PATCH before 10),
    v100300 -> 10.3.0 (MAJOR*10000 + MINOR*100 + PATCH from 10 on)."""
    n = int(digits)
    if n >= 100000:
        return f"{n // 10000}.{n // 100 % 100}.{n % 100}"
    return f"{n // 1000}.{n // 100 % 10}.{n % 100}"


def _float(text: str, source: str, lineno: int, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _fail(source, f"line {lineno}: {what} {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise _fail(source, f"line {lineno}: {what} is {text}, not a finite non-negative figure")
    return value


def _statistics(metric: str, rest: str, source: str, lineno: int) -> Dict[str, float]:
    stats: Dict[str, float] = {}
    for part in rest.split(","):
        match = _PAIR.match(part)
        if match is None:
            raise _fail(source, f"line {lineno}: {metric!r} has {part.strip()!r}, not 'name = N ms' (truncated?)")
        key = f"p{match.group(2)}" if match.group(2) else match.group(1)
        stats[key] = _float(match.group(3), source, lineno, f"{metric} {key}")
    for key in ("min", "max", "mean", "median"):
        if key not in stats:
            raise _fail(source, f"line {lineno}: {metric!r} has no {key}")
    return stats


def read_log(text: str, source: str) -> TrtexecLog:
    """What a trtexec run printed: version, PASSED/FAILED, the device, the performance summary (the last one, in ms),
    throughput, the builder's memory lines (bytes), the layers it placed on GPU and DLA, errors and warnings.
    A summary line that is there but garbled is refused; a log without a summary reads as summary={}."""
    version = dotted = None
    passed: Optional[bool] = None
    device = capability = None
    summary: Dict[str, Dict[str, float]] = {}
    in_summary = False
    throughput: Optional[float] = None
    memory: Dict[str, int] = {}
    totals: Dict[str, float] = {}
    gpu_layers: List[str] = []
    dla_layers: List[str] = []
    errors: List[str] = []
    warnings: List[str] = []
    warmup = timed = None
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = _PREFIX.sub("", raw, count=1)
        banner = _BANNER.search(line)
        if banner is not None:
            if banner.group(2):
                version = packed_version(banner.group(2))
            if banner.group(1) != "RUNNING":
                passed = banner.group(1) == "PASSED"
            continue
        level_match = _LEVEL.match(line)
        level = level_match.group(1) if level_match else None
        body = line[level_match.end():] if level_match else line.strip()
        body = body.rstrip()
        if level == "E" or level == "F":
            errors.append(body)
        elif level == "W":
            warnings.append(body)
        if body.startswith("=== "):
            in_summary = body.startswith("=== Performance summary ===")
            if in_summary:
                summary = {}
            continue
        found = _DOTTED.search(body)
        if found is not None:
            dotted = found.group(1)
        elif body.startswith("Selected Device: "):
            device = body[len("Selected Device: "):].strip() or None
        elif body.startswith("Compute Capability: "):
            capability = body[len("Compute Capability: "):].strip() or None
        elif body.startswith("Throughput: ") and body.endswith(" qps"):
            throughput = _float(body[len("Throughput: "):-len(" qps")].strip(), source, lineno, "Throughput")
        elif in_summary and _STAT.match(body):
            stat = _STAT.match(body)
            assert stat is not None
            summary[stat.group(1)] = _statistics(stat.group(1), stat.group(2), source, lineno)
        elif in_summary and re.match(r"^Total [A-Za-z ]+: \S+ s$", body):
            label, value = body[:-2].split(": ")
            totals[label] = _float(value, source, lineno, label)
        elif _MEMORY.match(body):
            mem = _MEMORY.match(body)
            assert mem is not None
            memory[mem.group(1)] = int(mem.group(2))
        elif _PLACED.match(body):
            placed = _PLACED.match(body)
            assert placed is not None
            name = _TYPE_PREFIX.sub("", placed.group(2), count=1)  # 8.4+: "[GpuLayer] CONVOLUTION: conv1"
            if name:
                (gpu_layers if placed.group(1) == "GpuLayer" else dla_layers).append(name)
        else:
            queries = re.match(r"^(Warmup completed|Timing trace has) (\d{1,18}) queries over ", body)
            if queries is not None:
                if queries.group(1) == "Warmup completed":
                    warmup = int(queries.group(2))
                else:
                    timed = int(queries.group(2))
    return TrtexecLog(dotted or version, passed, device, capability, summary, throughput, memory, gpu_layers,
                      dla_layers, errors, warnings, totals, warmup, timed)
