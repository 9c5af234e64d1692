"""A board's power while a timing runs: sampled in the worker, beside the timed runs, from the board's own
sensor or a meter command of the boards file.

Runs on the board under its own Python (3.8+): standard library only. The measure command carries
{"power": {...}} where the session has a power source for the board (edgecheck.boards.runs):

- "command": a shell command of the boards file (`power_command:`) that prints the power in watts
  (`4.2`, `4.2 W` or `4200 mW`); run every `interval_s`;
- "sensors": modules that read a board's own rails (the `edgecheck.power` entry point group, found on the
  host: a Jetson's INA3221 reader); the first that finds rails is used: its module-input rail (VDD_IN,
  POM_5V_IN), else the sum of every rail, labelled so.

Idle power is sampled for `idle_s` after the model is loaded and before the warm-up; active power over
the timed window. A sampler that read nothing, or read a value that is not a finite non-negative number,
says so in "error", and its figures are None: never a zero a budget could pass on (a reading of
0 W is refused too: a powered board never reads it).
"""

from __future__ import annotations

import importlib
import math
import os
import re
import select
import signal
import subprocess
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

INTERVAL_S = 0.05
COMMAND_TIMEOUT_S = 5.0
OUTPUT_LIMIT = 64 * 1024  # a meter prints one reading: more than this is a command that never stops printing
_WATTS = re.compile(r"^\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*(mW|W)?\s*$", re.IGNORECASE)

Reader = Callable[[], Optional[float]]


class PowerError(Exception):
    """A power source that cannot be read: says which and why."""


