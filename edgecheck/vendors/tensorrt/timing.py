"""Timing a built engine with trtexec on the board: TensorRT's own per-inference GPU compute times.

Board side: standard library and numpy only (the worker's `measure` op calls a runner's `native_timing`,
which comes here). Two trtexec runs of the engine:

1. the timed run: `--exportTimes` only, no profiler attached, so nothing but the inferences counts in the
   samples; its log gives the warm-up count, the timed walltime and the warnings;
2. a short profile run after it: `--exportProfile` (20 iterations), for the slowest layers. A profile run
   that fails costs the layer lines only (said in `extra["profile_error"]`), never the timing.

How the plan maps to trtexec's flags (trtexec stops when BOTH its minimums are met):
- warm-up: trtexec warms up by time only: `--warmUp` = max(warmup_s, 0.2 s); the queries it ran are
  reported as `warmup_runs` (fewer than the plan's warmup_runs is said in extra["warmup_note"]);
- `samples` given: `--iterations=samples --duration=0`, the first `samples` timed records kept; with
  `max_seconds` too, the records past max_seconds of summed host latency are dropped (at least one kept),
  so "whichever first" holds as in the Python timing loop;
- only `max_seconds`: `--duration=ceil(max_seconds) --iterations=1`.

The power window (`window`, epoch seconds) is the timed run's "Total Host Walltime" ending when trtexec exited:
its load and warm-up are outside, its short teardown inside. Memory: the engine's device memory (the engine file's
size, i.e. its weights, + the build log's Total Device Persistent Memory + Total Activation Memory: Jetsons share
DRAM between CPU and GPU) is the footprint; the timed trtexec's own ru_maxrss (os.wait4) is the process peak.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from edgecheck.vendors.tensorrt.engine import LAYERS_FILE, LOG_FILE
from edgecheck.vendors.tensorrt.exports import (InferenceTime, TrtexecLog, TrtexecOutputError, read_layer_info, read_log,
                                                read_profile, read_times, without_warmup)
from edgecheck.vendors.tensorrt.trtexec import BuildSettings, ExportPaths, TimingArgs, TrtVersion, timing_command

LATENCY_SOURCE = "TensorRT GPU compute time (trtexec --exportTimes)"
MIN_WARMUP_MS = 200  # trtexec's own default
PROFILE_ITERATIONS = 20
SLOWEST = 5
MAX_TIMES_BYTES = 64 * 1048576  # --exportTimes writes ~330 bytes per inference: ~200,000 inferences
MEMORY_KEYS = ("Total Device Persistent Memory", "Total Activation Memory")
MAX_LAYERS = 2000  # per-layer placements sent back to the host for the ops check; past it the list is cut, and said
MAX_LAYER_NAME = 1000  # characters of one layer's name kept (a long fusion's name names its ONNX nodes)


class TrtexecRunError(RuntimeError):
    """trtexec could not time the engine: says why, with its [E] lines and where its whole log is."""


def run_trtexec(argv: List[str], log_path: Path, timeout_s: float) -> Tuple[int, int]:
    """Run trtexec in its own process group, its output to `log_path`; (exit status, its peak RSS in KiB).
    Past `timeout_s` the whole group is killed and TrtexecRunError raised. os.wait4 gives this child's own
    ru_maxrss (RUSAGE_CHILDREN would give the largest child's ever waited for, the engine build's)."""
    with open(str(log_path), "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    deadline = time.monotonic() + timeout_s
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            break
        if time.monotonic() > deadline:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.wait4(proc.pid, 0)
            proc.returncode = -9
            raise TrtexecRunError(f"trtexec did not finish timing within {timeout_s:g} s (killed with its process "
                                  f"group); its log: {log_path}")
        time.sleep(0.005)
    code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    proc.returncode = code
    return code, int(usage.ru_maxrss)


def _log(path: Path) -> TrtexecLog:
    return read_log(path.read_text(encoding="utf-8", errors="replace"), path.name)


def _failed(what: str, code: int, log_path: Path) -> TrtexecRunError:
    text = log_path.read_text(encoding="utf-8", errors="replace") if log_path.is_file() else ""
    errors = [line for line in text.splitlines() if "[E]" in line] or text.strip().splitlines()[-5:]
    return TrtexecRunError(f"trtexec {what} failed (exit status {code}): {' | '.join(errors)[-2000:]}; its whole "
                           f"log: {log_path}")


def engine_dtype(onnx_dtype: str, version: TrtVersion) -> np.dtype:
    """The dtype trtexec's --loadInputs expects for an ONNX input: its own, except INT64, which TensorRT before
    10 takes as INT32 (its parser casts it down)."""
    dtype = np.dtype(onnx_dtype)
    if dtype == np.int64 and version.major < 10:
        return np.dtype(np.int32)
    if dtype == np.float64:
        return np.dtype(np.float32)  # TensorRT has no FP64 I/O: the parser casts it
    return dtype


def as_engine_input(name: str, array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """`array` as the engine takes it (contiguous, little-endian `dtype`). A narrowing cast that would change a
    value (INT64 ids past INT32's range, before TensorRT 10) is refused naming the input: never wrapped silently."""
    source = np.asarray(array)
    target = np.dtype(dtype)
    if source.dtype.kind in "iu" and target.kind in "iu" and source.size:
        limits = np.iinfo(target)
        low, high = int(source.min()), int(source.max())
        if low < limits.min or high > limits.max:
            raise ValueError("input %s: values %d..%d do not fit %s, the type this TensorRT engine takes for it "
                             "(TensorRT before 10 runs INT64 inputs as INT32): they would wrap" % (name, low, high,
                                                                                                 target.name))
    return np.ascontiguousarray(source, dtype=target.newbyteorder("<"))


def write_inputs(feed: Dict[str, np.ndarray], scratch: Path, version: TrtVersion) -> Dict[str, str]:
    """Each input as the raw little-endian file `--loadInputs` reads, in the type the engine takes (INT64 as INT32
    and FP64 as FP32 before TensorRT 10: trtexec reads the binding's byte count, so the feed's own wider type
    would be read as other values)."""
    paths = {}
    for index, (name, array) in enumerate(sorted(feed.items())):
        path = scratch / f"input-{index}.bin"
        array = np.asarray(array)
        as_engine_input(name, array, engine_dtype(array.dtype.name, version)).tofile(str(path))
        paths[name] = str(path)
    return paths


def _bounded_text(path: Path, limit: Optional[int] = None) -> str:
    """An export's text, refused past `limit` bytes (a long duration-only timing of a fast engine writes millions of
    records, which a Jetson Nano's 4 GB could not hold as Python objects), naming the file and the way out."""
    limit = MAX_TIMES_BYTES if limit is None else limit
    size = path.stat().st_size
    if size > limit:
        raise TrtexecOutputError(f"{path.name}: {size / 1048576:.0f} MiB of per-inference records, more than the "
                                 f"{limit // 1048576} MiB edgecheck reads on a board (about {limit // 330} inferences): "
                                 "bound the timing by a number of runs (latency_ms: {samples: 2000})")
    return path.read_text(encoding="utf-8", errors="replace")


def plan_args(warmup_s: float, samples: Optional[int], max_seconds: Optional[float]) -> TimingArgs:
    """The plan as trtexec's flags (see the module's docstring)."""
    warmup_ms = max(int(math.ceil(warmup_s * 1000)), MIN_WARMUP_MS)
    if samples:
        return TimingArgs(warmup_ms=warmup_ms, iterations=int(samples), duration_s=0, separate_profile_run=False)
    return TimingArgs(warmup_ms=warmup_ms, iterations=1, duration_s=float(max_seconds or 3.0),
                      separate_profile_run=False)


def kept_samples(times: List[InferenceTime], samples: Optional[int], max_seconds: Optional[float]) -> List[InferenceTime]:
    """The first `samples` records, and of those only as many as fit in `max_seconds` of host latency (one at least)."""
    kept = list(times[:samples]) if samples else list(times)
    if samples and max_seconds:
        total, cut = 0.0, 0
        for cut, record in enumerate(kept, start=1):
            total += record.latency_ms / 1000.0
            if total >= max_seconds:
                break
        kept = kept[:max(cut, 1)]
    return kept


def timing_method(argv: List[str], log: TrtexecLog, timed: int, kept: int) -> str:
    """What trtexec was told (its timing flags, read from the command it ran) and what it did: the warm-up queries
    its log counts, the inferences it timed and how many of them are the samples."""
    flags = [a for a in argv if a.split("=")[0] in ("--warmUp", "--duration", "--iterations", "--useSpinWait")]
    warm = (f"{log.warmup_queries} warm-up queries" if log.warmup_queries is not None
            else "warm-up queries not counted in its log")
    return (f"trtexec {' '.join(flags)} (it warms up for --warmUp ms, then times until both --duration s and "
            f"--iterations are reached): {warm}, {timed} inferences timed, {kept} of them kept as the samples")


def _median(values: List[float]) -> Optional[float]:
    return float(np.median(values)) if values else None


def engine_memory(build_log: Optional[TrtexecLog], engine: Optional[Path] = None) -> Dict[str, float]:
    """The engine's device memory (MiB), each part apart and summed: its build log's persistent and activation
    totals, and the engine file itself (its weights, which TensorRT copies to the device when it loads the
    engine and which neither total counts: RESEARCH20 2.1's Nano log has 59 + 21 MiB of totals for a 186 MiB
    engine). {} where the log gives no totals."""
    if build_log is None:
        return {}
    found = {key: build_log.memory_bytes[key] / 1048576 for key in MEMORY_KEYS if key in build_log.memory_bytes}
    if found:
        if engine is not None and engine.is_file():
            found["engine_file_mb"] = engine.stat().st_size / 1048576
        found["engine_device_memory_mb"] = sum(found.values())
    return found


def _layer_facts(engine: Path, settings: BuildSettings, build_log: Optional[TrtexecLog]) -> Tuple[Any, Dict[str, Any]]:
    """Placement and precision per layer from the build's layer info next to the engine: (placements, extra)."""
    from edgecheck.vendors.tensorrt.layers import engine_summary, left_in_higher_precision, placements

    info = engine.parent / LAYERS_FILE
    if not info.is_file():
        return None, {"placement_note": f"no layer info beside the engine ({LAYERS_FILE}: trtexec 8.0 writes none)"}
    layers, _ = read_layer_info(info.read_text(encoding="utf-8", errors="replace"), info.name)
    placed = placements(layers, build_log, settings.dla_core is not None)
    extra: Dict[str, Any] = {"placement": dict(Counter(p.device for p in placed)),
                             "layers": layer_records(placed), "layers_total": len(placed)}
    if settings.precision in ("int8", "fp16"):
        extra["kept_above"] = [f"{p.name} ({p.precision})" for p in left_in_higher_precision(placed, settings.precision)]
    note, mismatch = engine_summary(placed, settings.precision, settings.dla_core)
    if note:
        extra["engine_note"] = note
    if mismatch:
        extra["engine_mismatch"] = mismatch
    return placed, extra


def layer_records(placed: List[Any]) -> List[Dict[str, Optional[str]]]:
    """Each layer's name, device, precision, type and the evidence for its device, for the host's ops check (its
    authority on a board): the first MAX_LAYERS layers, names cut at MAX_LAYER_NAME characters."""
    return [{"name": p.name[:MAX_LAYER_NAME], "device": p.device, "precision": p.precision, "type": p.layer_type,
             "evidence": p.evidence} for p in placed[:MAX_LAYERS]]


def _profile(trtexec: str, version: TrtVersion, settings: BuildSettings, engine: Path, inputs: Optional[Dict[str, str]],
             shapes: Optional[Dict[str, Tuple[int, ...]]], scratch: Path, timeout_s: float, placed: Any) -> Dict[str, Any]:
    """The slowest layers from a short profiled run; {"profile_error": why} where it fails."""
    from edgecheck.vendors.tensorrt.layers import slowest_layers

    exports = ExportPaths(profile=str(scratch / "profile.json"))
    argv = timing_command(trtexec, version, settings, str(engine), exports,
                          TimingArgs(warmup_ms=0, iterations=PROFILE_ITERATIONS, duration_s=0,
                                     separate_profile_run=False), inputs, shapes)
    log_path = scratch / "profile.log"
    try:
        code, _ = run_trtexec(argv, log_path, timeout_s)
        if code != 0:
            raise _failed("profiling the engine", code, log_path)
        path = Path(exports.profile or "")
        if not path.is_file():
            raise TrtexecRunError(f"trtexec wrote no profile ({path.name}); its log: {log_path}")
        profile = read_profile(path.read_text(encoding="utf-8", errors="replace"), path.name)
    except (TrtexecRunError, TrtexecOutputError, OSError) as exc:
        return {"profile_error": str(exc)}
    return {"slowest_layers": [line.strip() for line in slowest_layers(profile, placed, SLOWEST)],
            "profiled_runs": profile.count}


def time_engine(trtexec: str, version: TrtVersion, settings: BuildSettings, engine: Path,
                feed: Optional[Dict[str, np.ndarray]], warmup_runs: int, warmup_s: float, samples: Optional[int],
                max_seconds: Optional[float], scratch: Path, timeout_s: float) -> Dict[str, Any]:
    """Time `engine` with trtexec: {"samples_ns", "memory_kb", "extra", "warmup_runs", "warmup_s", "window",
    "clock", "peak_method", "window_inferences"}; TrtexecRunError / TrtexecOutputError (naming the file and field) where it cannot."""
    engine, scratch = Path(engine), Path(scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    inputs = write_inputs(feed, scratch, version) if feed else None
    shapes = {name: tuple(int(d) for d in array.shape) for name, array in feed.items()} if feed and settings.shapes else None
    args = plan_args(warmup_s, samples, max_seconds)
    times_path, log_path = scratch / "times.json", scratch / "timing.log"
    argv = timing_command(trtexec, version, settings, str(engine), ExportPaths(times=str(times_path)), args, inputs,
                          shapes)
    started = time.monotonic()
    code, peak_kb = run_trtexec(argv, log_path, timeout_s)
    ended = time.time()
    if code != 0:
        raise _failed("timing the engine", code, log_path)
    if not times_path.is_file():
        raise TrtexecRunError(f"trtexec exited 0 but wrote no {times_path.name} (--exportTimes); its log: {log_path}")
    log = _log(log_path)
    times = without_warmup(read_times(_bounded_text(times_path), times_path.name), log)
    kept = kept_samples(times, samples, max_seconds)
    walltime = log.totals_s.get("Total Host Walltime")
    if walltime is not None and walltime > 0:
        window, window_method = [ended - walltime, ended], "the timed run's Total Host Walltime, ending at trtexec's exit"
    else:
        window = [ended - (time.monotonic() - started), ended]
        window_method = "the whole trtexec run (its log gives no Total Host Walltime): load and warm-up included"
    build_log_path = engine.parent / LOG_FILE
    build_log = _log(build_log_path) if build_log_path.is_file() else None
    memory = engine_memory(build_log, engine)
    extra: Dict[str, Any] = {
        "latency_source": LATENCY_SOURCE, "trtexec": trtexec, "tensorrt": str(version),
        "h2d_ms": _median([t.h2d_ms for t in kept]), "d2h_ms": _median([t.d2h_ms for t in kept]),
        "enqueue_ms": _median([t.enqueue_ms for t in kept]), "host_latency_ms": _median([t.latency_ms for t in kept]),
        "trtexec_warnings": list(log.warnings), "window_method": window_method, "timed_records": len(times),
        **memory}
    extra["timing_method"] = timing_method(argv, log, len(times), len(kept))
    if log.warmup_queries is not None and log.warmup_queries < warmup_runs:
        extra["warmup_note"] = (f"trtexec warms up by time: {log.warmup_queries} warm-up queries in {args.warmup_ms} ms, "
                                f"fewer than the {warmup_runs} runs asked (give warmup_s for more)")
    placed, layer_extra = _layer_facts(engine, settings, build_log)
    extra.update(layer_extra)
    extra.update(_profile(trtexec, version, settings, engine, inputs, shapes, scratch,
                          max(timeout_s - (time.monotonic() - started), 30.0), placed))
    engine_kb = int(memory["engine_device_memory_mb"] * 1024) if "engine_device_memory_mb" in memory else None
    return {
        "samples_ns": [int(round(t.compute_ms * 1e6)) for t in kept],
        "memory_kb": {"baseline": 0, "peak": engine_kb if engine_kb is not None else peak_kb, "process_peak": peak_kb},
        "peak_method": ("the engine's device memory: its size (the weights TensorRT loads) + its build log's Total "
                        "Device Persistent Memory + Total Activation Memory (a Jetson's GPU shares the DRAM; the CUDA "
                        "context is not counted); memory.process is the timing trtexec's "
                        "own peak resident memory (ru_maxrss)") if engine_kb is not None else
                       ("the timing trtexec's peak resident memory (ru_maxrss): the build log gives no device memory "
                        "totals"),
        "extra": extra, "warmup_runs": int(log.warmup_queries or 0), "warmup_s": args.warmup_ms / 1000.0,
        "window": window, "clock": "TensorRT's CUDA event timing (trtexec)",
        # every timed inference ran in the power window, the kept samples or not: energy divides by these
        "window_inferences": len(times),
    }
