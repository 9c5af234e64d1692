"""Running artifacts on boards: outputs for parity and accuracy, timing and memory, measured there.

The same jobs as `edgecheck.measure.runs.ModelRuns`, on a board of the target's device: the
artifact and the inputs go to the board's store (by content, once), the worker runs under the board's
Python, the outputs or samples come back. Every result says which board, with its host name, kernel,
runtime and version, governor and temperatures before and after; a timing that saw thermal throttling
says so: its latency verdict is inconclusive (a pass with a warning, or a failure under
`inconclusive: fail`), never a clean pass.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any

import numpy as np

from edgecheck import progress
from edgecheck.backends import Backend
from edgecheck.boards.config import Board
from edgecheck.boards.pool import BoardPool, BoardState, NoBoard
from edgecheck.boards.probe import thermal_summary, throttling
from edgecheck.boards.ssh import BoardUnreachable
from edgecheck.boards.worker import BoardWorker
from edgecheck.errors import EdgecheckError
from edgecheck.measure.runs import Measured, TimingPlan, measured_from, run_suffixes
from edgecheck.worker.client import WorkerFailure, WorkerSettings
# a board's outputs are joined as a local worker joins them (concat_outputs)
from edgecheck.worker.protocol import backend_reference, concat_outputs, load_feeds, save_feeds

Outputs = dict[str, np.ndarray]
POWER_INTERVAL_S = 0.05


class BoardRunError(EdgecheckError):
    """A run on a board failed for the board's sake (the connection dropped, its disk is full)."""


@functools.lru_cache(maxsize=None)
def _package_root(module: str) -> str | None:
    """The folder of a plug-in backend's top-level package, sent to the board beside edgecheck's."""
    top = module.split(".")[0]
    found = sys.modules.get(top)
    paths = list(getattr(found, "__path__", []) or [])
    return paths[0] if paths and top != "edgecheck" else None


