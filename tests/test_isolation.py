"""Process isolation: every model load-and-run happens in a worker process, so a runtime that
segfaults, aborts, hangs, allocates without end or exits without answering fails its own check with
its own message, the next check still runs, no process outlives the session, and the JUnit XML
still parses. Also the worker pool driven directly: errors that are data, crashes that discard the
kept worker, a worker that cannot start, and a worker under another Python that has only numpy.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import os
import signal
import sys
import textwrap
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from edgecheck.errors import BackendError
from edgecheck.worker.client import WorkerFailure, WorkerPool, WorkerSettings
from edgecheck.worker.protocol import load_feeds, save_feeds
from conftest import HANG_GUARD_S, make_classifier

MARKER_VAR = "EDGECHECK_ISOLATION_MARKER"
CHILD_PIDFILE_VAR = "EDGECHECK_ISOLATION_CHILD_PIDFILE"

# Backends that misbehave inside the worker, registered only by the test project's conftest.py.
# Not deterministic, so no output of theirs could ever come from the cache instead of a run.
MISBEHAVING_BACKENDS = '''
import os
import signal
import subprocess
import time

import numpy as np

from edgecheck.backends import register_backend
from edgecheck.vendors.onnxruntime.backend import OnnxRuntimeBackend, OnnxRuntimeRunner
from edgecheck.backends.registry import unregister_backend


class Misbehaving(OnnxRuntimeBackend):
    deterministic = False

    def misbehave(self):
        raise NotImplementedError

    def _load_impl(self, artifact, options):
        self.misbehave()
        return super()._load_impl(artifact, options)


def hang():
    """Longer than any limit a test gives, bounded all the same: a worker never killed gets on with
    its job and passes, and the test fails on its outcome instead of waiting forever."""
    time.sleep(300)


@register_backend
class Segv(Misbehaving):
    name = "segv"

    def misbehave(self):
        os.kill(os.getpid(), signal.SIGSEGV)
        hang()  # the signal is delivered at once; never reached


@register_backend
class Abort(Misbehaving):
    name = "abort"

    def misbehave(self):
        os.abort()


@register_backend
class Hang(Misbehaving):
    name = "hang"

    def misbehave(self):
        hang()


@register_backend
class Hog(Misbehaving):
    name = "hog"

    def misbehave(self):
        hoard = []
        while True:  # 256 MiB more each time, reserved at once (RLIMIT_DATA counts it), not written: the
            hoard.append(np.empty(2**25))  # limit is met in milliseconds on any machine, never the job's clock


class VanishingRunner(OnnxRuntimeRunner):
    def _infer_impl(self, feed):
        os._exit(0)  # loads fine, then exits without a word while running


@register_backend
class Vanish(OnnxRuntimeBackend):
    name = "vanish"
    deterministic = False

    def _load_impl(self, artifact, options):
        runner = super()._load_impl(artifact, options)
        vanishing = VanishingRunner(runner._session, artifact)
        vanishing.backend = self.name
        return vanishing


@register_backend
class HangChild(Misbehaving):
    name = "hang-child"

    def misbehave(self):
        child = subprocess.Popen(["sleep", "3600"])
        with open(os.environ["EDGECHECK_ISOLATION_CHILD_PIDFILE"], "w") as handle:
            handle.write(str(child.pid))
        hang()


@register_backend
class Steady(OnnxRuntimeBackend):
    """ONNX Runtime under another name: parity of the model itself is planned on it (on onnxruntime, the
    reference backend, it would be the reference against itself)."""

    name = "steady"


def pytest_unconfigure(config):
    for name in ("segv", "abort", "hang", "hog", "vanish", "hang-child", "steady"):
        unregister_backend(name)
'''

# Items run in the order the backends are listed: each bad backend runs right after another bad one
# (whose worker had to be killed or replaced), and the good one runs last, after all of them.
ISOLATION_SPEC = """
edgecheck: 1
model: {path: ../models/clf.onnx}
data:
  evaluation: {path: ../models/eval.npz}
targets:
  host:
    backends: [segv, abort, hang, hog, vanish, hang-child, steady]
    budgets:
      parity: {atol: 1.0e-5, cosine: 0.9999}
