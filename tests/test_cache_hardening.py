"""The cache against hostile entries, killed sessions, a busy lock and a full disk (issue 14).

What this file shows: an entry.json that names a path outside its entry (`..`, an absolute path, a
link, the entry folder itself a link) is a corrupt entry, warned about and rebuilt, and never
followed; every file of an entry is checked the same way (an unlisted sidecar, outputs arrays
replaced by a valid .npz of other values); after `kill -9` of a session, the next session removes
its cache temporaries and its workers' folder, and keeps those of live processes (a reused pid is
told apart by its start time); a session waiting on another process's cache lock says, on the
terminal, which entry and lock file it waits for and the pid holding it; and a full disk (a real
small tmpfs) names the cache, the space free there and --edge-cache-dir.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import junit_properties, make_classifier, make_eval_data

from edgecheck.cache import ArtifactCache, CacheWarning
from edgecheck.cache_entry import file_digest
from edgecheck.compress import Artifact
from edgecheck.errors import RecipeError
from edgecheck.leftovers import owner_is_dead, owner_tag

KEY = "ab" + "0" * 62
WAIT_S = 300.0  # the most a poll below waits for a process to reach a state (never asserted on)

SPEC = """
edgecheck: 1
model: {path: ../models/clf.onnx}
data:
  evaluation: {path: ../models/eval.npz}
compress: [%s]
targets:
  host:
    backends: [onnxruntime]
    budgets:
      size_mb: 1
      parity: {cosine: 0.9}
