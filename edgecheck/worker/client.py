"""The session's side of the workers: start them, send jobs, turn whatever happens into data or a
named failure.

Each worker is a fresh interpreter (`subprocess`, never a fork of the session: CUDA and threads
forbid forking) in its own process group, with a wall-clock timeout per job and a memory limit
(RLIMIT_DATA in the worker, and a watch on its resident memory here). A crash, a hang or a runaway
allocation ends the worker — the whole group is killed — and becomes a `WorkerFailure` naming the
backend, the artifact, what it was doing and the tail of its output; the session goes on.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecheck import progress
from edgecheck.errors import BackendError
from edgecheck.leftovers import owner_tag, remove_dead_owners
from edgecheck.processes import WORKER_OUTPUT, proc_status_kb, signal_name
from edgecheck.units import MIB
from edgecheck.worker.protocol import backend_reference, decode, encode

# appended, never prepended: the worker's own interpreter keeps its standard library and packages first
BOOTSTRAP = ("import json, sys; config = json.loads(sys.argv[1]); "
             "sys.path += [p for p in config['edgecheck_path'] if p not in sys.path]; "
             "from edgecheck.worker.main import main; main()")
POLL_S = 0.05
START_TIMEOUT_S = 120.0  # a worker's start and its imports (also "importing" in a job): never the job's limit
PREPARING = ("starting", "importing")  # a job's phases before its own work, under START_TIMEOUT_S
LOG_TAIL_LINES = 15
# a worker's phases as a progress line says them (failure messages keep the worker's own words)
PHASE_TEXT = {"starting": "starting a worker", "importing": "importing the runtime", "loading": "loading the model",
              "running": "running the model", "compressing": "applying the recipe"}


@dataclass(frozen=True)
class WorkerSettings:
    timeout_s: float = 300.0
    memory_limit_mb: int | None = None  # None: no limit
    # threads of a runtime session a recipe runs itself (int8-static's calibration): this xdist worker's share of the
    # cores; None: the runtime's default
    recipe_threads: int | None = None
    # the CPUs this session (this xdist worker) may keep busy: with two or more, a spec's reference runs in a second
    # worker while an artifact is made (Executor.artifact_with_reference)
    cores: int = 1


def default_memory_limit_mb() -> int | None:
    """Half of this machine's memory: room for a big model, and a runaway still leaves the rest."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / MIB / 2)
    except (ValueError, OSError, AttributeError):
        return None


class WorkerFailure(BackendError):
    """A worker crashed, hung, ran out of memory or never answered; `kind` says which."""

    def __init__(self, backend: str, artifact: Path | str, step: str, kind: str, headline: str, log_tail: str = ""):
        super().__init__(backend, artifact, step, headline)
        self.kind = kind
        self.log_tail = log_tail
        text = headline + (f"{WORKER_OUTPUT}\n{log_tail}" if log_tail else "")
        Exception.__init__(self, text)




def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a log file (at most its last 8 KiB), '' where it cannot be read."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 8192))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def _environment(interpreter: str) -> dict[str, str] | None:
    """The worker's environment: the session's own for its Python; for another (a toolkit's venv),
    nothing of this one's packages (PYTHONPATH, PYTHONHOME, user site-packages) leaks in."""
    if os.path.abspath(interpreter) == os.path.abspath(sys.executable):
        return None
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def edgecheck_path(interpreter: str, scratch: Path) -> list[str]:
    """Where a worker finds the edgecheck package (and, for the session's own Python, whatever the
    session can import: a backend from the project's `pythonpath`, a conftest's package); for another
    Python, a folder holding only a link to the package, so nothing else of this environment
    (numpy 2, onnx, ...) leaks into that one."""
    package = Path(__file__).resolve().parents[1]
    # compared unresolved: another virtual environment's python links to the same base interpreter
    if os.path.abspath(interpreter) == os.path.abspath(sys.executable):
        return [str(package.parent), *(p for p in sys.path if p)]
    folder = scratch / "edgecheck-path"
    link = folder / "edgecheck"
    if not link.exists():
        folder.mkdir(parents=True, exist_ok=True)
        try:
            link.symlink_to(package, target_is_directory=True)
        except OSError:  # no symlinks (some file systems): a copy of the package's source
            shutil.copytree(package, link, ignore=shutil.ignore_patterns("__pycache__"))
    return [str(folder)]