"""

OWN_MESSAGES = {
    "segv": "segv crashed: SIGSEGV while loading clf.onnx",
    "abort": "abort crashed: SIGABRT while loading clf.onnx",
    "hang": "hang timed out after 3 s while loading clf.onnx",
    # the memory limit as RLIMIT_DATA: the allocation fails in the worker with MemoryError. Said as
    "hog": "hog ran out of memory while loading clf.onnx: MemoryError: Unable to allocate 256. MiB*",
    "vanish": "vanish worker exited with status 0 without answering while running clf.onnx",
    "hang-child": "hang-child timed out after 3 s while loading clf.onnx",
}


def _marked_processes(marker: str) -> dict[int, str]:
    """Processes of ours whose environment holds `marker` (pid -> command line); this one excluded."""
    wanted = f"{MARKER_VAR}={marker}".encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            if wanted in environ.split(b"\0"):
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # not ours, or gone meanwhile
            continue
    return found


def _leftovers(marker: str, grace_s: float = 30.0) -> dict[int, str]:
    """The marked processes still there after up to `grace_s` seconds (killed ones go in milliseconds;
    the grace is for a loaded machine, and costs nothing when they are gone)."""
    deadline = time.monotonic() + grace_s
    while True:
        found = _marked_processes(marker)
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def _pid_alive(pid: int) -> bool:
    """Whether `pid` is a running (not zombie) process."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _kill_quietly(pids) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="scans /proc for leftover processes")
def test_misbehaving_backends_fail_alone_and_leave_no_process(pytester, spec_project, monkeypatch):
    marker = uuid.uuid4().hex
    pidfile = pytester.path / "sleep.pid"
    monkeypatch.setenv(MARKER_VAR, marker)  # the session and every worker it starts inherit it
    monkeypatch.setenv(CHILD_PIDFILE_VAR, str(pidfile))
    spec_project(ISOLATION_SPEC)
    pytester.makeconftest(MISBEHAVING_BACKENDS)

    # 3 s for each job's own step (imports have the worker's start limit): what must succeed here, an
    # ONNX Runtime load and run of a two-node model, takes milliseconds; the hangs sleep far longer
    try:
        result = pytester.runpytest_subprocess(
            "specs", "-v", "-p", "no:randomly", "-p", "no:cacheprovider", "--edge-worker-timeout=3",
            "--edge-worker-memory=600", "--junitxml=r.xml", timeout=HANG_GUARD_S)
    finally:
        leftovers = _leftovers(marker)
        child = int(pidfile.read_text()) if pidfile.exists() else None
        _kill_quietly(list(leftovers) + ([child] if child and _pid_alive(child) else []))
    output = result.stdout.str()

    # the session ended normally: tests failed, it did not crash or get interrupted
    assert result.ret == pytest.ExitCode.TESTS_FAILED, output
    result.assert_outcomes(passed=1, failed=len(OWN_MESSAGES))
    # in the order the spec lists them: each bad one runs after another bad one, the good one last
    result.stdout.fnmatch_lines([f"*model.yaml::host-{name}-none-parity FAILED*" for name in OWN_MESSAGES]
                                + ["*model.yaml::host-steady-none-parity PASSED*"])
    for name, message in OWN_MESSAGES.items():
        result.stdout.fnmatch_lines([f"*{message}*"])
    assert "the worker's process group was killed" in output

    # no process of the session outlived it: workers, and the child the hang-child worker started
    assert child is not None, "the hang-child backend never started its child process"
    assert leftovers == {}, f"processes left behind: {leftovers}"
    assert not _pid_alive(child), f"the hang-child's `sleep 3600` (pid {child}) is still running"

    # the JUnit XML parses, has one test case per item, each failure with its own message
    cases = {case.get("name"): case for case in ET.parse(pytester.path / "r.xml").iter("testcase")}
    assert sorted(cases) == sorted(f"host-{name}-none-parity" for name in [*OWN_MESSAGES, "steady"])
    assert cases["host-steady-none-parity"].find("failure") is None
    for name, message in OWN_MESSAGES.items():
        failure = cases[f"host-{name}-none-parity"].find("failure")
        assert failure is not None, name
        text = (failure.get("message") or "") + "\n" + (failure.text or "")
        assert fnmatch.fnmatch(text, f"*{message}*"), (name, text[:2000])
        # its own message, and no other bad backend's
        others = [other for other, said in OWN_MESSAGES.items() if other != name and fnmatch.fnmatch(text, f"*{said}*")]
        assert others == [], (name, others)


