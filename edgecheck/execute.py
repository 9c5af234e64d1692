"""Runs planned checks: artifact → outputs on a backend → metrics → verdict.

One `Executor` lives for a pytest session (per xdist worker) and remembers what it already
computed — model facts, inputs, the reference outputs, each artifact's outputs — so the three
checks of one artifact run the model once. Artifacts, and the outputs of deterministic backends, are
also kept in the content-addressed cache across sessions. The reference is the original model on
ONNX Runtime FP32 with one thread.
"""

from __future__ import annotations

import functools
import hashlib
import platform
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgecheck import progress
from edgecheck.backends import Backend, check_available
from edgecheck.checks.base import Check, get_check
from edgecheck.checks.result import CheckResult
from edgecheck.artifacts import MadeArtifact, make_artifact
from edgecheck.cache import ArtifactCache, content_key
from edgecheck.compress import ORIGINAL
from edgecheck.devices import cpu_model
from edgecheck.data import (InputSet, evaluation_set, has_fixed_batch, layout_of, parity_set,
                            prepare_calibration)
from edgecheck.errors import BackendUnavailable, CannotJudge, RecipeError
from edgecheck.measure.runs import Measured, ModelRuns, TimingPlan, single_input
from edgecheck.analysis import static
from edgecheck.formats import inspect_model_cached
from edgecheck.model import ModelInfo
from edgecheck.plan import PlannedCheck
from edgecheck.processes import available_memory_bytes
from edgecheck.spec import LoadedSpec, RecipeStep
from edgecheck.spec.schema import CANDIDATE
from edgecheck.static_checks import StaticChecks
from edgecheck.worker.client import WorkerPool

if TYPE_CHECKING:  # boards in the loop are imported where a lab has some (edgecheck.session)
    from edgecheck.boards.runs import BoardRuns

REFERENCE_THREADS = 1


def reference_backend(model: Path) -> str:
    """Where the original model runs for reference outputs: the backend its format names, else the one
    that says it gives that format's reference (ONNX Runtime FP32 for an ONNX model; a .tflite model is
    its own reference, on LiteRT). `BackendUnavailable` where none is installed: never another format's."""
    from edgecheck.backends.registry import broken_backends, reference_backend_of
    from edgecheck.formats import format_of

    name = reference_backend_of(model)
    if name:
        return name
    found = format_of(model)
    broken = "; ".join(f"{b}: {why}" for b, why in broken_backends().items())
    raise BackendUnavailable(f"reference of {found.name}", f"no installed backend gives the reference outputs of "
                             f"{found.suffix} models" + (f" (plugins that failed to load: {broken})" if broken else ""))


Outputs = dict[str, np.ndarray]


def inputs_fingerprint(inputs: InputSet) -> str:
    """SHA-256 of the feeds' names, types, shapes and bytes: the inputs part of an outputs key."""
    digest = hashlib.sha256()
    for feed in inputs.feeds:
        for name in sorted(feed):
            array = np.ascontiguousarray(feed[name])
            digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
            digest.update(array.tobytes())
    return digest.hexdigest()


@functools.lru_cache(maxsize=1)
def machine_signature() -> str:
    """The CPU and its instruction-set flags: runtimes pick kernels by them (AVX2, VNNI, ...), so
    outputs cached on one machine are never served on another."""
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags = line
                break
    except OSError:
        pass
    return f"{host_description()} {platform.system()} {hashlib.sha256(flags.encode()).hexdigest()[:16]}"


def _hardware(place: str) -> str:
    """A place's hardware: a board's CPU signature without its name (`board SIG | NAME`), the host's signature."""
    return place.split(" | ")[0]


def _place_text(place: str) -> str:
    hardware, _, board = place.partition(" | ")
    return f"board {board} ({hardware})" if board else hardware


def _threads_text(threads: int, takes_threads: bool) -> tuple[str, str]:
    """The thread count as the runtime fact says it ("2 threads") and as the threads fact does ("2"); for a runtime
    that takes no thread setting (TensorRT), both say so rather than show the spec's count beside it."""
    if not takes_threads:
        return "no thread setting", "none (the runtime takes no thread setting)"
    return f"{threads} thread{'s' if threads != 1 else ''}", str(threads)


def host_description() -> str:
    return f"{platform.machine()} {cpu_model() or ''}".strip()


def host_device() -> str:
    """The name of this machine's timing lock: timings on it never overlap."""
    return f"host {machine_signature()}"