"""


def writer(content: bytes = b"not really onnx"):
    def build(folder: Path) -> Artifact:
        path = folder / "model.test.onnx"
        path.write_bytes(content)
        return Artifact(path, "test", {"did": "wrote bytes"})

    return build


def entry_folder(root: Path, key: str = KEY) -> Path:
    return root / "artifacts" / key[:2] / key


def rewrite_entry(folder: Path, **fields) -> None:
    entry = json.loads((folder / "entry.json").read_text())
    entry.update(fields)
    (folder / "entry.json").write_text(json.dumps(entry))


def poll(condition, what: str, process: subprocess.Popen | None = None, log: Path | None = None) -> None:
    """Wait until `condition()` holds; fail saying `what` if it never does or `process` ends first."""
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if process is not None and process.poll() is not None:
            pytest.fail(f"the process ended (status {process.returncode}) before {what}:\n"
                        f"{log.read_text() if log else ''}")
        if time.monotonic() > deadline:
            pytest.fail(f"never saw {what} in {WAIT_S:g} s:\n{log.read_text() if log else ''}")
        time.sleep(0.05)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"


# 1. paths outside the entry are never followed


def _outside_parent(folder: Path, outside: Path) -> None:
    rewrite_entry(folder, artifact="../../../../outside.onnx", files={"../../../../outside.onnx": file_digest(outside)})


def _outside_absolute(folder: Path, outside: Path) -> None:
    rewrite_entry(folder, artifact=str(outside), files={str(outside): file_digest(outside)})


def _outside_dotdot_inside(folder: Path, outside: Path) -> None:
    name = f"sub/../../../../../{outside.name}"
    rewrite_entry(folder, artifact=name, files={name: file_digest(outside)})


def _artifact_is_a_link(folder: Path, outside: Path) -> None:
    (folder / "model.test.onnx").unlink()
    (folder / "model.test.onnx").symlink_to(outside)
    rewrite_entry(folder, files={"model.test.onnx": file_digest(outside)})


def _entry_folder_is_a_link(folder: Path, outside: Path) -> None:
    elsewhere = outside.parent / "elsewhere"
    folder.rename(elsewhere)  # a whole, valid entry: but not inside the cache
    folder.symlink_to(elsewhere, target_is_directory=True)


def _unlisted_sidecar(folder: Path, outside: Path) -> None:
    (folder / "model.test.onnx.data").write_bytes(b"weights nobody recorded")


def _fifo_listed(folder: Path, outside: Path) -> None:
    (folder / "model.test.onnx").unlink()
    os.mkfifo(folder / "model.test.onnx")  # opening it for reading would block: it must not be read


HOSTILE = {
    "parent-path": (_outside_parent, "a path outside the entry (not followed)"),
    "absolute-path": (_outside_absolute, "a path outside the entry (not followed)"),
    "dotdot-in-the-middle": (_outside_dotdot_inside, "a path outside the entry (not followed)"),
    "artifact-is-a-link": (_artifact_is_a_link, "model.test.onnx is a link (an entry holds only its own files)"),
    "entry-folder-is-a-link": (_entry_folder_is_a_link, "it is a link or a file, not a folder"),
    "unlisted-sidecar": (_unlisted_sidecar, "model.test.onnx.data is not listed in entry.json"),
    "fifo-as-artifact": (_fifo_listed, "model.test.onnx is not a regular file"),
}


@pytest.mark.parametrize("hostile", sorted(HOSTILE))
def test_an_entry_naming_anything_outside_itself_is_corrupt_and_rebuilt(tmp_path, hostile):
    root = tmp_path / "cache"
    outside = tmp_path / "outside.onnx"
    outside.write_bytes(b"a model the cache must never serve")
    ArtifactCache(root).artifact(KEY, writer())
    folder = entry_folder(root)
    corrupt, problem = HOSTILE[hostile]
    corrupt(folder, outside)
    with pytest.warns(CacheWarning, match=re.escape(f"edgecheck cache entry {folder} is corrupt")) as record:
        rebuilt, cached = ArtifactCache(root).artifact(KEY, writer())
    assert any(problem in str(w.message) for w in record), [str(w.message) for w in record]
    assert not cached
    assert rebuilt.path == folder / "model.test.onnx" and rebuilt.path.read_bytes() == b"not really onnx"
    assert not folder.is_symlink() and not rebuilt.path.is_symlink()
    assert outside.read_bytes() == b"a model the cache must never serve"  # neither served nor changed
    if hostile == "entry-folder-is-a-link":  # the link was removed as itself, never what it pointed to
        assert (tmp_path / "elsewhere" / "model.test.onnx").read_bytes() == b"not really onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        again, cached = ArtifactCache(root).artifact(KEY, writer(b"must not be built"))
    assert cached and again.path.read_bytes() == b"not really onnx"
    assert sorted(p.name for p in (root / "tmp").iterdir()) == []


def test_a_build_that_leaves_a_link_in_its_folder_is_the_recipes_error(tmp_path):
    root = tmp_path / "cache"
    outside = tmp_path / "weights.bin"
    outside.write_bytes(b"\0" * 64)

    def linking(folder: Path) -> Artifact:
        (folder / "weights.bin").symlink_to(outside)
        return writer()(folder)

    with pytest.raises(RecipeError, match=r"recipe 'test' wrote what a cache entry cannot hold: weights.bin is a link"):
        ArtifactCache(root).artifact(KEY, linking)
    assert not entry_folder(root).exists() and list((root / "tmp").iterdir()) == []


# 2. outputs are checked like every other file


def test_outputs_replaced_by_a_valid_archive_of_other_values_are_recomputed(tmp_path):
    root = tmp_path / "cache"
    expected = {"scores": np.linspace(-1, 1, 30, dtype=np.float32).reshape(10, 3)}
    ArtifactCache(root).outputs(KEY, lambda _: expected)
    (stored,) = (root / "outputs").glob("*/*/output_0.npy")
    np.save(stored, np.full((10, 3), 7.0, np.float32))  # a valid .npy of other values
    computed = []
    with pytest.warns(CacheWarning, match=re.escape(f"edgecheck cache entry {stored.parent} is corrupt "
                                                     "(output_0.npy does not match its recorded SHA-256); "
                                                     "recomputing it")):
        outputs, cached = ArtifactCache(root).outputs(KEY, lambda _: computed.append(1) or expected)
    assert not cached and computed == [1] and np.array_equal(outputs["scores"], expected["scores"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        again, cached = ArtifactCache(root).outputs(KEY, lambda _: pytest.fail("recomputed a sound entry"))
    assert cached and np.array_equal(again["scores"], expected["scores"])


def test_an_older_unchecked_outputs_file_is_never_read_and_is_replaced(tmp_path):
    root = tmp_path / "cache"
    legacy = root / "outputs" / KEY[:2] / f"{KEY}.npz"  # how an older edgecheck stored outputs, without a digest
    legacy.parent.mkdir(parents=True)
    np.savez(legacy, __names__=np.array(["y"]), output_0=np.full(3, 7.0, np.float32))
    outputs, cached = ArtifactCache(root).outputs(KEY, lambda _: {"y": np.zeros(3, np.float32)})
    assert not cached and np.array_equal(outputs["y"], np.zeros(3)) and not legacy.exists()
    again, cached = ArtifactCache(root).outputs(KEY, lambda _: pytest.fail("recomputed a sound entry"))
    assert cached and np.array_equal(again["y"], np.zeros(3))


@pytest.mark.parametrize("damage", ["outside-file", "extra-file", "no-entry-json"])
def test_outputs_entries_refuse_what_artifact_entries_refuse(tmp_path, damage):
    root = tmp_path / "cache"
    expected = {"y": np.arange(5, dtype=np.float32)}
    ArtifactCache(root).outputs(KEY, lambda _: expected)
    (stored,) = (root / "outputs").glob("*/*/output_0.npy")
    folder = stored.parent
    if damage == "outside-file":
        outside = tmp_path / "planted.npz"
        np.savez(outside, __names__=np.array(["y"]), output_0=np.full(5, 7.0, np.float32))
        rewrite_entry(folder, files={"../../../../planted.npz": file_digest(outside)})
    elif damage == "extra-file":
        (folder / "other.npz").write_bytes(b"")
    else:
        (folder / "entry.json").unlink()  # an outputs file without its record is not trusted
    with pytest.warns(CacheWarning, match=re.escape(f"edgecheck cache entry {folder} is corrupt")):
        outputs, cached = ArtifactCache(root).outputs(KEY, lambda _: expected)
    assert not cached and np.array_equal(outputs["y"], expected["y"])


def test_session_on_a_tampered_cache_warns_rebuilds_and_reports_its_own_figures(pytester, spec_project, tmp_path):
    """The issue's case: entry.json names an artifact outside the cache and the outputs arrays were
    replaced by 7.0; the next session uses neither and reports the figures of a clean run."""
    spec_project(SPEC % "int8-dynamic")
    root = tmp_path / "cache"
    first = pytester.runpytest("specs", "-p", "no:cacheprovider", f"--edge-cache-dir={root}", "--junitxml=a.xml")
    first.assert_outcomes(passed=3)
    (entry,) = (p for p in (root / "artifacts").glob("*/*"))
    planted = tmp_path / "planted.onnx"
    make_classifier(planted, seed=5)  # a valid model of other weights: it would pass, with other figures
    rewrite_entry(entry, artifact="../../../../planted.onnx", files={"../../../../planted.onnx": file_digest(planted)})
    for stored in (root / "outputs").glob("*/*/output_0.npy"):
        np.save(stored, np.full_like(np.load(stored), 7.0))
    second = pytester.runpytest("specs", "-p", "no:cacheprovider", f"--edge-cache-dir={root}", "--junitxml=b.xml")
    second.assert_outcomes(passed=3)
    second.stdout.fnmatch_lines([f"*edgecheck cache entry {entry} is corrupt (entry.json names '../../../../planted"
                                 ".onnx', a path outside the entry (not followed)); rebuilding it*"])
    second.stdout.fnmatch_lines(["*edgecheck cache entry * is corrupt (output_0.npy does not match its recorded "
                                 "SHA-256); recomputing it*"])
    drop = ("edge.cache", "edge.outputs")
    before, after = junit_properties(pytester.path / "a.xml"), junit_properties(pytester.path / "b.xml")
    assert {k: {p: v for p, v in c.items() if p not in drop} for k, c in after.items()} == \
        {k: {p: v for p, v in c.items() if p not in drop} for k, c in before.items()}
    assert {c["edge.outputs"].split(":")[0] for c in after.values() if "edge.outputs" in c} == {
        "computed in this session"}


# 3. what a killed session left


def test_owner_tags_tell_a_dead_or_reused_pid_from_a_live_process():
    own = owner_tag()
    assert not owner_is_dead(f"k.{own}.u")
    host, pid = re.fullmatch(r"h([0-9a-f]{8})p(\d+)s(\d+|x)", own).group(1, 2)
    assert owner_is_dead(f"k.h{host}p{pid}s1.u")  # this pid under an earlier process's start time
    assert not owner_is_dead("k.h00000000p1s1.u")  # another host: it cannot be told, so it is kept
    assert not owner_is_dead("k.12345.u")  # no tag (an older edgecheck's name): kept
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    tag = owner_tag(child.pid)
    try:
        assert not owner_is_dead(f"k.{tag}.u")
    finally:
        child.kill()
    poll(lambda: Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z", "the zombie")
    assert owner_is_dead(f"k.{tag}.u")  # exited, not yet reaped
    child.wait()
    assert owner_is_dead(f"k.{tag}.u")


def test_a_disabled_cache_removes_scratch_folders_of_dead_sessions_only(tmp_path, monkeypatch):
    system = tmp_path / "system-tmp"
    system.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system))
    dead_process = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_tag = owner_tag(dead_process.pid)
    dead_process.wait()
    dead = system / f"edgecheck-artifacts-{dead_tag}-k1" / KEY
    dead.mkdir(parents=True)
    (dead / "model.onnx").write_bytes(b"left by a killed session")
    live = system / f"edgecheck-artifacts-{owner_tag()}-k2"
    live.mkdir()
    foreign = system / "edgecheck-artifacts-h00000000p1s1-k3"
    foreign.mkdir()
    cache = ArtifactCache(None)
    cache.artifact(KEY, writer())
    assert not dead.parent.exists() and live.exists() and foreign.exists()
    cache.close()


KILLABLE_RECIPE = '''
import os
import time
from pathlib import Path

from edgecheck.compress import Artifact, register_recipe, unregister_recipe


def pytest_unconfigure(config):
    unregister_recipe("slow-copy")


@register_recipe("slow-copy")
def slow_copy(model, params, context):
    marker = os.environ.get("EDGE_TEST_BLOCK")
    if marker:  # say where we are, then never finish: the test kills the session here
        Path(marker).write_text(str(os.getpid()))
        time.sleep(3600)
    import numpy as np
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(model))  # weights rounded to float16 precision: a change the recipe check sees
    for tensor in proto.graph.initializer:
        array = numpy_helper.to_array(tensor)
        if array.dtype == np.float32:
            tensor.CopyFrom(numpy_helper.from_array(array.astype(np.float16).astype(np.float32), tensor.name))
    path = context.out_dir / "model.onnx"
    onnx.save(proto, str(path))
    return Artifact(path, "slow-copy", {"did": "rounded the weights to float16 precision"})
'''


def test_after_kill_9_the_next_session_removes_what_the_killed_one_left(pytester, spec_project, tmp_path, monkeypatch):
    pytester.makeconftest(KILLABLE_RECIPE)
    spec_project(SPEC % "slow-copy")
    cache, system, marker = tmp_path / "cache", tmp_path / "system-tmp", tmp_path / "building"
    system.mkdir()
    monkeypatch.setenv("TMPDIR", str(system))  # the sessions' temp folder: their workers' folders go there
    monkeypatch.setenv("EDGE_TEST_BLOCK", str(marker))
    log = tmp_path / "killed.log"
    with log.open("wb") as output:
        session = pytester.popen([sys.executable, "-m", "pytest", "specs", "-p", "no:cacheprovider",
                                  f"--edge-cache-dir={cache}"], stdout=output, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL)
    try:
        poll(marker.exists, "the recipe start", session, log)
        poll(lambda: marker.read_text().strip().isdigit(), "the worker's pid")
    finally:
        tag = owner_tag(session.pid)
        session.send_signal(signal.SIGKILL)
        session.wait()
    worker = int(marker.read_text())
    poll(lambda: not pid_alive(worker), "the worker die with its session")  # PR_SET_PDEATHSIG
    temporaries = [p.name for p in (cache / "tmp").iterdir()]
    workers = [p.name for p in system.glob("edgecheck-workers-*")]
    assert len(temporaries) == 1 and f".{tag}." in temporaries[0], temporaries
    assert len(workers) == 1 and workers[0].startswith(f"edgecheck-workers-{tag}-"), workers
    # leftovers of a live process, and of a pid the system has given to another process since
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        live_tag = owner_tag(live.pid)
        kept = [cache / "tmp" / f"{'c' * 16}.{live_tag}.0000beef", system / f"edgecheck-workers-{live_tag}-kept"]
        reused_tag = re.sub(r"s(\d+|x)$", "s1", owner_tag())  # this test's pid, an earlier start
        reused = [cache / "tmp" / f"{'d' * 16}.{reused_tag}.0000dead", system / f"edgecheck-workers-{reused_tag}-gone"]
        for folder in kept + reused:
            folder.mkdir()
            (folder / "file").write_bytes(b"x")
        monkeypatch.delenv("EDGE_TEST_BLOCK")
        again = pytester.runpytest_subprocess("specs", "-p", "no:cacheprovider", f"--edge-cache-dir={cache}")
        again.assert_outcomes(passed=3)
        assert sorted(p.name for p in (cache / "tmp").iterdir()) == [kept[0].name]
        assert sorted(p.name for p in system.glob("edgecheck-workers-*")) == [kept[1].name]
    finally:
        live.kill()
        live.wait()


# 4. a wait on another process's lock says so


HOLDER = '''
import sys, time
from pathlib import Path
from edgecheck.artifacts import apply_here, step_key
from edgecheck.cache import ArtifactCache
from edgecheck.compress import RecipeContext, get_recipe
from edgecheck.spec import RecipeStep

model, cache, started, release = map(Path, sys.argv[1:5])


def build(folder):
    started.write_text("holding the lock")
    while not release.exists():
        time.sleep(0.05)
    return apply_here(get_recipe("fp16"), None, model, RecipeContext(calibration=None, out_dir=folder))


ArtifactCache(cache).artifact(step_key(model, RecipeStep(recipe="fp16"), None), build)
'''


def test_a_session_waiting_on_another_process_lock_says_what_it_waits_for(pytester, spec_project, tmp_path):
    spec_project(SPEC % "fp16")
    cache, started, release = tmp_path / "cache", tmp_path / "started", tmp_path / "release"
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    holder = subprocess.Popen([sys.executable, str(script), str(pytester.path / "models" / "clf.onnx"), str(cache),
                               str(started), str(release)])
    log = tmp_path / "session.log"
    session = None
    try:
        poll(started.exists, "the holder take the lock", holder)
        with log.open("wb") as output:
            session = pytester.popen([sys.executable, "-m", "pytest", "specs", "-p", "no:cacheprovider",
                                      f"--edge-cache-dir={cache}", "--junitxml=r.xml"],
                                     stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        poll(lambda: "edgecheck: waiting for" in log.read_text(), "the notice of the wait", session, log)
        release.write_text("go")
        assert holder.wait(timeout=WAIT_S) == 0
        assert session.wait(timeout=WAIT_S) == 0, log.read_text()
    finally:
        release.write_text("go")
        for process in (holder, session):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    text = log.read_text()
    (notice,) = [line for line in text.splitlines() if "edgecheck: waiting for" in line]
    (entry,) = (cache / "artifacts").glob("*/*")
    assert notice.startswith(f"edgecheck: waiting for the cache entry {entry}: another process holds its lock "
                             f"{cache / 'locks' / (entry.name + '.lock')} (pid {holder.pid} on "), notice
    cases = junit_properties(pytester.path / "r.xml")
    fp16 = {c["edge.cache"] for c in cases.values() if c.get("edge.recipe") == "fp16"}
    assert fp16 == {"1 of 1 steps from the cache"}  # the holder built it, the session took it
    assert list((cache / "locks").glob("*.holder")) == []  # each holder removed its record


# 5. a full disk says where the cache is and how to move it


@pytest.fixture
def small_disk(tmp_path):
    """A real 64 KiB file system (tmpfs), where the machine lets this test mount one."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here to fill a disk for real: {done.stderr.strip() or done.returncode}"
                    " (needs root or CAP_SYS_ADMIN)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)
        if os.path.ismount(mount):
            subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def _says_where_and_how(text: str, cache: Path) -> None:
    assert "No space left on device" in text, text
    assert f"the disk is full: the edgecheck cache is {cache} (" in text, text
    assert re.search(r"\d[\d,]*\.\d MiB free there", text), text
    assert "move the cache to a disk with room with --edge-cache-dir DIR" in text, text