# --- the worker pool, driven directly ----------------------------------------------------------

# Pure-numpy backends for the pool: importable by file, in any Python that has numpy.
POOL_BACKENDS = '''
import importlib.util
import os
import pathlib
import signal
import sys
import time

import numpy as np

from edgecheck.backends.base import Availability, Backend, Runner

HEAVY = ("pydantic", "onnx", "onnxruntime", "yaml", "pytest", "_pytest")


class DoublingRunner(Runner):
    def __init__(self, backend, artifact):
        self.backend = backend
        self.artifact = artifact
        self.input_names = ("x",)
        self.output_names = ("y", "pid", "imported", "findable")

    def _infer_impl(self, feed):
        return {
            "y": feed["x"] * 2,
            "pid": np.array([os.getpid()]),
            "imported": np.array([int(name in sys.modules) for name in HEAVY]),
            "findable": np.array([int(importlib.util.find_spec(name) is not None) for name in HEAVY]),
        }


class Doubling(Backend):
    name = "doubling"
    suffixes = (".bin",)
    python = sys.executable

    def availability(self):
        return Availability(True)

    def _load_impl(self, artifact, options):
        return DoublingRunner(self.name, artifact)

    def interpreter(self):
        return self.python


class Raising(Doubling):
    name = "raising"

    def _load_impl(self, artifact, options):
        raise ValueError(f"cannot parse {artifact.name}: bad magic")


class Crashing(Doubling):
    name = "crashing"

    def _load_impl(self, artifact, options):
        os.kill(os.getpid(), signal.SIGSEGV)


class Sleeping(Doubling):
    name = "sleeping"

    def _load_impl(self, artifact, options):
        time.sleep(300)  # far past any limit a test gives; bounded, so a limit that never fires fails the test
        return DoublingRunner(self.name, artifact)


class Slow(Doubling):
    name = "slow"

    def _load_impl(self, artifact, options):
        time.sleep(3)
        return DoublingRunner(self.name, artifact)


class Meeting(Doubling):
    """Loads only once another worker is loading too (each leaves its pid in $EDGECHECK_MEETING, waits for a second):
    two jobs that run at once in two workers meet, two that share one worker never would."""
    name = "meeting"

    def _load_impl(self, artifact, options):
        folder = pathlib.Path(os.environ["EDGECHECK_MEETING"])
        (folder / str(os.getpid())).touch()
        deadline = time.monotonic() + 120
        while len(list(folder.iterdir())) < 2:
            if time.monotonic() > deadline:
                raise RuntimeError("no second worker came to meet this one")
            time.sleep(0.02)
        return DoublingRunner(self.name, artifact)


def hoard():
    kept = []
    while True:
        kept.append(np.ones(2**25))  # 256 MiB more each time


class Hogging(Doubling):
    name = "hogging"

    def _load_impl(self, artifact, options):
        hoard()


class HoggingRunner(DoublingRunner):
    def _infer_impl(self, feed):
        hoard()


class HoggingWhileRunning(Doubling):
    name = "hogging-later"

    def _load_impl(self, artifact, options):
        return HoggingRunner(self.name, artifact)
'''


@pytest.fixture
def pool_backends(tmp_path, monkeypatch):
    """The module above, imported from its file (a worker finds its classes by that file)."""
    path = tmp_path / "pool_backends.py"
    path.write_text(POOL_BACKENDS)
    name = f"pool_backends_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def pool(tmp_path):
    (tmp_path / "scratch").mkdir()
    workers = WorkerPool(WorkerSettings(timeout_s=60, memory_limit_mb=None), scratch=tmp_path / "scratch")
    yield workers
    workers.close()