def cpu_governor() -> str | None:
    """The CPU frequency governor ('performance' gives steadier timings than 'powersave'), if readable."""
    try:
        return Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor").read_text().strip() or None
    except OSError:
        return None


# (baseline name, its figures for this check or None, where they were measured: a machine signature or None)
Baseline = Callable[[PlannedCheck], tuple[str, Mapping[str, float] | None, str | None] | None]


class Executor:
    def __init__(self, cache: ArtifactCache | None = None, runs: ModelRuns | None = None,
                 baseline: Baseline | None = None, ops_dirs: list[Path] | None = None,
                 boards: BoardRuns | None = None):
        """`baseline(planned)` gives (baseline name, its figures for this check or None, where they were
        measured: a place as `env.machine` writes it, or None), or None when no baseline is compared against. `ops_dirs` are
        project folders of operator tables beside the built-in ones. `boards` runs a device target's
        artifacts on a board of that device, where the lab has one."""
        self.static = static.StaticAnalysis(ops_dirs or [])
        self.cache = cache if cache is not None else ArtifactCache(None)
        self.static_checks = StaticChecks(self.static, self.cache.records, lambda path: self.model_info(path).sha256)
        self.runs = runs if runs is not None else ModelRuns(WorkerPool(), host_device())
        self.baseline = baseline
        self.boards = boards
        # where a board run happened: by outputs key, by (spec, artifact, backend, device, "outputs"), and by the
        # (spec, item) whose figures a board's timing gave
        self._placed: dict[tuple, dict[str, str]] = {}
        self._measured: dict[tuple, Measured] = {}
        self._models: dict[Path, ModelInfo] = {}
        self._inputs: dict[tuple[Path, str], InputSet] = {}
        self._outputs: dict[tuple, tuple[Outputs, bool]] = {}
        self._fingerprints: dict[int, tuple[InputSet, str]] = {}  # by id, the set kept so its id stays its own
        self._artifacts: dict[tuple[Path, str], MadeArtifact | RecipeError] = {}
        self._backends: dict[str, Backend | BackendUnavailable] = {}
        self._serves: dict[tuple[str, str, str], str] = {}  # (artifact sha, backend, device): why not, or ''
        self._memo_locks: dict[tuple, threading.Lock] = {}  # one per key of _models and _inputs: computed once
        self._memo_guard = threading.Lock()  # while a reference runs beside an artifact's making
        self._beside: ThreadPoolExecutor | None = None  # where it runs (artifact_with_reference)

    def close(self) -> None:
        """Stop the workers and remove scratch artifacts (the cache itself stays)."""
        if self._beside is not None:  # first: a reference still running (after Ctrl-C) ends with its worker, below
            self._beside.shutdown(wait=False, cancel_futures=True)
            self._beside = None
        self.runs.workers.close()
        if self.boards is not None:
            self.boards.close()
        self.cache.close()

    def _once(self, memo: dict, key: Any, compute: Callable[[], Any]) -> Any:
        """`memo[key]`, computed once even when two threads ask at once (artifact_with_reference)."""
        if key in memo:
            return memo[key]
        with self._memo_guard:
            lock = self._memo_locks.setdefault((id(memo), key), threading.Lock())
        with lock:
            if key not in memo:
                memo[key] = compute()
            return memo[key]

    def model_info(self, path: Path) -> ModelInfo:
        # by content: no onnx when warm
        return self._once(self._models, path, lambda: inspect_model_cached(path, self.cache.records))

    def on_board(self, target: object | None) -> bool:
        """Whether a target's runs go to a board of its device (the lab's boards file names one)."""
        return (target is not None and self.boards is not None and not getattr(target, "is_host", True)
                and self.boards.serves(getattr(target, "name", "")))

    def measures_on_board(self, planned: PlannedCheck) -> bool:
        """Whether a board of the target's device runs this check's artifact: the lab has one, and the backend
        runs the artifact's format (rknn reads an .onnx artifact for its estimate, it runs only .rknn files)."""
        if not self.on_board(planned.target):
            return False
        from edgecheck.backends.registry import backend_suffixes

        artifact = self.artifact(planned.spec, planned.recipe).artifact.path
        return artifact.suffix in backend_suffixes(planned.backend)

    def backend(self, name: str, target: object | None = None) -> Backend:
        """The backend if it can run here; raises `BackendUnavailable` (remembered) if not. For a target served
        by a board, the backend whether or not it runs here: the board says whether it runs there."""
        if self.on_board(target):
            from edgecheck.backends.registry import get_backend

            return get_backend(name)
        if name not in self._backends:
            try:
                self._backends[name] = check_available(name)
            except BackendUnavailable as exc:
                self._backends[name] = exc
        found = self._backends[name]
        if isinstance(found, BackendUnavailable):
            raise found
        return found

    def _runs_here(self, name: str) -> bool:
        try:
            self.backend(name)
        except BackendUnavailable:
            return False
        return True

    def device_serves(self, planned: PlannedCheck) -> None:
        """`CannotJudge` (a skip; a failure under --edge-strict) where the target device cannot run the entry's
        artifact on its backend at all, whatever machine would run it: a build setting that needs a precision or
        an accelerator the device's profile lacks (`Backend.cannot_serve`). Asked before any board or build."""
        made = self.artifact(planned.spec, planned.recipe)
        path = made.artifact.path
        from edgecheck.backends.registry import backend_suffixes, get_backend

        if path.suffix not in backend_suffixes(planned.backend):
            return  # a graph the backend only reads (its table and cost model): nothing is built from it
        key = (self.model_info(path).sha256, planned.backend, planned.target.name)
        if key not in self._serves:
            try:
                backend = get_backend(planned.backend)
            except BackendUnavailable:
                self._serves[key] = ""  # said by the backend's own skip
            else:
                try:
                    self._serves[key] = backend.cannot_serve(path, planned.target)
                except Exception as exc:  # a plug-in's bug must not pass for "it serves": say it, and skip
                    self._serves[key] = (f"{planned.backend} could not say whether {planned.target.name} serves "
                                         f"{path.name}: {type(exc).__name__}: {exc}")
        reason = self._serves[key]
        if reason:
            raise CannotJudge(f"{planned.target.name} cannot run entry {planned.recipe!r} ({planned.steps_text}) on "
                              f"{planned.backend}: {reason}")

    def inputs(self, loaded: LoadedSpec, kind: str) -> InputSet:
        def read() -> InputSet:
            model = self.model_info(loaded.spec.model.path)
            return evaluation_set(loaded, model) if kind == "evaluation" else parity_set(loaded, model)

        return self._once(self._inputs, (loaded.path, kind), read)

    def artifact(self, loaded: LoadedSpec, entry: str, recipe_threads: int | None = None) -> MadeArtifact:
        """The artifact of a compress entry (by name), made once per session and cached by content. `recipe_threads`:
        those of a runtime session a recipe runs itself (ModelRuns.compress), where not the session's setting."""
        key = (loaded.path, entry)
        if key not in self._artifacts:
            spec = loaded.spec
            if entry == CANDIDATE:
                steps: tuple[RecipeStep, ...] = (RecipeStep(recipe=CANDIDATE),)
            elif entry == ORIGINAL:
                steps = ()
            else:
                steps = next(e.steps for e in spec.compress if e.name == entry)  # the plan named it
            candidate = spec.candidate.path if spec.candidate is not None else None
            try:
                # the spec's batch axes and fixed inputs travel with the calibration data to the recipe
                calibration = prepare_calibration(loaded, self.model_info(spec.model.path),
                                                  self.runs.workers.scratch / "data")
                compress = (self.runs.compress if recipe_threads is None
                            else functools.partial(self.runs.compress, threads=recipe_threads))
                self._artifacts[key] = make_artifact(spec.model.path, steps, calibration, self.cache,
                                                     candidate, lambda path: self.model_info(path).sha256,
                                                     compress, label=entry)
            except RecipeError as exc:  # remembered: the entry's other checks fail the same way, fast
                self._artifacts[key] = exc
        found = self._artifacts[key]
        if isinstance(found, RecipeError):
            raise found
        return found

    def outputs(self, loaded: LoadedSpec, artifact: Path, backend: str, threads: int,
                kind: str, target: object | None = None) -> tuple[Outputs, bool]:
        """Outputs of an artifact on a backend, and whether they came from the cache (only a
        deterministic backend's outputs are cached: same bytes, runtime, threads and inputs). With a
        `target` a board serves, they are the board's (never cached: each run asks the board)."""
        found = self.backend(backend, target)
        inputs = self.inputs(loaded, kind)
        sha = self.model_info(artifact).sha256
        model = loaded.spec.model.path  # the reference: the original on its backend at one thread (else its own run)
        is_reference = artifact == model and backend == reference_backend(model) and threads == REFERENCE_THREADS
        what = (f"{'reference ' if is_reference else ''}outputs of {artifact.name} on {backend}, "
                f"{kind} inputs")
        if self.on_board(target) and self.boards is not None:
            device = getattr(target, "name")
            key = (loaded.path, sha, backend, threads, kind, "board", device)
            if key not in self._outputs:
                path, names = self.runs.inputs_file(inputs)
                with progress.step(f"{what} on a {device} board"):
                    outputs, where = self.boards.outputs(device, found, artifact, threads, path, names)
                self._outputs[key] = (outputs, False)
                self._placed[key] = where
            # where this spec's outputs of this artifact came from (never another spec's run of the same model)
            self._placed[(loaded.path, sha, backend, device, "outputs")] = self._placed[key]
            return self._outputs[key]
        key = (loaded.path, sha, backend, threads, kind)
        if key not in self._outputs:
            def compute(into: Path | None) -> Outputs:
                with progress.step(what):  # only outputs the cache does not have are computed, and said
                    return self.runs.outputs(found, artifact, threads, inputs, into)

            if found.deterministic:
                # layout: the entry's files (one .npy per output since outputs are stored as a worker writes them)
                cache_key = content_key(kind="outputs", layout="npy", model=sha, backend=backend,
                                        runtime=found.facts(), threads=threads, inputs=self._fingerprint(inputs),
                                        machine=machine_signature())
                self._outputs[key] = self.cache.outputs(cache_key, compute)
            else:
                self._outputs[key] = (compute(None), False)
        return self._outputs[key]

    def _fingerprint(self, inputs: InputSet) -> str:
        """The inputs' fingerprint, hashed once per input set (every output of a spec's checks keys on it)."""
        known = self._fingerprints.get(id(inputs))
        if known is None or known[0] is not inputs:
            known = (inputs, inputs_fingerprint(inputs))
            self._fingerprints[id(inputs)] = known
        return known[1]

    def artifact_with_reference(self, loaded: LoadedSpec, entry: str, kind: str) -> tuple[MadeArtifact, Outputs]:
        """An entry's artifact and the spec's reference outputs on `kind` inputs. Where this session may keep two
        cores busy, the memory holds both jobs and neither result is known yet, the reference runs in a second worker
        while the artifact is made: the reference runs on one thread, and the recipe's own runtime session (a
        calibration) gets the other cores, so neither waits for the other. The artifact's error still comes first,
        once the reference (kept for the spec's other entries) is done; Ctrl-C does not wait for it."""
        model = loaded.spec.model.path
        try:
            known = (loaded.path, self.model_info(model).sha256, reference_backend(model), REFERENCE_THREADS,
                     kind) in self._outputs
        except Exception:  # said in its place, after the artifact's own error, by the one-after-the-other path
            known = True
        cores = self.runs.workers.settings.cores
        if known or entry == ORIGINAL or (loaded.path, entry) in self._artifacts or not self._room_beside(model):
            made = self.artifact(loaded, entry)
            return made, self.reference(loaded, kind)
        if self._beside is None:  # one thread for the session's life
            self._beside = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edgecheck-reference")
        pending = self._beside.submit(self.reference, loaded, kind)
        try:
            made = self.artifact(loaded, entry, recipe_threads=max(1, cores - 1))
        except Exception:
            wait([pending])
            raise
        except BaseException:  # Ctrl-C, a timeout plug-in's exit: the session's close stops the reference's worker
            pending.cancel()
            raise
        wait([pending])
        return made, pending.result()  # the reference's error, after the artifact's own

    def _room_beside(self, model: Path) -> bool:
        """Two cores for this session, and memory for two jobs on the model at once: each may hold a few copies of
        its weights (a session, a quantizer's float and integer graphs), so eight times the model's size must be
        available now; where that cannot be read, one job at a time."""
        if self.runs.workers.settings.cores < 2:
            return False
        available = available_memory_bytes()
        return available is not None and 8 * self.model_info(model).size_bytes < available

    def reference(self, loaded: LoadedSpec, kind: str) -> Outputs:
        """The original model's outputs (the teacher's, when the spec names a candidate)."""
        model = loaded.spec.model.path
        return self.outputs(loaded, model, reference_backend(model), REFERENCE_THREADS, kind)[0]

    def run(self, planned: PlannedCheck) -> CheckResult:
        """Measure and judge one planned check through its kind. Raises `BackendUnavailable` when it cannot
        run here, `CannotJudge` when nothing here can say."""
        check = get_check(planned.check)
        board = self.on_board(planned.target)
        if not board and not self._runs_here(planned.backend):
            # the recipe's own error or refusal before the backend's unavailability (a RecipeError fails, a
            # RecipeNotApplicable skips, each in its own words): a .trtjob the recipe refused says so with no board
            self.artifact(planned.spec, planned.recipe)
            self.device_serves(planned)
        static = check.is_static(planned.budgets, planned.target) and not self.measures_on_board(planned)
        if board or static:  # the artifact is made (or needed) before anything else: nothing is built for nothing
            self.device_serves(planned)
        # a static check reads the artifact only: it needs neither the backend nor its device
        backend = None if static else self.backend(planned.backend, planned.target)
        result = check.run(planned, self)
        # a backend that runs here was not kept from a check that says first why it cannot judge (a simulator's
        # latency) by making the artifact: the device is asked now, the artifact made, its answer remembered
        self.device_serves(planned)
        # facts are text (JUnit properties, the results document): a plug-in's number is written as it prints
        result.facts = {str(key): str(value) for key, value in result.facts.items()}
        if not result.problems and not result.doubts and not any(m.judged for m in result.measurements):
            # a budget was asked for and no figure was held to it: never a pass (a plug-in's bug, most likely)
            result.problems.append(f"the {planned.check} check judged no figure against its budget "
                                   f"({len(result.measurements)} figures measured, none bounded): nothing to pass")
        made = self.artifact(planned.spec, planned.recipe)  # made already: the check asked for it
        if check.uses_outputs and not result.passed and backend is not None:
            try:  # where it goes wrong, where the backend can tell; never at the cost of the verdict
                result.notes.extend(backend.diagnose(made.artifact.path))
            except Exception as exc:
                result.notes.append(f"{backend.name} could not say where it goes wrong: {type(exc).__name__}: {exc}")
        facts = self._facts(planned, check, backend, planned.threads, made)
        if self.baseline is not None and not static:
            found = self.baseline(planned)
            if found is not None:
                name, figures, place = found
                # comparable where measured on the same hardware: this host, or a board of the same CPU signature
                # (a pool's boards alike), never a board's figure against the host's or another CPU's
                here = facts.get("env.machine", machine_signature())
                comparable = (_hardware(place) == _hardware(here)) if place else "board" not in facts
                check.compare_with_baseline(result, figures, name, planned, comparable)
                if figures is not None and place and place != here:
                    result.notes.append(f"baseline {name!r} was measured on {_place_text(place)}; this on "
                                        f"{_place_text(here)}" + ("" if comparable else ": not compared"))
        for key, value in facts.items():
            result.facts.setdefault(key, value)  # a check's own (measured_on of a stand-in figure) stays
        return result

    def _board_facts(self, planned: PlannedCheck, threads: int, made: MadeArtifact,
                     placed: dict[str, str], takes_threads: bool = True) -> dict[str, str]:
        """The facts of a check run on a board: where (the board's own label), the artifact, the recipe."""
        info = self.model_info(made.artifact.path)
        original = self.model_info(planned.spec.spec.model.path)
        in_runtime, threads_fact = _threads_text(threads, takes_threads)
        facts = {**placed, "host": f"{host_description()} (running pytest; the figures are the board's)",
                 "env.machine": placed.get("board.signature", f"board {placed['board']}"),
                 "runtime": f"{planned.backend} on board {placed['board']}, {in_runtime}",
                 "artifact": made.artifact.path.name, "artifact.size_bytes": str(info.size_bytes),
                 "artifact.parameters": str(info.parameters),
                 "artifact.size_ratio": f"{original.size_bytes / info.size_bytes:.3f}" if info.size_bytes else "inf",
                 "threads": threads_fact}
        arch = planned.target.cpu.arch
        if arch and placed.get("board.machine") not in (None, "unknown", arch):
            facts["note"] = (f"board {placed['board']} is {placed['board.machine']}, not the {arch} of a "
                             f"{planned.target.name}: these figures are that board's, not a {planned.target.name}'s")
        if get_check(planned.check).uses_outputs:
            model = planned.spec.spec.model.path
            facts["reference"] = (f"{model.name} (the original model) on {reference_backend(model)} FP32, "
                                  f"{REFERENCE_THREADS} thread, on this host")
        if planned.recipe != ORIGINAL:
            facts["recipe.steps"] = planned.steps_text
            facts.update({f"recipe.{k}": v for k, v in made.notes.items()})
        return facts

    def input_shapes(self, planned: PlannedCheck) -> dict[str, tuple[int, ...]]:
        """The spec's input shapes; for a dynamic input it leaves open, the shape a measurement would run
        (one sample of the parity data), so an estimate is of the same work as a measurement."""
        shapes = {name: tuple(d.shape) for name, d in planned.spec.spec.inputs.items() if d.shape}
        model = self.model_info(planned.spec.spec.model.path)
        if any(t.dynamic_dims and t.name not in shapes for t in model.inputs):
            whole = has_fixed_batch(model, layout_of(planned.spec, model))  # along each input's batch axis
            feed = single_input(self.inputs(planned.spec, "parity"), whole)
            for name, value in feed.items():
                shapes.setdefault(name, tuple(value.shape))
        return shapes

    def static_ops(self, planned: PlannedCheck, artifact: Path) -> CheckResult:
        """The ops check by the artifact format's authority (a table, a compiler's placement)."""
        return self.static_checks.ops(planned, artifact, lambda: self.input_shapes(planned),
                                      lambda: self._runtime_table(planned))

    def placed_ops(self, planned: PlannedCheck, artifact: Path, reported: Mapping[str, Any], where: str) -> CheckResult:
        """The ops check on what the board's run reported of where each layer ran (its format's judge reads it)."""
        return self.static_checks.placed_ops(planned, artifact, lambda: self.input_shapes(planned), reported, where)

    def static_estimate(self, planned: PlannedCheck, artifact: Path) -> CheckResult:
        """Latency or memory of a device target judged on its format's estimate."""
        return self.static_checks.estimate(planned, artifact, lambda: self.input_shapes(planned))

    def _runtime_table(self, planned: PlannedCheck):
        """The runtime's own operator table where it is the device's runtime: the host's installed one."""
        if not planned.target.is_host:
            return None
        try:
            return self.backend(planned.backend).op_table()
        except BackendUnavailable:
            return None

    @staticmethod
    def _measured_here(planned: PlannedCheck, source: str) -> bool:
        """A figure for this target may come from this host: it is the host, or the spec accepts a stand-in."""
        return planned.target.is_host or source == "host"

    def where_measured(self, planned: PlannedCheck) -> str:
        """Where a timing run's figure for this check comes from; `CannotJudge` for a device we cannot
        measure on. Which budget says `source:` is the check's own field."""
        check = get_check(planned.check)
        fields = [name for name in check.budgets if getattr(planned.budgets, name, None) is not None]
        field = fields[0] if fields else planned.check
        budget = getattr(planned.budgets, field, None)
        target = planned.target
        if check.is_static(planned.budgets, target) and not self.measures_on_board(planned):
            return "estimate"
        # a budget section with `source:` can take a host stand-in or an estimate; a plain number cannot
        sourced = budget is not None and "source" in getattr(type(budget), "model_fields", {})
        if not self.measures_on_board(planned) and not self.backend(planned.backend).measures_time:
            raise CannotJudge(f"cannot judge {target.name} {planned.check} with {planned.backend} here: it runs on a "
                              f"simulator, whose {planned.check} says nothing of a device's"
                              + ("; use source: estimate for the compiler's estimate" if sourced else ""))
        if target.is_host:
            return "host"
        if self.measures_on_board(planned) and self.boards is not None:
            return f"{target.name} board ({', '.join(self.boards.names(target.name))})"
        if sourced and self._measured_here(planned, budget.source):
            return f"host, as a stand-in for {target.name} (the spec's source: host)"
        where = (f"cannot judge {target.name} {planned.check} here: no {target.name} to measure on (this host is "
                 f"{host_description()}, and a host figure is not a {target.name} figure)")
        if not sourced:
            raise CannotJudge(f"{where}; {field} is judged only on a figure measured on the device")
        raise CannotJudge(f"{where}; add source: host to {field} to accept this host's as a stand-in"
                          + check.estimate_hint)

    def measured(self, planned: PlannedCheck, backend: Backend, artifact: Path,
                 plan: TimingPlan | None = None) -> Measured:
        """One timing-and-memory job per artifact, backend, threads, timing plan and place (this host or a board
        of the target). Without a `plan` of its own, a check of an entry that also has a latency budget reuses
        the latency run (judged timing: the samples its percentiles need, the device's lock held alone) where
        that run is judged here too; else a short run (5 samples)."""
        if plan is None:
            latency = getattr(planned.budgets, "latency_ms", None)
            # another check shares the latency run only where that run will be judged here too
            timed = latency is not None and (planned.check == "latency" or self._measured_here(planned, latency.source))
            plan = TimingPlan.for_latency(latency) if timed and latency is not None else TimingPlan()
        model = self.model_info(artifact)
        board = self.measures_on_board(planned)
        key = (model.sha256, backend.name, planned.threads, plan, planned.target.name if board else "host")
        if key not in self._measured:
            whole = has_fixed_batch(model, layout_of(planned.spec, model))  # along each input's batch axis
            feed = single_input(self.inputs(planned.spec, "parity"), whole)
            if board and self.boards is not None:
                with progress.step(f"timing {artifact.name} on {backend.name} on a {planned.target.name} board"):
                    self._measured[key] = self.boards.measure(planned.target.name, backend, artifact,
                                                              planned.threads, feed, plan)
            else:
                with progress.step(f"timing {artifact.name} on {backend.name}"):
                    self._measured[key] = self.runs.measure(backend, artifact, planned.threads, feed, plan)
        if board:  # this check's figures are that measurement's: its board, whichever check asked first
            self._placed[(planned.spec.path, planned.id)] = {
                k: v for k, v in self._measured[key].extra.items() if k == "measured_on" or k.startswith("board")}
        return self._measured[key]

    def _facts(self, planned: PlannedCheck, check: Check, backend: Backend | None, threads: int,
               made: MadeArtifact) -> dict[str, str]:
        # where the figure came from: a board's outputs for parity and accuracy, its timing run for latency and
        # memory; a file's size (or a static check) is read here, whatever ran on a board before it
        if check.uses_outputs:
            placed = self._placed.get((planned.spec.path, self.model_info(made.artifact.path).sha256, planned.backend,
                                       planned.target.name, "outputs"))
        else:
            placed = self._placed.get((planned.spec.path, planned.id))
        if backend is not None and placed is not None:
            return self._board_facts(planned, threads, made, placed, backend.takes_threads)
        versions = backend.facts() if backend is not None else {}
        if backend is not None:
            runtime = " ".join(v for v in (backend.name, versions.get("version") or versions.get("runtime"),
                                           versions.get("provider")) if v)
        else:
            runtime = f"{planned.backend} (not run: the check reads the artifact)"
        spec = planned.spec.spec
        info, original = self.model_info(made.artifact.path), self.model_info(spec.model.path)
        in_runtime, threads_fact = _threads_text(threads, backend is None or backend.takes_threads)
        facts = {
            "measured_on": versions.get("runs_on", "host"),
            "host": host_description(),
            "runtime": f"{runtime}, {in_runtime}",
            "artifact": made.artifact.path.name,
            "artifact.size_bytes": str(info.size_bytes),
            "artifact.parameters": str(info.parameters),
            "artifact.size_ratio": f"{original.size_bytes / info.size_bytes:.3f}" if info.size_bytes else "inf",
        }
        if check.uses_outputs:
            facts["reference"] = (f"{spec.model.path.name} (the original model) on {reference_backend(spec.model.path)} "
                                  f"FP32, {REFERENCE_THREADS} thread")
        if planned.recipe != ORIGINAL:
            facts["recipe.steps"] = planned.steps_text
            facts.update({f"recipe.{k}": v for k, v in made.notes.items()})
            if self.cache.enabled and made.steps:
                facts["cache"] = f"{made.cached_steps} of {made.steps} steps from the cache"
        facts["threads"] = threads_fact
        facts["env.machine"] = machine_signature()
        facts["env.python"] = platform.python_version()
        governor = cpu_governor()
        if governor:
            facts["env.governor"] = governor
        if check.device_dependent and not planned.target.is_host:
            simulated = "runs_on" in versions and check.uses_outputs  # a file's size is the file's anywhere
            where = f"on {versions['runs_on']}" if simulated else f"on this host with {planned.backend}"
            facts["note"] = f"measured {where}, not on a {planned.target.name} board"
        return facts
