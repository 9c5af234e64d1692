"""The measure op for a runner that times itself (`native_timing`: trtexec's per-inference GPU compute times).

Its samples, its memory figures (the runtime's own process, not this worker's) and its `extra` (what the runtime
reports beside: transfer times, slowest layers) go into the answer; the power window is the one it reports (the
timed part of its run), else the whole call's. Runs in the worker, on a board too: standard library and numpy.

`runner.native_timing(feed=, warmup_runs=, warmup_s=, samples=, max_seconds=, scratch=, timeout_s=)` returns
{"samples_ns": [...], "memory_kb": {"baseline", "peak", "process_peak"}, "extra": {...}, "warmup_runs": n} and
optionally "warmup_s", "window" ([start, end] epoch seconds of the timed part), "clock", "peak_method" and
"window_inferences" (how many inferences ran in that window, where more ran than the samples kept).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict

import numpy as np


def measure_native(command: Dict[str, Any], backend: str, runner: Any, feed: Dict[str, np.ndarray], load_s: float,
                   after_load_kb: int, power: Any) -> Dict[str, Any]:
    """Time with the runner's own timer; the samples to `samples_out`, the rest as the measure op's answer."""
    warmup = command.get("warmup", {})
    target, max_seconds = command.get("samples"), command.get("max_seconds")
    out = Path(command["samples_out"])
    scratch = out.parent / f"{out.stem}-native"
    scratch.mkdir(parents=True, exist_ok=True)
    window = [time.time()]
    timed = runner.native_timing(feed=feed, warmup_runs=int(warmup.get("runs", 1)),
                                 warmup_s=float(warmup.get("seconds", 0.0)),
                                 samples=int(target) if target else None,
                                 max_seconds=float(max_seconds) if max_seconds else None, scratch=scratch,
                                 timeout_s=float(command.get("native_timeout_s") or 600.0))
    window.append(time.time())
    samples = np.asarray(timed["samples_ns"], dtype=np.int64)
    if samples.size == 0:
        raise RuntimeError(f"{backend}'s own timer reported no timed inference")
    np.save(out, samples, allow_pickle=False)
    reported = timed.get("memory_kb") or {}
    memory_kb = {"baseline": int(reported.get("baseline", 0)), "after_load": after_load_kb,
                 "peak": int(reported.get("peak", 0)),
                 "process_peak": int(reported.get("process_peak", reported.get("peak", 0)))}
    timed_window = timed.get("window") or window
    answer = {"load_s": load_s, "warmup_runs": int(timed.get("warmup_runs", 0)),
              "warmup_s": float(timed.get("warmup_s", 0.0)), "count": int(samples.size),
              "clock": str(timed.get("clock") or f"{backend}'s own timer"), "memory_kb": memory_kb,
              "peak_method": str(timed.get("peak_method") or f"reported by {backend}'s own timing run"),
              "window": [float(timed_window[0]), float(timed_window[1])], "native": dict(timed.get("extra") or {})}
    if power is not None:  # energy over every inference run in the window, not only the samples kept from it
        answer["power"] = power.finish(answer["window"], int(timed.get("window_inferences") or samples.size))
    return answer