@pytest.fixture
def artifact(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"not a real model")
    return path


def run_outputs(pool: WorkerPool, backend, artifact: Path, feeds, timeout_s: float | None = None
                ) -> list[dict[str, np.ndarray]]:
    """One output job, exactly as ModelRuns.outputs sends it (under the pool's limit, or `timeout_s`)."""
    job = pool.job_dir()
    names = save_feeds(job / "inputs.npz", feeds)
    command = {"op": "outputs", "artifact": str(artifact), "threads": 1, "inputs": str(job / "inputs.npz"),
               "names": names, "outputs": str(job / "outputs.npz")}
    result = pool.run(backend, command, artifact, timeout_s=timeout_s)
    return load_feeds(job / "outputs.npz", result["names"], prefix="o")


FEEDS = [{"x": np.arange(6, dtype=np.float32).reshape(2, 3)}, {"x": np.full((1, 3), -1.5, dtype=np.float32)}]


def _pid(outputs) -> int:
    return int(outputs[0]["pid"][0])


def test_two_threads_get_two_workers_at_once_and_both_stay_kept(pool, pool_backends, artifact, tmp_path, monkeypatch):
    """The pool is shared by the session's threads (a reference beside an artifact's making): each job its own
    worker, both running at once; both kept after the threads that asked have ended (workers start from the pool's
    own thread: the kernel kills a worker when the thread that started it ends)."""
    import threading

    (tmp_path / "meeting").mkdir()
    monkeypatch.setenv("EDGECHECK_MEETING", str(tmp_path / "meeting"))
    pids: dict[int, int] = {}
    errors: list[BaseException] = []

    def job(index: int) -> None:
        try:
            pids[index] = _pid(run_outputs(pool, pool_backends.Meeting(), artifact, FEEDS))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=job, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=HANG_GUARD_S)
    assert not errors, errors
    assert len(set(pids.values())) == 2, pids  # they met: two workers, at once
    time.sleep(0.5)  # (a worker killed with its thread would be gone by now)
    again = [_pid(run_outputs(pool, pool_backends.Doubling(), artifact, FEEDS)) for _ in range(3)]
    assert set(again) <= set(pids.values()), (again, pids)  # the kept ones, alive