class BoardRuns:
    """The session's runs on boards, device by device."""

    def __init__(self, pool: BoardPool, settings: WorkerSettings, scratch: Path):
        self.pool = pool
        self.settings = settings
        self.scratch = Path(scratch)
        self.scratch.mkdir(parents=True, exist_ok=True)
        self._kept: dict[str, BoardWorker] = {}
        self._available: dict[tuple[str, str], dict[str, Any]] = {}
        self._count = 0

    def serves(self, device: str) -> bool:
        return self.pool.serves(device)

    def names(self, device: str) -> list[str]:
        return self.pool.names(device)

    # --- the pieces of one run --------------------------------------------------------------

    def _reference(self, state: BoardState, backend: Backend) -> dict[str, str]:
        """How the board's worker finds the backend: edgecheck's own and plug-in packages travel in the
        worker package; a backend defined in a single file (a conftest) travels as that file."""
        reference = backend_reference(type(backend))
        if reference["module"].split(".")[0] != "edgecheck" and _package_root(reference["module"]) is None:
            if reference.get("file"):
                reference = {**reference, "file": state.store.send(Path(reference["file"]))}
        return reference

    @staticmethod
    def _roots(backend: Backend) -> tuple[str, ...]:
        root = _package_root(type(backend).__module__)
        return (root,) if root else ()

    def _code(self, state: BoardState, backend: Backend) -> str:
        return state.store.code(self._roots(backend))

    def _worker(self, state: BoardState, backend: Backend, fresh: bool) -> BoardWorker:
        code = self._code(state, backend)
        key = f"{state.board.name}|{code}"  # a plug-in's package changes the worker's path: its own worker
        worker = None if fresh else self._kept.get(key)
        if worker is not None and not worker.alive():
            worker.close()
            worker = None
        if worker is None:
            self._count += 1
            settings = WorkerSettings(self.settings.timeout_s, _board_memory_limit(state))
            worker = BoardWorker(state.board, state.link, state.store, settings, self.scratch,
                                 f"{state.board.name}-{self._count}", code)
            try:
                worker.start(f"worker on {state.board.name}", Path(state.board.python))
            except WorkerFailure:
                worker.kill()
                raise
            if not fresh:
                self._kept[key] = worker
        return worker

    def _request(self, state: BoardState, worker: BoardWorker, command: dict[str, Any], backend: Backend,
                 artifact: Path, timeout_s: float) -> dict[str, Any]:
        try:
            return worker.request(command, f"{backend.name} on board {state.board.name}", artifact, timeout_s)
        except WorkerFailure as exc:
            for key in [k for k, w in self._kept.items() if w is worker]:
                self._kept.pop(key, None)
            worker.kill()
            if exc.kind == "connection":
                state.lost(str(exc))
            raise

    def _check_backend(self, state: BoardState, backend: Backend) -> dict[str, str]:
        """Whether the board's Python runs this backend (its runtime installed there); its facts if so,
        else `NoBoard` (a skip with the board's reason). Asked once per board and backend."""
        key = (state.board.name, backend.name)
        if key not in self._available:
            worker = self._worker(state, backend, fresh=False)
            command = {"op": "availability", "backend": self._reference(state, backend),
                       "board_options": board_options(state)}
            self._available[key] = self._request(state, worker, command, backend, Path(state.board.python), 120.0)
        found = self._available[key]
        if not found.get("ok"):
            raise NoBoard(f"{backend.name} on board {state.board.name}",
                          f"{state.board.describe()} cannot run {backend.name}: {found.get('reason')}")
        return dict(found.get("facts") or {})

    def _lacks(self, state: BoardState, backend: Backend) -> str:
        """Why a board of the pool cannot run this backend ('' when it can): asked once per board and backend."""
        try:
            self._check_backend(state, backend)
        except NoBoard as exc:
            return exc.reason
        except BoardUnreachable as exc:
            state.lost(exc.detail)
            return f"unreachable: {exc.detail}"
        except (WorkerFailure, EdgecheckError) as exc:
            return f"its worker could not start: {exc}"
        return ""

    @staticmethod
    def where(state: BoardState) -> dict[str, str]:
        """The board's own identity beside its figures: its name, architecture, CPU and the signature its outputs
        and timings are compared by (a baseline from another board, or from the host, is not comparable)."""
        facts = state.facts or {}
        cpu = facts.get("cpu") if isinstance(facts.get("cpu"), dict) else {}
        return {"board": state.board.name, "board.machine": str(facts.get("machine") or "unknown"),
                "board.cpu": str(cpu.get("model") or "unknown"),
                # the board's hardware, then (after " | ") which board: boards of one CPU signature are compared
                "board.signature": f"board {cpu.get('machine_signature') or cpu.get('signature') or '?'} | "
                                   f"{state.board.name}"}

    def label(self, state: BoardState, backend: str, runtime: dict[str, str], before: dict | None = None,
              after: dict | None = None) -> str:
        """`rk3588 board rk3588-a (hostname, kernel, runtime and version, governor, temperatures)`."""
        facts = state.facts or {}
        parts = [str(facts.get("hostname") or "?"), f"kernel {facts.get('kernel') or '?'}"]
        if backend == "tensorrt" and runtime.get("tensorrt"):  # the runtime is TensorRT itself: named once
            parts.append(f"TensorRT {runtime['tensorrt']} (trtexec)")
            runtime = {k: v for k, v in runtime.items() if k != "tensorrt"}
        else:
            parts.append(runtime.get("runtime") or " ".join(v for v in (backend, runtime.get("version")) if v))
        if runtime.get("librknnrt"):  # the NPU runtime library's own version beside the Python package's
            parts.append(f"librknnrt {runtime['librknnrt']}")
        parts.extend(_jetson_parts(facts, runtime))
        governors = sorted(set(_governors(facts)))
        parts.append(f"governor {'/'.join(governors) if governors else 'unknown'}")
        if before is not None and after is not None:
            first, last = thermal_summary(before), thermal_summary(after)
            parts.append(first if first == last and not before.get("zones") else f"{first} before, {last} after")
        return f"{state.board.device} board {state.board.name} ({', '.join(parts)})"

    # --- jobs ---------------------------------------------------------------------------------

    def outputs(self, device: str, backend: Backend, artifact: Path, threads: int,
                inputs_file: Path, names: list[list[str]]) -> tuple[Outputs, dict[str, str]]:
        """Outputs of every feed on a board of `device` (its lock held shared), and the facts of where they
        were computed."""
        _single_file(artifact)
        with self.pool.lease(device, exclusive=False, what=f"running {artifact.name}",
                             unusable=lambda state: self._lacks(state, backend)) as lease:
            state = lease.state
            try:
                # one round trip says what is missing; then the worker package, the artifact and the inputs go
                _, (remote_artifact, remote_inputs) = state.store.prepare([artifact, inputs_file], self._roots(backend))
                runtime = self._check_backend(state, backend)
                self._count += 1
                remote_out = f"{state.store.job_folder()}/outputs-{self._count}.npz"
                worker = self._worker(state, backend, fresh=False)
                command = {"op": "outputs", "artifact": remote_artifact, "threads": threads, "inputs": remote_inputs,
                           "names": names, "outputs": remote_out, "suffixes": run_suffixes(backend),
                           "extra": {**backend.board_extra(artifact), **state.board.run_options()},
                           "board_options": board_options(state), "backend": self._reference(state, backend)}
                result = self._request(state, worker, command, backend, artifact, self.settings.timeout_s)
                local = self.scratch / f"outputs-{self._count}.npz"
                state.store.fetch(remote_out, local, self.settings.timeout_s)
            except BoardUnreachable as exc:
                state.lost(exc.detail)
                raise BoardRunError(f"{state.board.describe()} dropped off while running {artifact.name}: "
                                    f"{exc.detail}") from None
            runtime.update(result.get("facts") or {})
            per_feed = load_feeds(local, result["names"], prefix="o")
            local.unlink(missing_ok=True)
            return concat_outputs(per_feed), {"measured_on": self.label(state, backend.name, runtime),
                                              **self.where(state)}

    def measure(self, device: str, backend: Backend, artifact: Path, threads: int, feed: dict[str, np.ndarray],
                plan: TimingPlan) -> Measured:
        """Time and weigh one artifact on a board, in fresh workers, under the board's lock (exclusive for a
        judged timing), with the board's temperatures and clocks read before and after."""
        self._count += 1
        local_feed = self.scratch / f"feed-{self._count}.npz"
        names = save_feeds(local_feed, [feed])
        _single_file(artifact)
        with self.pool.lease(device, exclusive=plan.exclusive, what=f"timing {artifact.name}",
                             unusable=lambda state: self._lacks(state, backend)) as lease:
            state = lease.state
            try:
                _, (remote_artifact, remote_feed) = state.store.prepare([artifact, local_feed], self._roots(backend))
                runtime = self._check_backend(state, backend)
                job = state.store.job_folder()
                before = state.store.agent("thermal")
                results, rounds = [], []
                timing_s = self.settings.timeout_s + (plan.max_seconds or 0) + plan.warmup_s
                power = power_request(state.board)
                timeout = timing_s + state.board.power_idle_s + 10
                for index in range(plan.rounds):
                    if plan.rounds > 1:
                        progress.update(f"round {index + 1}/{plan.rounds}")
                    share = plan.samples // plan.rounds + (index < plan.samples % plan.rounds) if plan.samples else None
                    remote_samples = f"{job}/samples-{self._count}-{index}.npy"
                    command = {"op": "measure", "artifact": remote_artifact, "threads": threads,
                               "inputs": remote_feed, "names": names, "suffixes": run_suffixes(backend),
                               "warmup": {"runs": plan.warmup_runs, "seconds": plan.warmup_s},
                               "max_seconds": plan.max_seconds / plan.rounds if plan.max_seconds else None,
                               "samples": share, "samples_out": remote_samples,
                               "extra": {**backend.board_extra(artifact), **state.board.run_options()},
                               "native_timeout_s": timing_s, "power": power,
                               "board_options": board_options(state),
                               "backend": self._reference(state, backend)}
                    worker = self._worker(state, backend, fresh=True)
                    try:
                        results.append(self._request(state, worker, command, backend, artifact, timeout))
                    finally:
                        worker.close()
                    local = self.scratch / f"samples-{self._count}-{index}.npy"
                    state.store.fetch(remote_samples, local, self.settings.timeout_s)
                    rounds.append(np.load(local, allow_pickle=False))
                    local.unlink(missing_ok=True)
                    _still_held(lease, plan, artifact)
                after = state.store.agent("thermal")
                _still_held(lease, plan, artifact)
            except BoardUnreachable as exc:
                state.lost(exc.detail)
                raise BoardRunError(f"{state.board.describe()} dropped off while timing {artifact.name}: "
                                    f"{exc.detail}") from None
            waited = lease.waited_s
        local_feed.unlink(missing_ok=True)
        runtime.update(results[0].get("facts") or {})
        return measured_from(results, rounds, plan, waited, {
            "measured_on": self.label(state, backend.name, runtime, before, after), **self.where(state),
            "throttling": throttling(before, after), "runtime": runtime,
            "jetson": jetson_state(state.facts or {}, runtime)})

    def close(self) -> None:
        for worker in self._kept.values():
            worker.close()
        self._kept.clear()
        self.pool.close()


