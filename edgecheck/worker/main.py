"""The worker process: loads an artifact on a backend, runs it, times it, or applies a recipe step,
and reports back as data.

Started by `edgecheck.worker.client` in a fresh interpreter (never a fork of the session), in its
own process group. For runs it imports only the standard library, numpy and the backend's own
module, so it can run under another Python than the session's (recipes need edgecheck's whole
environment and run under the session's own). Whatever a runtime does here (segfault, abort, hang,
allocate without end) ends this process, not the pytest session.
"""

from __future__ import annotations

import faulthandler
import gc
import importlib
import importlib.util
import json
import os
import platform
import resource
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from edgecheck.processes import die_with_parent, proc_status_kb
from edgecheck.units import MIB
from edgecheck.outputfiles import save_outputs
from edgecheck.worker.protocol import PROTOCOL_VERSION, concat_outputs, decode, encode, load_feeds, save_feeds

CLOCK = "time.perf_counter_ns"


def peak_rss_kb() -> int:
    """getrusage's peak resident memory: the fallback where there is no /proc. On Linux a child
    started by fork+exec inherits its parent's figure here, so VmHWM is preferred wherever readable."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # bytes on macOS, KiB elsewhere


def reset_peak_rss() -> bool:
    """Linux: restart the peak-RSS watermark (VmHWM) here, so a later peak is the load-and-run's own
    and not the imports' transient one. False where the kernel does not offer it."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _limit_memory(limit_mb: int | None) -> None:
    """Cap the heap's growth (RLIMIT_DATA counts private writable memory, not reserved address space):
    an allocation past it fails here with MemoryError instead of taking the machine's memory."""
    if not limit_mb:
        return
    data_kb = proc_status_kb("VmData") or 0
    cap = (data_kb * 1024) + limit_mb * MIB
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (cap, hard))


def _import_object(reference: dict[str, str]) -> Any:
    module_name, qualname, file = reference["module"], reference["qualname"], reference.get("file") or ""
    module = None
    by_file = module_name in ("__main__", "conftest") or module_name.endswith(".conftest")
    if not by_file:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            if not file:
                raise
    if module is None:
        name = f"_edgecheck_by_file_{abs(hash(file))}"
        module = sys.modules.get(name)  # loaded once per worker: its top level may register things
        if module is None:
            spec = importlib.util.spec_from_file_location(name, file)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot import {module_name} from {file or 'nowhere'}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
    found: Any = module
    for part in qualname.split("."):
        found = getattr(found, part)
    return found


class _MemoryProbe:
    """Resident memory of this worker: the idle baseline when made, then the peak since.

    Linux: VmRSS now, and VmHWM after restarting it (clear_refs), so the peak is loading and
    running's own; where the restart is refused, VmHWM since exec, an upper bound that includes the
    imports. Never getrusage there: a fork+exec child inherits its parent's ru_maxrss, so from a big
    pytest session it would read the session's peak. Elsewhere (no /proc), ru_maxrss, labelled so.
    """

    def __init__(self) -> None:
        self.import_peak_kb = proc_status_kb("VmHWM")  # VmHWM starts afresh at exec: this process's own
        self.proc = self.import_peak_kb is not None
        self.reset = self.proc and reset_peak_rss()
        self.baseline_kb = (proc_status_kb("VmRSS") if self.proc else None) or peak_rss_kb()
        if self.reset:
            self.method = "VmHWM since a reset after imports"
        elif self.proc:
            self.method = "VmHWM since the worker started (no clear_refs here): an upper bound, imports included"
        else:
            self.method = "getrusage ru_maxrss (no /proc here): an upper bound, imports included"

    def peak_kb(self) -> int:
        return (proc_status_kb("VmHWM") if self.proc else None) or peak_rss_kb()

    def process_peak_kb(self) -> int:
        """The whole process's lifetime peak, as /usr/bin/time -v means it: the imports' or the run's."""
        return max(self.import_peak_kb or 0, self.peak_kb())