def watts_from_text(text: str, source: str) -> float:
    """The last non-empty line of a meter command's output as watts: `4.2`, `4.2 W` or `4200 mW`."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise PowerError(f"{source} printed nothing; it must print the board's power in watts, such as 4.2")
    match = _WATTS.match(lines[-1])
    if not match:
        raise PowerError(f"{source} printed {lines[-1][:80]!r}, not a power in watts (such as 4.2, 4.2 W or 4200 mW)")
    value = float(match.group(1))
    return value / 1000.0 if (match.group(2) or "").lower() == "mw" else value


def _kill_group(process: "subprocess.Popen[bytes]") -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except OSError:
        pass
    process.wait()


def run_meter(command: str, timeout_s: float = COMMAND_TIMEOUT_S, limit: int = OUTPUT_LIMIT) -> Tuple[int, str, str]:
    """One run of a meter command in its own process group: (exit status, stdout, stderr). PowerError where it
    outlives `timeout_s` or prints more than `limit` bytes (a command that never stops printing): the whole group
    is killed, so neither a child holding the pipe nor an endless output can hang the sampler or fill memory."""
    try:
        process = subprocess.Popen(["sh", "-c", command], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    except OSError as exc:
        raise PowerError(f"power_command {command!r} failed: {type(exc).__name__}: {exc}") from None
    assert process.stdout is not None and process.stderr is not None
    streams = {process.stdout.fileno(): bytearray(), process.stderr.fileno(): bytearray()}
    deadline = time.monotonic() + timeout_s
    open_fds = list(streams)
    while open_fds:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            _kill_group(process)
            raise PowerError(f"power_command {command!r} did not finish within {timeout_s:g} s (killed)")
        ready, _, _ = select.select(open_fds, [], [], remaining)
        for fd in ready:
            data = os.read(fd, 65536)
            if not data:
                open_fds.remove(fd)
                continue
            streams[fd] += data
            if sum(len(b) for b in streams.values()) > limit:
                _kill_group(process)
                raise PowerError(f"power_command {command!r} printed more than {limit // 1024} KiB (killed): it must "
                                 "print one reading and exit")
    try:
        code = process.wait(max(deadline - time.monotonic(), 0.1))
    except subprocess.TimeoutExpired:
        _kill_group(process)
        raise PowerError(f"power_command {command!r} did not finish within {timeout_s:g} s (killed)") from None
    finally:
        process.stdout.close()
        process.stderr.close()
    out, err = (bytes(streams[fd]).decode("utf-8", "replace") for fd in streams)
    return code, out, err


def command_reader(command: str, timeout_s: float = COMMAND_TIMEOUT_S) -> Reader:
    """Watts from one run of a meter command (a shell line); PowerError where it fails or prints no number."""
    def read() -> Optional[float]:
        code, out, err = run_meter(command, timeout_s)
        if code != 0:
            raise PowerError(f"power_command {command!r} exited with status {code}: {(err or out).strip()[-200:]}")
        return watts_from_text(out, f"power_command {command!r}")
    return read


def rails_reader(module: Any, root: str = "/") -> Optional[Tuple[Reader, str, List[str]]]:
    """A reader of the board's rails through a sensor module (find_rails, module_input, read_rail_mw): the
    module-input rail where there is one, else the sum of all; None where the module finds no rails."""
    rails = list(module.find_rails(root))
    if not rails:
        return None
    whole = module.module_input(rails)
    chosen = [whole] if whole is not None else rails
    labels = [rail.label for rail in chosen]

    def read() -> Optional[float]:
        total = 0.0
        for rail in chosen:
            mw = module.read_rail_mw(rail, root)
            if mw is None:
                return None
            total += float(mw)
        return total / 1000.0

    if whole is not None:
        source = f"INA3221 rail {whole.label} (the module's input power)"
    else:
        source = (f"sum of the rails {' + '.join(labels)} (this board has no module-input rail: the sum leaves out "
                  "what no rail measures)")
    return read, source, labels


def power_source(request: Dict[str, Any]) -> Tuple[Optional[Reader], str, List[str], str]:
    """(reader, source, rails, why none) for a power request: its meter command first, else the first sensor
    module that finds rails on this board."""
    if request.get("command"):
        return command_reader(str(request["command"])), f"power_command {request['command']!r}", [], ""
    tried = []
    for name in request.get("sensors") or []:
        try:
            found = rails_reader(importlib.import_module(str(name)), str(request.get("root") or "/"))
        except Exception as exc:  # a reader's bug is this board's missing figure, not a failed timing
            tried.append(f"{name}: {type(exc).__name__}: {exc}")
            continue
        if found is not None:
            return found[0], found[1], found[2], ""
        tried.append(f"{name}: no rails")
    looked = f"no rails found: {'; '.join(tried)}" if tried else "no rail reader was sent to look with"
    reason = f"no power sensor on this board ({looked}) and no power_command for it in the boards file"
    return None, "", [], reason


class Sampler(threading.Thread):
    """Reads the power every `interval_s` until stopped: (epoch seconds, watts or None) per reading, and the
    first error a reading raised (the sampler stops there: one broken meter is not retried 20 times a second)."""

    def __init__(self, read: Reader, interval_s: float = INTERVAL_S):
        super().__init__(name="edgecheck-power", daemon=True)
        self.read, self.interval_s = read, interval_s
        self.samples: List[Tuple[float, Optional[float]]] = []
        self.error = ""
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            at = time.time()
            try:
                value = self.read()
            except PowerError as exc:
                self.error = str(exc)
                return
            except Exception as exc:
                self.error = f"reading power failed: {type(exc).__name__}: {exc}"
                return
            self.samples.append((at, value))
            self._halt.wait(max(0.0, self.interval_s - (time.time() - at)))

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=COMMAND_TIMEOUT_S + 1)


def _mean(values: List[Optional[float]], what: str) -> Tuple[Optional[float], str]:
    """The mean of readings, or None with why: none read, or one not a finite non-negative number."""
    if not values:
        return None, f"no {what} power reading in its window (a window shorter than the sampling interval?)"
    # 0 W is no board's power, idle or not: a rail or meter that reads nothing must not pass a budget as 0
    bad = [v for v in values if v is None or not math.isfinite(v) or v <= 0]
    if bad:
        return None, (f"{len(bad)} of {len(values)} {what} power readings were unreadable or not a finite "
                      f"positive number (e.g. {bad[0]!r})")
    return sum(values) / len(values), ""  # type: ignore[arg-type]


class PowerRun:
    """One timing's power: started after the load, idle sampled first, then the timed window's."""

    def __init__(self, request: Dict[str, Any]):
        self.request = request
        self.read, self.source, self.rails, self.why_none = power_source(request)
        self.interval_s = float(request.get("interval_s") or INTERVAL_S)
        self.sampler: Optional[Sampler] = None
        self.idle_window: Optional[Tuple[float, float]] = None

    def idle(self) -> None:
        """Start sampling, and sample the idle board for `idle_s` (the model loaded, nothing running)."""
        if self.read is None:
            return
        self.sampler = Sampler(self.read, self.interval_s)
        start = time.time()
        self.sampler.start()
        time.sleep(float(self.request.get("idle_s", 2.0)))
        self.idle_window = (start, time.time())

    def stop(self) -> None:
        """Stop sampling (the readings taken stay for `finish`)."""
        if self.sampler is not None:
            self.sampler.stop()

    def finish(self, window: Optional[List[float]], inferences: int) -> Dict[str, Any]:
        """Stop sampling; the figures of the timed `window` (epoch seconds) over `inferences` runs."""
        if self.read is None:
            return {"source": None, "error": self.why_none}
        sampler = self.sampler
        if sampler is None:
            return {"source": self.source, "error": "power sampling never started"}
        self.stop()
        answer: Dict[str, Any] = {"source": self.source, "rails": self.rails, "interval_s": self.interval_s,
                                  "inferences": inferences}
        if not window:
            answer["error"] = "the timing reported no window to sample power over"
            return answer
        start, end = float(window[0]), float(window[1])
        idle_start, idle_end = self.idle_window or (0.0, 0.0)
        idle = [w for t, w in sampler.samples if idle_start <= t <= idle_end]
        active = [w for t, w in sampler.samples if start <= t <= end]
        answer.update(window_s=end - start, samples=len(active), idle_samples=len(idle))
        idle_w, idle_error = _mean(idle, "idle")
        active_w, active_error = _mean(active, "active")
        if not active and not sampler.error:
            active_error = (f"no power reading fell in the timed window ({(end - start) * 1000:.0f} ms, readings every "
                            f"{self.interval_s * 1000:.0f} ms): time for longer, e.g. latency_ms: {{duration_s: 5}}")
        answer.update(idle_w=idle_w, active_w=active_w)
        errors = [e for e in ([sampler.error] if sampler.error else [active_error]) if e]  # a stopped meter first
        if errors:
            answer["error"] = "; ".join(errors)
        if idle_error:
            answer["idle_error"] = idle_error
        if active_w is not None and not errors and inferences > 0:
            answer["energy_mj"] = active_w * (end - start) / inferences * 1000.0
            if idle_w is not None:
                answer["dynamic_energy_mj"] = (active_w - idle_w) * (end - start) / inferences * 1000.0
        return answer