def _still_held(lease: Any, plan: TimingPlan, artifact: Path) -> None:
    """A judged timing's samples count only if the board's lock was held all along: a connection that dropped
    released it, and another run may have timed beside this one (never a pass on that)."""
    if plan.exclusive and not lease.held():
        lease.state.lost("the connection holding its timing lock closed")
        raise BoardRunError(f"{lease.state.board.describe()} lost its timing lock while timing {artifact.name}: the "
                            "connection that held it closed, so another run may have timed beside this one; the "
                            "samples are not used")


def _single_file(artifact: Path) -> None:
    """Only the artifact's file is sent: an ONNX model whose weights live in external data files beside it
    cannot run on a board as it is; said before any board is used."""
    if artifact.suffix != ".onnx":
        return
    from edgecheck.model import external_data_files

    try:
        sidecars = external_data_files(artifact)
    except Exception:
        return  # unreadable here: the worker says so with the runtime's words
    if sidecars:
        raise BoardRunError(f"{artifact.name} keeps its weights in {len(sidecars)} external data file(s) "
                            f"({', '.join(p.name for p in sidecars[:3])}); a board run sends the model as one file: "
                            "save it with its weights inside (onnx.save(model, path, save_as_external_data=False), "
                            "for a model under 2 GB)")


def board_options(state: BoardState) -> dict[str, str]:
    """What the board's worker puts in its environment (EDGECHECK_<NAME>): the boards file's tool paths, this
    session's name (a TensorRT build that failed is not tried again in it) and the store (where the board keeps
    the trtexec versions it read, so a fresh worker does not run `trtexec --help` again)."""
    return {**state.board.run_options(), "session": state.store.session, "store": state.board.store}