class Worker:
    def __init__(self, events_fd: int, on_board: bool = False):
        self._events = os.fdopen(events_fd, "wb", buffering=0)
        self._sending = threading.Lock()  # a recipe's threads may report progress too: whole lines only
        self._backends: dict[str, Any] = {}
        self.on_board = on_board  # a worker on a board (edgecheck.boards): the board's runtimes, its own facts
        self.busy = False

    def send(self, event: str, **fields: Any) -> None:
        data = encode({"event": event, **fields})
        with self._sending:
            self._events.write(data)

    def backend(self, reference: dict[str, str]) -> Any:
        key = json.dumps(reference, sort_keys=True)
        if key not in self._backends:
            self._backends[key] = _import_object(reference)()
        return self._backends[key]

    def serve(self, lines: Any = None) -> None:
        self.send("ready", pid=os.getpid(), python=sys.executable, version=PROTOCOL_VERSION,
                  implementation=platform.python_implementation(), python_version=platform.python_version(),
                  pgid=os.getpgrp(), machine=platform.machine(), host=platform.node())
        for line in lines if lines is not None else sys.stdin.buffer:
            if not line.strip():
                continue
            command = decode(line)
            if command.get("op") == "exit":
                return
            self.busy = True
            # a board's options of the boards file (trtexec's path): in the environment as EDGECHECK_<NAME>, for
            # what takes no RunOptions (a backend's board_availability)
            for key, value in (command.get("board_options") or {}).items():
                os.environ[f"EDGECHECK_{str(key).upper()}"] = str(value)
            try:
                handler = {"outputs": self.outputs, "measure": self.measure, "compress": self.compress,
                           "availability": self.availability}[command["op"]]
                result = handler(command)
            except MemoryError as exc:
                self.send("error", kind="MemoryError", step=self._step, message=str(exc) or "out of memory")
            except BaseException as exc:  # everything a runtime raises goes back as data
                self.send("error", kind=type(exc).__name__, step=getattr(exc, "step", None) or self._step,
                          message=getattr(exc, "reason", None) or str(exc),
                          traceback="".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-4000:])
                if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                    raise
            else:
                self.send("done", result=result)
            finally:
                self.busy = False

    _step = "starting"

    def phase(self, step: str) -> None:
        self._step = step
        self.send("phase", phase=step)

    def _import_backend(self, command: dict[str, Any]) -> Any:
        """The backend and its runtime, imported in the "importing" phase: the session gives imports the
        worker's start limit, so a slow import on a loaded machine never eats the job's own limit."""
        self.phase("importing")
        backend = self.backend(command["backend"])
        # imports the runtime: the board's own where this worker runs on a board
        availability = backend.board_availability() if self.on_board else backend.availability()
        if not availability:
            raise RuntimeError(f"{backend.name} cannot run in this worker: {availability.reason}")
        return backend

    def availability(self, command: dict[str, Any]) -> dict[str, Any]:
        """Whether this worker's Python runs the backend (a board's runtime installed there), and its facts."""
        self.phase("importing")
        backend = self.backend(command["backend"])
        found = backend.board_availability() if self.on_board else backend.availability()
        return {"ok": bool(found), "reason": found.reason, **(self._facts(backend) if found else {})}

    def _facts(self, backend: Any) -> dict[str, Any]:
        """The runtime's facts as this worker finds them: a board's runtime and version are the board's."""
        if not self.on_board:
            return {}
        try:
            return {"facts": {str(k): str(v) for k, v in backend.board_facts().items()}}
        except Exception as exc:
            return {"facts": {"facts_error": f"{type(exc).__name__}: {exc}"}}

    def _load(self, command: dict[str, Any], backend: Any) -> Any:
        from edgecheck.backends.base import RunOptions

        suffixes = command.get("suffixes")
        options = RunOptions(threads=int(command.get("threads", 1)), extra=dict(command.get("extra", {})),
                             suffixes=tuple(suffixes) if suffixes is not None else None, on_board=self.on_board)
        self.phase("loading")
        return backend.load(Path(command["artifact"]), options)

    def compress(self, command: dict[str, Any]) -> dict[str, Any]:
        """Apply one recipe step (the session's interpreter only: recipes need edgecheck's whole
        environment). Importing the recipe's module registers it, a conftest's or a plugin's too."""
        self.phase("importing")
        _import_object(command["function"])
        # what verifying an artifact imports (compress/verify.py: ONNX Runtime loads an .onnx artifact),
        # so the step's limit counts the recipe's work and the check, not a cold import on a busy machine
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401

        import edgecheck.compress.diff  # noqa: F401
        import edgecheck.compress.verify  # noqa: F401
        from edgecheck.compress import RecipeContext, get_recipe, tool_message
        from edgecheck.errors import RecipeError

        recipe = get_recipe(command["recipe"])
        params = recipe.parse_params(command.get("params"))
        source = Path(command["source"])
        calibration = Path(command["calibration"]) if command.get("calibration") else None
        self.phase("compressing")
        try:
            limit = command.get("time_limit_s")
            threads = command.get("threads")
            context = RecipeContext(calibration=calibration, out_dir=Path(command["out_dir"]),
                                    time_limit_s=float(limit) if limit else None,
                                    threads=int(threads) if threads else None)
            artifact = recipe.make(source, params, context)  # applied, then verified (compress/verify.py)
        except (RecipeError, MemoryError):
            raise
        except Exception as exc:  # a third-party recipe's bug or a tool's error: a named failure
            raise RecipeError(f"recipe {recipe.name!r} failed on {source.name}: {tool_message(exc)}") from exc
        return {"path": str(artifact.path), "recipe": artifact.recipe, "notes": dict(artifact.notes)}

    def outputs(self, command: dict[str, Any]) -> dict[str, Any]:
        """Run every feed; their names in the answer. With `joined` (a folder), the outputs are joined over
        the feeds here and written there, one .npy each (the session maps them, and the cache keeps those
        very files: written once); else every feed's outputs go to one .npz (a board's worker)."""
        feeds = load_feeds(Path(command["inputs"]), command["names"], mapped=True)
        backend = self._import_backend(command)
        with self._load(command, backend) as runner:
            self.phase("running")
            outputs = [runner.infer(feed) for feed in feeds]
        if command.get("joined"):
            del feeds
            joined = concat_outputs(outputs)
            del outputs
            return {"names": save_outputs(Path(command["joined"]), joined), **self._facts(backend)}
        names = save_feeds(Path(command["outputs"]), outputs, prefix="o")
        return {"names": names, **self._facts(backend)}

    def measure(self, command: dict[str, Any]) -> dict[str, Any]:
        """Load, warm up, then time the inference call alone on one fixed feed; peak memory beside it.

        Run in a fresh worker, so the memory figures are this artifact's: the baseline is the peak
        after the runtime is imported and before the model is loaded.
        """
        backend = self._import_backend(command)
        feed = load_feeds(Path(command["inputs"]), command["names"])[0]
        gc.collect()
        memory = _MemoryProbe()  # the idle baseline: runtime imported, input read, nothing loaded
        started = time.perf_counter()
        runner = self._load(command, backend)
        power = None
        try:
            load_s = time.perf_counter() - started
            after_load_kb = memory.peak_kb()
            if command.get("power"):  # a board with a power source: idle power first, the model loaded
                from edgecheck.worker.power import PowerRun

                self.phase("sampling idle power")
                power = PowerRun(command["power"])
                power.idle()
            if getattr(runner, "native_timing", None) is not None:  # the runtime's own timer (trtexec)
                return self._measure_native(command, backend, runner, feed, memory, load_s, after_load_kb, power)
            call = runner.bind(feed)
            warmup = command.get("warmup", {})
            min_runs, min_seconds = int(warmup.get("runs", 1)), float(warmup.get("seconds", 0.0))
            self.phase("warming up")
            runs, started = 0, time.perf_counter()
            while runs < min_runs or time.perf_counter() - started < min_seconds:
                call()
                runs += 1
            warmup_s = time.perf_counter() - started
            self.phase("timing")
            target = command.get("samples")
            max_seconds = command.get("max_seconds")
            window = [time.time()]
            samples = self._time(call, int(target) if target else None, float(max_seconds) if max_seconds else None)
            window.append(time.time())
        finally:
            runner.close()
            if power is not None:
                power.stop()
        out = Path(command["samples_out"])
        np.save(out, np.asarray(samples, dtype=np.int64), allow_pickle=False)
        answer = {"load_s": load_s, "warmup_runs": runs, "warmup_s": warmup_s, "count": len(samples),
                  "clock": CLOCK, "memory_kb": {"baseline": memory.baseline_kb, "after_load": after_load_kb,
                                                "peak": memory.peak_kb(), "process_peak": memory.process_peak_kb()},
                  "peak_method": memory.method,
                  "window": window, **self._facts(backend)}
        if power is not None:
            answer["power"] = power.finish(window, len(samples))
        return answer

    def _measure_native(self, command: dict[str, Any], backend: Any, runner: Any, feed: dict[str, np.ndarray],
                        memory: _MemoryProbe, load_s: float, after_load_kb: int, power: Any) -> dict[str, Any]:
        """A runner with its runtime's own timer times itself (edgecheck.worker.native)."""
        from edgecheck.worker.native import measure_native

        self.phase("timing")
        answer = measure_native(command, backend.name, runner, feed, load_s, after_load_kb, power)
        answer["worker_memory_kb"] = {"baseline": memory.baseline_kb, "peak": memory.peak_kb()}
        return {**answer, **self._facts(backend)}

    @staticmethod
    def _time(call: Any, target: int | None, max_seconds: float | None) -> list[int]:
        """Timed runs until `target` samples or `max_seconds`, whichever comes first (one at least);
        the garbage collector is off meanwhile, as in timeit, so it never lands inside a sample."""
        clock = time.perf_counter_ns
        samples: list[int] = []
        append = samples.append
        deadline = clock() + int(max_seconds * 1e9) if max_seconds else None
        enabled = gc.isenabled()
        gc.disable()
        try:
            while True:
                start = clock()
                call()
                end = clock()
                append(end - start)
                if (target is not None and len(samples) >= target) or (deadline is not None and end >= deadline):
                    break
                if target is None and deadline is None:
                    break
        finally:
            if enabled:
                gc.enable()
        return samples


