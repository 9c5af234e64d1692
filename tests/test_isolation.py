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
from conftest import make_classifier

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
from edgecheck.backends.onnxruntime import OnnxRuntimeBackend, OnnxRuntimeRunner
from edgecheck.backends.registry import unregister_backend


class Misbehaving(OnnxRuntimeBackend):
    deterministic = False

    def misbehave(self):
        raise NotImplementedError

    def _load_impl(self, artifact, options):
        self.misbehave()
        return super()._load_impl(artifact, options)


@register_backend
class Segv(Misbehaving):
    name = "segv"

    def misbehave(self):
        os.kill(os.getpid(), signal.SIGSEGV)
        time.sleep(60)  # the signal is delivered at once; never reached


@register_backend
class Abort(Misbehaving):
    name = "abort"

    def misbehave(self):
        os.abort()


@register_backend
class Hang(Misbehaving):
    name = "hang"

    def misbehave(self):
        time.sleep(3600)


@register_backend
class Hog(Misbehaving):
    name = "hog"

    def misbehave(self):
        hoard = []
        while True:
            hoard.append(np.ones(2**25))  # 256 MiB more each time, written so it is resident


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
        time.sleep(3600)


def pytest_unconfigure(config):
    for name in ("segv", "abort", "hang", "hog", "vanish", "hang-child"):
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
    backends: [segv, abort, hang, hog, vanish, hang-child, onnxruntime]
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


def _leftovers(marker: str, grace_s: float = 5.0) -> dict[int, str]:
    """The marked processes still there after up to `grace_s` seconds."""
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

    started = time.monotonic()
    try:
        result = pytester.runpytest_subprocess(
            "specs", "-v", "-p", "no:randomly", "-p", "no:cacheprovider", "--edge-worker-timeout=3",
            "--edge-worker-memory=600", "--junitxml=r.xml", timeout=120)
    finally:
        leftovers = _leftovers(marker)
        child = int(pidfile.read_text()) if pidfile.exists() else None
        _kill_quietly(list(leftovers) + ([child] if child and _pid_alive(child) else []))
    elapsed = time.monotonic() - started
    output = result.stdout.str()

    # the session ended normally: tests failed, it did not crash or get interrupted
    assert result.ret == pytest.ExitCode.TESTS_FAILED, output
    result.assert_outcomes(passed=1, failed=len(OWN_MESSAGES))
    # in the order the spec lists them: each bad one runs after another bad one, the good one last
    result.stdout.fnmatch_lines([f"*model.yaml::host-{name}-none-parity FAILED*" for name in OWN_MESSAGES]
                                + ["*model.yaml::host-onnxruntime-none-parity PASSED*"])
    for name, message in OWN_MESSAGES.items():
        result.stdout.fnmatch_lines([f"*{message}*"])
    assert "the worker's process group was killed" in output
    assert elapsed < 90, f"the session took {elapsed:.0f} s"

    # no process of the session outlived it: workers, and the child the hang-child worker started
    assert child is not None, "the hang-child backend never started its child process"
    assert leftovers == {}, f"processes left behind: {leftovers}"
    assert not _pid_alive(child), f"the hang-child's `sleep 3600` (pid {child}) is still running"

    # the JUnit XML parses, has one test case per item, each failure with its own message
    cases = {case.get("name"): case for case in ET.parse(pytester.path / "r.xml").iter("testcase")}
    assert sorted(cases) == sorted(f"host-{name}-none-parity" for name in [*OWN_MESSAGES, "onnxruntime"])
    assert cases["host-onnxruntime-none-parity"].find("failure") is None
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
        time.sleep(3600)


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


def run_outputs(pool: WorkerPool, backend, artifact: Path, feeds) -> list[dict[str, np.ndarray]]:
    """One output job, exactly as ModelRuns.outputs sends it."""
    job = pool.job_dir()
    names = save_feeds(job / "inputs.npz", feeds)
    command = {"op": "outputs", "artifact": str(artifact), "threads": 1, "inputs": str(job / "inputs.npz"),
               "names": names, "outputs": str(job / "outputs.npz")}
    result = pool.run(backend, command, artifact)
    return load_feeds(job / "outputs.npz", result["names"], prefix="o")


FEEDS = [{"x": np.arange(6, dtype=np.float32).reshape(2, 3)}, {"x": np.full((1, 3), -1.5, dtype=np.float32)}]


def _pid(outputs) -> int:
    return int(outputs[0]["pid"][0])


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


def test_a_hung_job_times_out_and_the_next_job_gets_a_new_worker(tmp_path, pool_backends, artifact):
    pool = WorkerPool(WorkerSettings(timeout_s=1, memory_limit_mb=None), scratch=tmp_path)
    try:
        first = _pid(run_outputs(pool, pool_backends.Doubling(), artifact, FEEDS))
        started = time.monotonic()
        with pytest.raises(WorkerFailure) as info:
            run_outputs(pool, pool_backends.Sleeping(), artifact, FEEDS)
        assert time.monotonic() - started < 10
        assert info.value.kind == "timeout"
        assert "sleeping timed out after 1 s while loading model.bin" in str(info.value)
        assert not _pid_alive(first), "the hung worker was killed"
        assert _pid(run_outputs(pool, pool_backends.Doubling(), artifact, FEEDS)) != first
    finally:
        pool.close()


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
    spec_project(ISOLATION_SPEC.replace("[segv, abort, hang, hog, vanish, hang-child, onnxruntime]", "[segv]"))
    pytester.makeconftest(MISBEHAVING_BACKENDS)
    result = pytester.runpytest("specs")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*edgecheck summary*", "target host",
                                 "*parity*segv*none*segv crashed: SIGSEGV while loading clf.onnx*FAIL*"])


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
import time

from edgecheck.compress import register_recipe, unregister_recipe


def pytest_unconfigure(config):
    unregister_recipe("segv-recipe")
    unregister_recipe("hang-recipe")


@register_recipe("segv-recipe")
def segv_recipe(model, params, context):
    os.kill(os.getpid(), signal.SIGSEGV)


@register_recipe("hang-recipe")
def hang_recipe(model, params, context):
    time.sleep(3600)
'''

RECIPES_SPEC = """
edgecheck: 1
model: {path: ../models/clf.onnx}
data:
  evaluation: {path: ../models/eval.npz}
compress: [segv-recipe, hang-recipe, fp16]
targets:
  host:
    budgets:
      parity: {rel_l2: 0.01}
"""


def test_a_recipe_that_crashes_or_hangs_fails_its_entry_only(pytester, spec_project):
    """Converters crash and hang too: compression runs in a worker, and only that entry fails."""
    pytester.makeconftest(MISBEHAVING_RECIPES)
    spec_project(RECIPES_SPEC)
    result = pytester.runpytest_subprocess("specs", "--edge-worker-timeout=3", "--edge-no-cache", "-p", "no:randomly")
    result.assert_outcomes(passed=2, failed=2)  # none and fp16 pass
    result.stdout.fnmatch_lines(["*recipe 'segv-recipe' crashed: SIGSEGV while compressing clf.onnx*"])
    result.stdout.fnmatch_lines(["*recipe 'hang-recipe' timed out after 3 s while compressing clf.onnx*"])