def test_a_job_interrupted_midway_leaves_its_worker_out_of_the_pool(pool, pool_backends, artifact, monkeypatch):
    """Ctrl-C (or a timeout plug-in's exit) while a worker runs a job: that worker would answer the old job to the
    next one; it is killed, and the next job gets a fresh worker and its own answer."""
    import edgecheck.worker.client as client

    real_tick = client.progress.tick

    def interrupted():
        monkeypatch.setattr(client.progress, "tick", real_tick)
        raise KeyboardInterrupt

    first = _pid(run_outputs(pool, pool_backends.Doubling(), artifact, FEEDS))
    monkeypatch.setattr(client.progress, "tick", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_outputs(pool, pool_backends.Slow(), artifact, FEEDS)
    after = run_outputs(pool, pool_backends.Doubling(), artifact, [{"x": np.full((1, 3), 4.0, dtype=np.float32)}])
    np.testing.assert_array_equal(after[0]["y"], np.full((1, 3), 8.0, dtype=np.float32))
    assert _pid(after) != first
    assert not Path(f"/proc/{first}").exists() or "zombie" in Path(f"/proc/{first}/status").read_text().lower()


def test_backend_exception_is_an_error_and_the_kept_worker_stays(pool, pool_backends, artifact):
    before = run_outputs(pool, pool_backends.Doubling(), artifact, FEEDS)
    np.testing.assert_array_equal(before[0]["y"], FEEDS[0]["x"] * 2)
    np.testing.assert_array_equal(before[1]["y"], FEEDS[1]["x"] * 2)

    with pytest.raises(BackendError) as info:
        run_outputs(pool, pool_backends.Raising(), artifact, FEEDS)
    assert not isinstance(info.value, WorkerFailure)
    assert "ValueError: cannot parse model.bin: bad magic" in str(info.value)
    assert "raising failed while loading model.bin" in str(info.value)

    after = run_outputs(pool, pool_backends.Doubling(), artifact, FEEDS)
    assert _pid(after) == _pid(before), "an exception in the backend must not cost the kept worker"
    np.testing.assert_array_equal(after[1]["y"], FEEDS[1]["x"] * 2)


def test_crash_discards_the_kept_worker_and_the_next_job_gets_a_new_one(pool, pool_backends, artifact):
    first = _pid(run_outputs(pool, pool_backends.Doubling(), artifact, FEEDS))

    with pytest.raises(WorkerFailure) as info:
        run_outputs(pool, pool_backends.Crashing(), artifact, FEEDS)
    assert info.value.kind == "crash"
    assert "crashing crashed: SIGSEGV while loading model.bin" in str(info.value)
    assert not _pid_alive(first), "the crashed worker is gone"

    again = run_outputs(pool, pool_backends.Doubling(), artifact, FEEDS)
    assert _pid(again) != first
    np.testing.assert_array_equal(again[0]["y"], FEEDS[0]["x"] * 2)


def test_a_worker_that_cannot_start_names_the_interpreter(pool, pool_backends, artifact, tmp_path):
    backend = pool_backends.Doubling()
    missing = tmp_path / "no-such-env" / "bin" / "python"
    backend.python = str(missing)
    with pytest.raises(WorkerFailure) as info:
        run_outputs(pool, backend, artifact, FEEDS)
    assert info.value.kind == "start"
    assert str(missing) in str(info.value)

    # the session's own Python still works afterwards
    backend.python = sys.executable
    np.testing.assert_array_equal(run_outputs(pool, backend, artifact, FEEDS)[0]["y"], FEEDS[0]["x"] * 2)


def _numpy_only_python(tmp_path: Path) -> Path:
    """A 'Python environment' that has numpy and nothing else: this interpreter without its
    site-packages (-S), with a folder holding only links to numpy (and its bundled libraries)."""
    import numpy

    site = Path(numpy.__file__).resolve().parents[1]
    folder = tmp_path / "numpy-only"
    folder.mkdir()
    for name in ("numpy", "numpy.libs"):
        if (site / name).exists():
            (folder / name).symlink_to(site / name, target_is_directory=True)
    wrapper = tmp_path / "numpy-only-python"
    wrapper.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        exec env -u PYTHONHOME PYTHONPATH={folder} {sys.executable} -S "$@"
        """))
    wrapper.chmod(0o755)
    return wrapper


@pytest.mark.skipif(sys.platform == "win32", reason="a shell-script interpreter")
def test_worker_under_another_python_with_only_numpy(pool, pool_backends, artifact, tmp_path):
    wrapper = _numpy_only_python(tmp_path)
    backend = pool_backends.Doubling()
    backend.python = str(wrapper)

    outputs = run_outputs(pool, backend, artifact, FEEDS)
    for feed, out in zip(FEEDS, outputs):
        np.testing.assert_array_equal(out["y"], feed["x"] * 2)
        assert out["y"].dtype == np.float32
    heavy = ("pydantic", "onnx", "onnxruntime", "yaml", "pytest", "_pytest")
    imported = dict(zip(heavy, outputs[0]["imported"].tolist()))
    findable = dict(zip(heavy, outputs[0]["findable"].tolist()))
    assert imported == dict.fromkeys(heavy, 0), f"imported in the worker: {imported}"
    assert findable == dict.fromkeys(heavy, 0), f"importable in the worker: {findable}"
    # it really ran in the other 'environment': a worker of its own, not the session's Python's
    assert _pid(outputs) != os.getpid()
    session_python = _pid(run_outputs(pool, pool_backends.Doubling(), artifact, FEEDS))
    assert session_python != _pid(outputs)
    assert run_outputs(pool, pool_backends.Doubling(), artifact, FEEDS)[0]["findable"].tolist()[0] == 1


def test_a_hung_job_times_out_and_the_next_job_gets_a_new_worker(pool, pool_backends, artifact):
    # the jobs that must succeed have the pool's 60 s; only the hung one gets 1 s
    first = _pid(run_outputs(pool, pool_backends.Doubling(), artifact, FEEDS))
    with pytest.raises(WorkerFailure) as info:
        run_outputs(pool, pool_backends.Sleeping(), artifact, FEEDS, timeout_s=1)
    assert info.value.kind == "timeout"
    assert "sleeping timed out after 1 s while loading model.bin" in str(info.value)
    assert not _pid_alive(first), "the hung worker was killed"
    assert _pid(run_outputs(pool, pool_backends.Doubling(), artifact, FEEDS)) != first


def test_a_jobs_limit_counts_from_its_own_step_not_the_workers_imports(pool, tmp_path, artifact, monkeypatch):
    """A loaded machine imports slowly: the job's limit is for its own step (loading, running), and the
    worker's start and imports have START_TIMEOUT_S. Here the backend's import outlasts the job's limit."""
    import_started = tmp_path / "import-started"
    path = tmp_path / "slow_import_backend.py"
    path.write_text(POOL_BACKENDS + textwrap.dedent(f"""
        open({str(import_started)!r}, "w").close()
        time.sleep(3)  # three times the job's limit, spent importing


        class SlowImport(Doubling):
            name = "slow-import"
        """))
    spec = importlib.util.spec_from_file_location(f"slow_import_{uuid.uuid4().hex}", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)  # here too (3 s): the worker finds the class by this file
    import_started.unlink()

    outputs = run_outputs(pool, module.SlowImport(), artifact, FEEDS, timeout_s=1)
    assert import_started.exists(), "the worker imported the backend's module"
    np.testing.assert_array_equal(outputs[0]["y"], FEEDS[0]["x"] * 2)


@pytest.mark.parametrize("backend, step", [("Hogging", "loading"), ("HoggingWhileRunning", "running")])
def test_memory_error_in_a_backend_is_a_memory_failure(tmp_path, pool_backends, artifact, backend, step):
    pool = WorkerPool(WorkerSettings(timeout_s=60, memory_limit_mb=600), scratch=tmp_path)
    try:
        instance = getattr(pool_backends, backend)()
        with pytest.raises(BackendError) as info:
            run_outputs(pool, instance, artifact, FEEDS)
        assert f"{instance.name} ran out of memory while {step} model.bin" in str(info.value)
        assert "worker memory limit 600 MiB" in str(info.value)
        assert isinstance(info.value, WorkerFailure) and info.value.kind == "memory"
    finally:
        pool.close()


def test_summary_row_of_a_crashed_backend_names_the_crash(pytester, spec_project):
    spec_project(ISOLATION_SPEC.replace("[segv, abort, hang, hog, vanish, hang-child, steady]", "[segv]"))
    pytester.makeconftest(MISBEHAVING_BACKENDS)
    result = pytester.runpytest("specs")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*edgecheck summary*", "target host: specs/model.yaml", "  FAIL*parity*segv*none",
                                 "      segv crashed: SIGSEGV while loading clf.onnx*"])