def test_a_full_disk_in_our_own_writes_says_where_the_cache_is(small_disk):
    cache = small_disk / "cache"

    def big(folder: Path) -> Artifact:
        return writer(b"\1" * 2**20)(folder)

    with pytest.raises(RecipeError) as raised:
        ArtifactCache(cache).artifact(KEY, big)
    _says_where_and_how(str(raised.value), cache)
    assert list((cache / "tmp").iterdir()) == []  # the half-written build is gone
    with pytest.warns(CacheWarning, match="could not store outputs") as record:
        outputs, cached = ArtifactCache(cache).outputs(KEY, lambda _: {"y": np.ones(2**18, np.float32)})
    assert not cached and outputs["y"].shape == (2**18,)
    _says_where_and_how(str(record[0].message), cache)


def test_outputs_a_worker_cannot_write_into_a_full_cache_are_computed_elsewhere_with_a_warning(small_disk):
    """A worker writes outputs straight into the cache's entry in the making; where that fills the disk, the
    outputs are computed again outside the cache (storing is an optimisation, never a failure)."""
    from edgecheck.outputfiles import load_outputs, save_outputs

    cache = small_disk / "cache"
    big = {"y": np.ones(2**18, np.float32)}  # 1 MiB: more than the small disk holds
    folders = []

    def compute(folder: Path | None) -> dict[str, np.ndarray]:
        folders.append(folder)
        where = folder if folder is not None else small_disk.parent
        return load_outputs(where, save_outputs(where, big))

    with pytest.warns(CacheWarning, match="could not store outputs") as record:
        outputs, cached = ArtifactCache(cache).outputs(KEY, compute)
    assert not cached and np.array_equal(outputs["y"], big["y"])
    assert folders[0] is not None and folders[0].is_relative_to(cache) and folders[1] is None
    _says_where_and_how(str(record[0].message), cache)
    assert list((cache / "tmp").iterdir()) == []  # the half-written entry is gone


def test_a_session_whose_converter_fills_the_cache_disk_says_where_the_cache_is(pytester, spec_project, small_disk,
                                                                                monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # the summary's reasons wrap to the terminal: one line each here
    params = make_classifier(pytester.path / "models" / "clf.onnx", classes=20_000)  # 320 KB of weights
    make_eval_data(pytester.path / "models" / "eval.npz", params, samples=4)
    spec_project(SPEC.replace("size_mb: 1", "size_mb: 10") % "fp16")
    cache = small_disk / "cache"
    result = pytester.runpytest_subprocess("specs", "-p", "no:cacheprovider", f"--edge-cache-dir={cache}")
    result.assert_outcomes(passed=1, failed=2)  # the original passes; fp16's checks fail with the cause
    text = result.stdout.str()
    assert "fp16: onnxruntime.transformers.float16 failed: OSError: [Errno 28] No space left on device" in text, text
    _says_where_and_how(text, cache)
    result.stdout.fnmatch_lines(["  FAIL*size*fp16", "      *the disk is full: the edgecheck cache is *"])  # the summary