class WorkerProcess:
    """One running worker. `request()` sends a job and waits for its answer."""

    def __init__(self, interpreter: str, settings: WorkerSettings, scratch: Path, name: str):
        self.settings = settings
        self.interpreter = interpreter
        self.log_path = scratch / f"{name}.log"
        read_end, write_end = os.pipe()
        self._log = open(self.log_path, "wb")
        try:
            self.proc = self._spawn(write_end, scratch)
        except Exception as exc:  # OSError; on Windows also pass_fds, which it does not support
            os.close(read_end)
            self._log.close()
            raise self._start_failure(exc) from None
        finally:
            os.close(write_end)
        self._events = read_end
        self._buffer = b""
        self.peak_rss_kb = 0
        self.ready: dict[str, Any] = {}

    def _spawn(self, events_fd: int, scratch: Path) -> subprocess.Popen:
        """Start the worker process, its events on `events_fd` and its output in the log."""
        config = {"events_fd": events_fd, "parent_pid": os.getpid(), "memory_limit_mb": self.settings.memory_limit_mb,
                  "edgecheck_path": edgecheck_path(self.interpreter, scratch), "progress": progress.enabled()}
        return subprocess.Popen(
            [self.interpreter, "-c", BOOTSTRAP, json.dumps(config)], stdin=subprocess.PIPE, stdout=self._log,
            stderr=subprocess.STDOUT, pass_fds=(events_fd,), start_new_session=True, cwd=scratch,
            env=_environment(self.interpreter),
        )

    def _start_failure(self, exc: Exception) -> WorkerFailure:
        return WorkerFailure("worker", self.interpreter, "starting", "start",
                             f"cannot start a worker with {self.interpreter}: {type(exc).__name__}: {exc} "
                             "(workers need Linux or macOS)")

    # --- life cycle -------------------------------------------------------------------------

    def start(self, backend: str, artifact: Path) -> None:
        """Wait for the worker's hello; a worker that cannot even start is a named failure."""
        event, _ = self._wait(backend, artifact, "starting the worker", START_TIMEOUT_S, {"ready"})
        self.ready = event

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """Kill the worker's whole process group (a runtime may have started helpers)."""
        self.signal_group()
        self._reap()

    def signal_group(self) -> None:
        """SIGKILL the worker's process group, and nothing more: its descriptors stay for whoever waits on it."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def close(self) -> None:
        """Ask the worker to exit; kill its group if it does not within two seconds."""
        if self.alive():
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(encode({"op": "exit"}))
                self.proc.stdin.flush()
                self.proc.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired, ValueError):
                pass
        self.kill()

    def _reap(self) -> None:
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for handle in (self.proc.stdin,):
            try:
                if handle:
                    handle.close()
            except OSError:
                pass
        if self._events >= 0:
            os.close(self._events)
            self._events = -1
        self._log.close()

    # --- one job ----------------------------------------------------------------------------

    def request(self, command: dict[str, Any], backend: str, artifact: Path, timeout_s: float) -> dict[str, Any]:
        """Send a job; its result, or `BackendError` (the runtime raised) / `WorkerFailure` (the worker
        died, hung or outgrew its memory limit)."""
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(encode(command))
            self.proc.stdin.flush()
        except (OSError, ValueError):
            pass  # the worker is gone: _wait says how it ended
        event, step = self._wait(backend, artifact, "starting", timeout_s, {"done", "error"})
        if event["event"] == "done":
            return event.get("result") or {}
        kind = event.get("kind") or "Exception"
        message = event.get("message") or kind
        if kind == "MemoryError":
            raise WorkerFailure(backend, artifact, step, "memory", self._memory_headline(backend, artifact, step,
                                                                                          f"MemoryError: {message}"))
        detail = message if kind in ("BackendError", "WorkerFailure") else f"{kind}: {message}"
        error = BackendError(backend, artifact, event.get("step") or step, detail)
        # the exception as the worker raised it, for callers that map their own errors back
        error.worker_kind, error.worker_message = kind, message  # type: ignore[attr-defined]
        error.worker_traceback = event.get("traceback", "")  # type: ignore[attr-defined]
        raise error

    def _memory_headline(self, backend: str, artifact: Path, step: str, cause: str) -> str:
        limit = self.settings.memory_limit_mb
        return (f"{backend} ran out of memory while {step} {Path(artifact).name}: {cause} (worker memory limit "
                f"{limit} MiB, resident peak seen {self.peak_rss_kb / 1024:.0f} MiB; raise --edge-worker-memory "
                "if the model needs more)")

    def _wait(self, backend: str, artifact: Path, step: str, timeout_s: float,
              wanted: set[str]) -> tuple[dict[str, Any], str]:
        """The job's limit counts from its first own phase (loading, compressing, ...): until then the
        worker starts and imports under the longer START_TIMEOUT_S, so a loaded machine's slow imports
        never eat the limit of the step that may hang."""
        preparing = step in PREPARING
        limit = max(timeout_s, START_TIMEOUT_S) if preparing else timeout_s
        deadline = time.monotonic() + limit
        limit_kb = self.settings.memory_limit_mb * 1024 if self.settings.memory_limit_mb else None
        while True:
            for event in self._read_events():
                if event.get("event") == "phase":
                    step = str(event.get("phase"))
                    progress.update(PHASE_TEXT.get(step, step))  # what the session's step waits on now
                    if preparing and step not in PREPARING:  # the job's own work begins: its clock starts
                        preparing, limit = False, timeout_s
                        deadline = time.monotonic() + limit
                elif event.get("event") == "progress":  # a step of the worker's own (a converter's run)
                    progress.update(str(event.get("detail", ""))[:300])
                elif event.get("event") in wanted:
                    return event, step
            progress.tick()
            rss = self._resident_kb()
            if rss:
                self.peak_rss_kb = max(self.peak_rss_kb, rss)
            if self._events < 0 or not self.alive():
                # drain what it said before it went, then say how it ended
                for event in self._read_events(final=True):
                    if event.get("event") == "phase":
                        step = str(event.get("phase"))
                    elif event.get("event") in wanted:
                        return event, step
                self._fail_dead(backend, artifact, step)
            if limit_kb and rss and rss > limit_kb:
                self.kill()
                raise WorkerFailure(backend, artifact, step, "memory", self._memory_headline(
                    backend, artifact, step, f"resident memory reached {rss / 1024:.0f} MiB and the worker was "
                    "killed"), log_tail(self.log_path))
            if time.monotonic() > deadline:
                self.kill()
                raise WorkerFailure(backend, artifact, step, "timeout",
                                    f"{backend} timed out after {limit:g} s while {step} {Path(artifact).name}: "
                                    "the worker's process group was killed (raise --edge-worker-timeout if it "
                                    "needs longer)", log_tail(self.log_path))

    def _resident_kb(self) -> int | None:
        """The worker's resident memory now, watched against the limit (None where it cannot be seen here)."""
        return proc_status_kb("VmRSS", self.proc.pid)

    def _read_events(self, final: bool = False) -> list[dict[str, Any]]:
        """Events the worker sent: waits up to POLL_S for the first bytes (not at all when `final`)."""
        wait = 0.0 if final else POLL_S
        while self._events >= 0:
            ready, _, _ = select.select([self._events], [], [], wait)
            if not ready:
                break
            wait = 0.0
            chunk = os.read(self._events, 1 << 16)
            if not chunk:  # the worker closed its end: it has exited
                os.close(self._events)
                self._events = -1
                break
            self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        events = []
        for line in lines:
            if line.strip():
                try:
                    events.append(decode(line))
                except ValueError:
                    pass  # not ours: a runtime wrote to a descriptor it should not have
        return events

    def _wait_exit(self) -> None:
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    def _fail_dead(self, backend: str, artifact: Path, step: str) -> None:
        self._wait_exit()
        code = self.proc.returncode
        name = Path(artifact).name
        self.kill()
        tail = log_tail(self.log_path)
        if code is not None and code < 0:
            headline = f"{backend} crashed: {signal_name(-code)} while {step} {name}"
            limit = self.settings.memory_limit_mb
            if limit and self.peak_rss_kb > 0.8 * limit * 1024:
                headline += f" (near the worker memory limit of {limit} MiB: a runtime that cannot allocate may abort)"
            raise WorkerFailure(backend, artifact, step, "crash", headline, tail)
        raise WorkerFailure(backend, artifact, step, "exit",
                            f"{backend} worker exited with status {code} without answering while {step} {name}", tail)