def test_process_peak_is_the_workers_own_not_the_sessions(tmp_path):
    """On Linux a fork+exec child inherits its parent's getrusage peak: the worker's figure must be
    its own (VmHWM), or a session that once held 500 MiB would report 500 MiB for a tiny model."""
    from edgecheck.backends import get_backend
    from edgecheck.measure.runs import ModelRuns, TimingPlan

    held = bytearray(500 * 2**20)
    held[::4096] = b"\x01" * len(held[::4096])  # touched: resident in this process
    make_classifier(tmp_path / "clf.onnx")
    runs = ModelRuns(WorkerPool(scratch=tmp_path / "scratch"), "test-process-peak")
    try:
        measured = runs.measure(get_backend("onnxruntime"), tmp_path / "clf.onnx", 1,
                                {"x": np.zeros((1, 4), np.float32)}, TimingPlan())
    finally:
        runs.workers.close()
    assert len(held) == 500 * 2**20
    assert 0 <= measured.footprint_mib < measured.process_mib < 300


MISBEHAVING_RECIPES = '''
import os
import signal
import subprocess
import time

from edgecheck.compress import Artifact, RecipeError, artifact_path, register_recipe, unregister_recipe

NAMES = ("segv-recipe", "hang-recipe", "slow-tool-recipe", "round-recipe")


def pytest_unconfigure(config):
    for name in NAMES:
        unregister_recipe(name)


@register_recipe("segv-recipe")
def segv_recipe(model, params, context):
    os.kill(os.getpid(), signal.SIGSEGV)


@register_recipe("hang-recipe")
def hang_recipe(model, params, context):
    time.sleep(300)  # far past the limit; bounded, so a limit that never fires fails the test
    raise RecipeError("hang-recipe was never stopped")


@register_recipe("slow-tool-recipe")
def slow_tool_recipe(model, params, context):
    time.sleep(2)  # the recipe's own work before it starts its tool: slow, as on a loaded machine
    limit = context.tool_timeout_s()  # what is left of the step's limit, less a margin
    try:
        subprocess.run(["sleep", "300"], timeout=limit)
    except subprocess.TimeoutExpired:
        raise RecipeError(f"slow-tool-recipe: its tool did not finish within {limit:g} s") from None
    raise RecipeError("slow-tool-recipe: its tool was never stopped")


@register_recipe("round-recipe")
def round_recipe(model, params, context):
    import numpy as np
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(model))  # weights rounded to float16 precision: a change, in milliseconds
    for tensor in proto.graph.initializer:
        array = numpy_helper.to_array(tensor)
        if array.dtype == np.float32:
            tensor.CopyFrom(numpy_helper.from_array(array.astype(np.float16).astype(np.float32), tensor.name))
    out = artifact_path(model, "round-recipe", context)
    onnx.save(proto, str(out))
    return Artifact(out, "round-recipe", {"did": "rounded the weights to float16 precision"})
'''