def power_request(board: Board) -> dict[str, Any]:
    """What a board's worker samples power from while timing: the boards file's meter command, else the rail readers
    of the `edgecheck.power` entry point group (a Jetson's INA3221), which find the rails there or say there are none
    (no idle wait then: the answer says why there is no figure)."""
    base = {"idle_s": board.power_idle_s, "interval_s": POWER_INTERVAL_S}
    if board.power_command:
        return {**base, "command": board.power_command}
    return {**base, "sensors": power_sensors()}


@functools.lru_cache(maxsize=None)
def _power_sensors() -> tuple[str, ...]:
    from edgecheck.entrypoints import POWER, load_group

    return tuple(getattr(found.value, "__name__", "") for found in load_group(POWER)
                 if not found.error and getattr(found.value, "__name__", ""))


def power_sensors() -> list[str]:
    """The modules (by name, imported on the board) that read a board's power rails: standard library only."""
    return list(_power_sensors())


_CLOCKS = {"true": "locked (jetson_clocks)", "locked": "locked (jetson_clocks)", "yes": "locked (jetson_clocks)",
           "false": "not locked", "unlocked": "not locked", "no": "not locked"}


def jetson_state(facts: dict[str, Any], runtime: dict[str, str]) -> dict[str, str]:
    """A Jetson's JetPack, L4T, TensorRT, power mode and clocks, from the runtime's facts (a TensorRT backend's
    board_facts: jetpack, tensorrt, nvpmodel, clocks) or the board's own (L4T and nvpmodel from the probe); {} for
    a board that is no Jetson. The power check reads power_mode and clocks from here."""
    jetson = facts.get("jetson") if isinstance(facts.get("jetson"), dict) else {}
    mode = runtime.get("power_mode") or runtime.get("nvpmodel")
    if not mode and isinstance(jetson.get("nvpmodel"), dict):
        mode = jetson["nvpmodel"].get("name")
    if not (jetson or mode or runtime.get("jetpack") or runtime.get("tensorrt") or runtime.get("clocks")):
        return {}
    state = {"jetpack": runtime.get("jetpack") or "", "l4t": str(jetson.get("l4t") or ""),
             "tensorrt": runtime.get("tensorrt") or "", "power_mode": str(mode or ""),
             "clocks": str(runtime.get("clocks") or "").strip()}
    return {k: v for k, v in state.items() if v and v.lower() not in ("none", "unknown")}


def _jetson_parts(facts: dict[str, Any], runtime: dict[str, str]) -> list[str]:
    """The label's words for a Jetson: they change a figure several-fold."""
    state = jetson_state(facts, runtime)
    if not state:
        return []
    jetpack = state.get("jetpack") or "unknown"
    parts = [f"JetPack {jetpack}" + (f" (L4T {state['l4t']})" if state.get("l4t") and "L4T" not in jetpack else "")]
    if state.get("tensorrt"):
        parts.append(f"TensorRT {state['tensorrt']}")
    parts.append(f"power mode {state.get('power_mode') or 'unknown'}")
    clocks = state.get("clocks", "")
    parts.append(f"clocks {_CLOCKS.get(clocks.lower(), clocks or 'unknown')}")
    return parts


def _governors(facts: dict[str, Any]) -> list[str]:
    found = facts.get("governors") or facts.get("governor") or {}
    if isinstance(found, dict):
        return [str(v) for v in found.values() if v]
    if isinstance(found, list):
        return [str(v) for v in found if v]
    return [str(found)] if found else []


def _board_memory_limit(state: BoardState) -> int | None:
    """Half the board's memory, as a local worker gets half of this machine's."""
    memory = (state.facts or {}).get("memory") or {}
    total = memory.get("total_bytes") if isinstance(memory, dict) else None
    return int(total / 2 / 1048576) if isinstance(total, (int, float)) and total > 0 else None