def _board_side() -> tuple[int, Any]:
    """A worker on a board, started over ssh: the channel's stdout carries the events (a runtime's prints go
    to stderr, the session's log), the worker leads a process group of its own (the session can kill it
    whole), and when the channel closes (the session ended, the cable was pulled) the group goes with it."""
    import queue
    import threading

    events = os.dup(1)
    os.dup2(2, 1)
    try:
        os.setsid()
    except OSError:
        pass  # already a group leader: sshd started it so
    die_with_parent(os.getppid())
    lines: queue.Queue = queue.Queue()

    def read() -> None:
        for line in sys.stdin.buffer:
            lines.put(line)
        lines.put(None)
        time.sleep(0.5)  # an "exit" just read is served first
        os.killpg(os.getpgrp(), signal.SIGKILL)

    threading.Thread(target=read, daemon=True).start()
    return events, iter(lines.get, None)


def main(argv: list[str] | None = None) -> None:
    faulthandler.enable()  # a segfault or abort prints the Python stack: the session shows its tail
    config = json.loads((argv or sys.argv)[1])
    if config.get("events_fd") == "stdout":
        events, lines = _board_side()
    else:
        die_with_parent(int(config["parent_pid"]))
        events, lines = int(config["events_fd"]), None
    _limit_memory(config.get("memory_limit_mb"))
    worker = Worker(events, on_board=bool(config.get("on_board")))
    if config.get("progress"):  # the session shows progress: this worker's steps say what its job is doing
        from edgecheck import progress

        progress.relay_to(lambda text: worker.send("progress", detail=text))
    worker.serve(lines)
    # asked to exit (or the session is gone): every answer went out unbuffered and every result file was closed
    # before its answer, so only the log is left (Python's buffers flushed here; a native library's C stdio buffer
    # is dropped, and the log is read only while a worker lives). Tearing down the runtime's sessions and the
    # interpreter would take 0.4 s with ONNX Runtime loaded, and the session waits for this process at its end.
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:  # (a board's SSH channel may be gone: a failed flush still leaves at once)
        os._exit(0)


if __name__ == "__main__":
    main()