RECIPES_SPEC = """
edgecheck: 1
model: {path: ../models/clf.onnx}
data:
  evaluation: {path: ../models/eval.npz}
compress: [segv-recipe, hang-recipe, slow-tool-recipe, round-recipe]
targets:
  host:
    budgets:
      parity: {rel_l2: 0.01}
"""


def test_a_recipe_that_crashes_or_hangs_fails_its_entry_only(pytester, spec_project):
    """Converters crash and hang too: compression runs in a worker, and only that entry fails. A tool a
    recipe starts gets what is left of the step's limit less a margin, however long the recipe's own
    work took first, so it fails with its own message rather than the worker's kill."""
    pytester.makeconftest(MISBEHAVING_RECIPES)
    spec_project(RECIPES_SPEC)
    # 5 s per step: what must succeed (rounding a two-node model's weights, its run) takes milliseconds
    result = pytester.runpytest_subprocess("specs", "--edge-worker-timeout=5", "--edge-no-cache", "-p", "no:randomly",
                                           timeout=HANG_GUARD_S)
    result.assert_outcomes(passed=1, failed=3)  # round-recipe passes (none has no parity item on onnxruntime)
    result.stdout.fnmatch_lines(["*recipe 'segv-recipe' crashed: SIGSEGV while compressing clf.onnx*"])
    result.stdout.fnmatch_lines(["*recipe 'hang-recipe' timed out after 5 s while compressing clf.onnx*"])
    result.stdout.fnmatch_lines(["*slow-tool-recipe: its tool did not finish within * s*"])
    assert "'slow-tool-recipe' timed out" not in result.stdout.str()


def test_a_tool_gets_what_is_left_of_the_steps_limit_less_a_margin(tmp_path):
    from edgecheck.compress import RecipeContext

    fresh = RecipeContext(calibration=None, out_dir=tmp_path, time_limit_s=100)
    assert fresh.tool_timeout_s() == 80  # the margin: a fifth of the limit, at most 30 s
    late = RecipeContext(calibration=None, out_dir=tmp_path, time_limit_s=100, started=fresh.started - 50)
    assert 29 <= late.tool_timeout_s() <= 30
    spent = RecipeContext(calibration=None, out_dir=tmp_path, time_limit_s=100, started=fresh.started - 500)
    assert spent.tool_timeout_s() == 1  # never less than a second
    assert RecipeContext(calibration=None, out_dir=tmp_path).tool_timeout_s(default=240) == 240