class WorkerPool:
    """The workers of one session: those kept per interpreter for output runs, a fresh one per
    measurement (peak memory is a high-water mark: it must be this artifact's alone).

    Thread-safe: a job never shares a worker with another job. Two threads of the session asking at once
    (the reference run beside an artifact's making: Executor.artifact_with_reference) get two workers, and
    both are kept for later jobs, whichever thread asked (workers are started from the pool's own thread)."""

    def __init__(self, settings: WorkerSettings | None = None, scratch: Path | None = None):
        self.settings = settings or WorkerSettings()
        self._own_scratch = scratch is None
        if scratch is None:  # named after this process: the next session removes it if this one is killed
            remove_dead_owners(Path(tempfile.gettempdir()), "edgecheck-workers-*")
            scratch = Path(tempfile.mkdtemp(prefix=f"edgecheck-workers-{owner_tag()}-"))
        self.scratch = Path(scratch)
        self.scratch.mkdir(parents=True, exist_ok=True)
        self._kept: dict[str, list[WorkerProcess]] = {}  # by interpreter, idle or busy
        self._busy: set[WorkerProcess] = set()  # the kept workers running a job now
        self._closed = False
        self._lock = threading.Lock()
        self._count = 0
        self._spawner: ThreadPoolExecutor | None = None

    def run(self, backend: Any, command: dict[str, Any], artifact: Path, *, fresh: bool = False,
            timeout_s: float | None = None) -> dict[str, Any]:
        """Run one job for `backend` (a Backend instance) on `artifact`."""
        command = {**command, "backend": backend_reference(type(backend))}
        return self.run_job(backend.interpreter(), backend.name, command, artifact, fresh=fresh, timeout_s=timeout_s)

    def run_job(self, interpreter: str, name: str, command: dict[str, Any], artifact: Path, *, fresh: bool = False,
                timeout_s: float | None = None) -> dict[str, Any]:
        """Run one job in a worker of `interpreter`; `name` says who failed in a failure's message."""
        timeout = timeout_s if timeout_s is not None else self.settings.timeout_s
        worker = None if fresh else self._idle(interpreter)
        if worker is None:
            worker = self._start(interpreter, name, artifact)
            if not fresh:
                with self._lock:
                    self._kept.setdefault(interpreter, []).append(worker)
                    self._busy.add(worker)
        try:
            return worker.request(command, name, artifact, timeout)
        except BackendError as exc:  # the runtime raised: the worker answered and stays, unless it failed itself
            if isinstance(exc, WorkerFailure):
                self._forget(interpreter, worker)
                worker.kill()
            raise
        except BaseException:  # Ctrl-C, a timeout plug-in's exit mid-job: its answer would be the next job's
            self._forget(interpreter, worker)
            worker.kill()
            raise
        finally:
            if fresh:
                worker.close()
            else:
                with self._lock:
                    self._busy.discard(worker)

    def _idle(self, interpreter: str) -> WorkerProcess | None:
        """A kept worker of `interpreter` that runs no job now, marked busy; those that died meanwhile are closed."""
        dead = []
        found = None
        with self._lock:
            for worker in list(self._kept.get(interpreter, [])):
                if worker in self._busy:
                    continue
                if not worker.alive():
                    self._kept[interpreter].remove(worker)
                    dead.append(worker)
                    continue
                found = worker
                self._busy.add(worker)
                break
        for worker in dead:
            worker.close()
        return found

    def _forget(self, interpreter: str, worker: WorkerProcess) -> None:
        with self._lock:
            kept = self._kept.get(interpreter, [])
            if worker in kept:
                kept.remove(worker)
            self._busy.discard(worker)

    def _start(self, interpreter: str, backend: str, artifact: Path) -> WorkerProcess:
        with self._lock:
            if self._closed:
                raise WorkerFailure(backend, artifact, "starting", "closed", "the session's workers were closed")
            self._count += 1
            name = f"worker-{self._count}"
            if self._spawner is None:
                # every worker is started from this one thread, which lives as long as the pool: the kernel kills a
                # worker when the thread that started it ends (PR_SET_PDEATHSIG is per thread), and a kept worker
                # must outlive a short-lived thread that asked for it
                self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edgecheck-spawn")
            spawner = self._spawner
        worker = spawner.submit(WorkerProcess, interpreter, self.settings, self.scratch, name).result()
        try:
            worker.start(backend, artifact)
        except BaseException:  # a start that failed, or was interrupted (Ctrl-C): no worker left half started
            worker.kill()
            raise
        return worker

    def job_dir(self) -> Path:
        with self._lock:
            self._count += 1
            folder = self.scratch / f"job-{self._count}"
        folder.mkdir()
        return folder

    def close(self) -> None:
        """Close the idle workers; kill the process group of one still running a job (another thread waits on it:
        that thread sees it end and reaps it), and start no more."""
        with self._lock:
            self._closed = True
            workers = [worker for kept in self._kept.values() for worker in kept]
            busy = set(self._busy)
            self._kept.clear()
            self._busy.clear()
        for worker in workers:
            if worker in busy:
                worker.signal_group()
            else:
                worker.close()
        with self._lock:
            spawner, self._spawner = self._spawner, None
        if spawner is not None:  # after its workers: they exit as asked, not killed with the thread
            spawner.shutdown(wait=False)
        if self._own_scratch:
            shutil.rmtree(self.scratch, ignore_errors=True)
