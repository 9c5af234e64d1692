"""pytest-xdist: one artifact's checks on one worker (edgecheck.scheduling), and outputs computed once across
workers (the cache's per-key lock), observed in real `-n 2` sessions on small models."""

from __future__ import annotations

import multiprocessing
import re
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("xdist")

from edgecheck.cache import ArtifactCache  # noqa: E402
from edgecheck.scheduling import (  # noqa: E402
    ArtifactScopeScheduling, ItemNames, item_scope, pick_scope, scope_order, scopes_of)

NAMES = ItemNames(checks=("accuracy", "parity", "size", "ops", "energy-mj"),
                  runs=tuple((t, b) for t in ("host", "my-board", "my") for b in ("onnxruntime", "tflite")))


# the scope of a node id


@pytest.mark.parametrize("nodeid, scope", [
    ("specs/a.yaml::host-onnxruntime-int8-dynamic-parity", "specs/a.yaml::int8-dynamic"),
    ("specs/a.yaml::my-board-tflite-int8-static-pc-size", "specs/a.yaml::int8-static-pc"),
    ("specs/a.yaml::host-onnxruntime-candidate+int8-static-accuracy", "specs/a.yaml::candidate+int8-static"),
    ("sub/specs/b.yml::my-board-onnxruntime-none-ops", "sub/specs/b.yml::none"),
    # a third party's check with '-' in its name: the longer name wins only where the recipe is the same either way
    ("specs/a.yaml::host-onnxruntime-fp16-energy-mj", "specs/a.yaml::fp16"),
])
def test_an_items_scope_is_its_spec_and_compress_entry(nodeid, scope):
    assert item_scope(nodeid, NAMES).key == scope


@pytest.mark.parametrize("nodeid", [
    "specs/a.yaml::spec",  # a spec that did not load
    "specs/a.yaml::host-onnxruntime-parity",  # no recipe left
    "specs/a.yaml::host-onnxruntime-int8-latency",  # a check this session does not know
    "specs/a.yaml::lab-onnxruntime-int8-parity",  # a target this session does not know
    "specs/a.yaml::my-board-onnxruntime-int8-parity",  # 'my' + 'board-onnxruntime-...' fails, 'my-board' fits: fine
    "tests/test_x.py::test_one",
    "tests/test_x.py::TestA::test_b[host-onnxruntime-int8-parity]",
    "other.yaml",
])
def test_what_does_not_split_one_way_is_its_own_scope_or_one_artifact(nodeid):
    scope = item_scope(nodeid, NAMES)
    if nodeid.endswith("my-board-onnxruntime-int8-parity"):
        assert scope.key == "specs/a.yaml::int8"
    else:
        assert scope.key == nodeid and scope.spec is None


def test_a_name_that_splits_two_ways_is_its_own_scope():
    # with checks 'mj' and 'energy-mj' the recipe is 'x-energy' or 'x': two readings, no grouping
    names = ItemNames(checks=("mj", "energy-mj"), runs=(("host", "onnxruntime"),))
    nodeid = "specs/a.yaml::host-onnxruntime-x-energy-mj"
    assert item_scope(nodeid, names).key == nodeid
    # targets 'my' and 'my-board' and backends 'board-tflite' and 'tflite': two readings of the same recipe
    names = ItemNames(checks=("size",), runs=(("my", "board-tflite"), ("my-board", "tflite")))
    assert item_scope("specs/a.yaml::my-board-tflite-x-size", names).key == "specs/a.yaml::x"


def test_scopes_go_out_each_specs_heaviest_first_then_by_work():
    ids = [f"specs/{spec}.yaml::host-onnxruntime-{recipe}-{check}"
           for spec in ("a", "b") for recipe in ("none", "fp16", "int8")
           for check in (("parity", "size") if recipe == "fp16" else ("parity", "accuracy", "size", "ops"))]
    ids.append("tests/test_x.py::test_one")
    order = scope_order(ids, NAMES)
    assert order[:2] == ["specs/a.yaml::int8", "specs/b.yaml::int8"]  # one artifact of each spec before a second
    assert order.index("specs/a.yaml::none") > order.index("specs/b.yaml::int8")
    assert set(order) == set(scopes_of(ids, NAMES))
    assert all(len(nodeids) == 4 for key, nodeids in scopes_of(ids, NAMES).items() if key.endswith(("int8", "none")))


def test_a_worker_keeps_to_its_specs_then_starts_a_new_one_then_helps_another():
    spec_of = {"a::int8": "a", "b::int8": "b", "a::fp16": "a", "c::int8": "c", "b::fp16": "b", "t.py::x": None}
    queue = list(spec_of)
    assert pick_scope(queue, spec_of, ["b"], {"a", "b"}) == "b::int8"  # its own spec first, wherever it stands
    assert pick_scope(queue, spec_of, [], {"a", "b"}) == "c::int8"  # else a spec nobody started
    assert pick_scope(["a::fp16", "t.py::x"], spec_of, ["b"], {"a", "b"}) == "t.py::x"  # (or no spec at all)
    assert pick_scope(["a::fp16", "b::fp16"], spec_of, ["c"], {"a", "b", "c"}) == "a::fp16"  # else the queue's next


class FakeWorker:
    """A worker as the scheduler sees it: what it was sent, in order."""

    def __init__(self, name: str):
        self.gateway = type("Gateway", (), {"id": name})()
        self.sent: list[int] = []
        self.shutting_down = False

    def send_runtest_some(self, indexes: list[int]) -> None:
        self.sent.extend(indexes)

    def shutdown(self) -> None:
        self.shutting_down = True


def _simulate(specs: dict[str, float], workers: int = 2) -> tuple[dict[str, set[str]], dict[str, float]]:
    """Four entries per spec (each check of the spec's entries takes its spec's seconds) run on fake workers that
    finish their items in time order: the workers of each spec's items, and each worker's busy seconds."""
    ids = [f"specs/{spec}.yaml::host-onnxruntime-{recipe}-{check}" for spec in specs
           for recipe in ("none", "fp16", "int8-dynamic", "int8-static") for check in ("parity", "accuracy")]
    options = {"tx": [f"{workers}*popen"], "loadscopereorder": True}
    config = SimpleNamespace(getvalue=options.get, option=SimpleNamespace(**options))
    scheduler = ArtifactScopeScheduling(config, None, NAMES)
    nodes = [FakeWorker(f"gw{i}") for i in range(workers)]
    for node in nodes:
        scheduler.add_node(node)
        scheduler.add_node_collection(node, ids)
    scheduler.schedule()
    busy = {node.gateway.id: 0.0 for node in nodes}
    done = {node.gateway.id: 0 for node in nodes}
    ran: dict[str, set[str]] = {}
    while any(done[n.gateway.id] < len(n.sent) for n in nodes):
        node = min((n for n in nodes if done[n.gateway.id] < len(n.sent)), key=lambda n: busy[n.gateway.id])
        index = node.sent[done[node.gateway.id]]
        spec = ids[index].split("/")[1].split(".")[0]
        busy[node.gateway.id] += specs[spec]
        done[node.gateway.id] += 1
        ran.setdefault(spec, set()).add(node.gateway.id)
        scheduler.mark_test_complete(node, index)
    assert sorted(i for n in nodes for i in n.sent) == list(range(len(ids)))  # every item once
    return ran, busy


def test_workers_keep_to_their_specs_and_share_only_the_last_one():
    ran, busy = _simulate({"a": 1.0, "b": 1.0, "c": 1.0, "d": 1.0})
    assert sorted(len(workers) for workers in ran.values()) == [1, 1, 1, 1]  # even work: no spec on two workers
    assert busy["gw0"] == busy["gw1"]
    ran, busy = _simulate({"a": 3.0, "b": 1.0, "c": 1.0, "d": 1.0})
    assert sorted(len(workers) for workers in ran.values()) == [1, 1, 1, 2]  # one spec shared, at the end
    assert abs(busy["gw0"] - busy["gw1"]) <= 2 * 3.0  # balanced to within a scope (two checks of the heaviest)


# outputs: computed once across processes


def _ask_for_outputs(root: str, key: str, folder: str, name: str, hold_until: str) -> None:
    """In a process of its own: outputs of `key`; the computation (if this process does it) records itself and,
    when `hold_until` is given, lasts until that file exists (another process said it waits)."""
    def notify(text: str) -> None:
        (Path(folder) / f"{name}.notice").write_text(text)

    def compute(_work) -> dict[str, np.ndarray]:
        (Path(folder) / f"{name}.computed").write_text("")
        deadline = time.monotonic() + 60
        while hold_until and not (Path(folder) / hold_until).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return {"y": np.full(3, 7.0, np.float32)}

    outputs, cached = ArtifactCache(Path(root), notify).outputs(key, compute)
    np.save(Path(folder) / f"{name}.npy", outputs["y"])
    (Path(folder) / f"{name}.cached").write_text(str(cached))


def test_a_second_process_waits_for_outputs_being_computed_and_reads_them(tmp_path):
    root, key = tmp_path / "cache", "ab" * 32
    spawn = multiprocessing.get_context("spawn")
    first = spawn.Process(target=_ask_for_outputs, args=(str(root), key, str(tmp_path), "first", "second.notice"))
    first.start()
    deadline = time.monotonic() + 60
    while not (tmp_path / "first.computed").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (tmp_path / "first.computed").exists(), "the first process never computed"
    # the first still computes (it waits for the second's notice): the second must wait, not compute
    second = spawn.Process(target=_ask_for_outputs, args=(str(root), key, str(tmp_path), "second", ""))
    second.start()
    for process in (first, second):
        process.join(120)
        assert process.exitcode == 0
    assert not (tmp_path / "second.computed").exists()
    assert (tmp_path / "second.cached").read_text() == "True"
    assert np.load(tmp_path / "second.npy").tolist() == [7.0, 7.0, 7.0]
    notice = (tmp_path / "second.notice").read_text()
    assert notice.startswith("edgecheck: waiting for the outputs ") and f"{key}.lock" in notice


def test_outputs_are_computed_unshared_when_the_lock_cannot_be_had(tmp_path):
    root = tmp_path / "cache"
    root.mkdir()
    (root / "locks").write_text("a file where the lock folder goes")
    computed = []
    outputs, cached = ArtifactCache(root).outputs("cd" * 32, lambda _: computed.append(1) or {"y": np.ones(2)})
    assert computed == [1] and not cached and outputs["y"].tolist() == [1.0, 1.0]
    again, cached = ArtifactCache(root).outputs("cd" * 32, lambda _: computed.append(2) or {"y": np.zeros(2)})
    assert computed == [1] and cached and again["y"].tolist() == [1.0, 1.0]  # stored all the same


# real sessions


SPEC = """
edgecheck: 1
model: {{path: ../models/{model}.onnx}}
data:
  evaluation: {{path: ../models/{model}.npz}}
compress: [int8-dynamic, fp16]
targets:
  host:
    backends: [onnxruntime]
    threads: 1
    budgets:
      accuracy_drop: 50
      parity: {{rel_l2: 0.5}}
      size_mb: 1
  my-board:
    backends: [onnxruntime]
    threads: 1
    budgets:
      parity: {{rel_l2: 0.5}}
      size_mb: 1
"""
# the controller's scheduler, as xdist's session holds it (for edgecheck's, the one it chose)
SAY_SCHEDULER = """
import atexit
import gc
from pathlib import Path

_here = Path.cwd()
_name = []


def _say_frozen():  # registered at import, before edgecheck's own at unconfigure: it runs after that one
    if _name:
        (_here / f"frozen-{_name[0]}.txt").write_text(str(gc.get_freeze_count()))


atexit.register(_say_frozen)


def pytest_configure(config):  # (not $PYTEST_XDIST_WORKER: a controller run by a test's xdist worker inherits it)
    _name.append(config.workerinput["workerid"] if hasattr(config, "workerinput") else "controller")


def pytest_sessionfinish(session):
    dsession = session.config.pluginmanager.getplugin("dsession")
    if dsession is not None and dsession.sched is not None:
        Path("scheduler.txt").write_text(type(getattr(dsession.sched, "chosen", dsession.sched)).__name__)
"""
WORKER_RESULT = re.compile(r"^\[(gw\d+)\] \[\s*\d+%\] (PASSED|FAILED|SKIPPED|ERROR) (\S+) *$", re.M)
DONE = r" … \d+(\.\d+)? (ms|s)$"


# each worker's first outputs (the spec's reference, which both scopes of one spec begin with) are asked for at
# once, and the reference takes 3 s to compute: without a lock both workers would compute it, with it one waits
CONTENDED = """
import os
import time
from pathlib import Path

from edgecheck import cache
from edgecheck.measure import runs

ROOT = Path(__file__).parent
_outputs, _run = cache.ArtifactCache.outputs, runs.ModelRuns.outputs
_first = []


def outputs(self, key, compute):
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker and not _first:
        _first.append(key)
        (ROOT / f"arrived-{worker}").write_text(key)
        deadline = time.monotonic() + 120
        while len(list(ROOT.glob("arrived-*"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    return _outputs(self, key, compute)


def slow_reference(self, backend, artifact, threads, inputs, into=None):
    if artifact.name == "a.onnx":
        time.sleep(3)
    return _run(self, backend, artifact, threads, inputs, into)


cache.ArtifactCache.outputs = outputs
runs.ModelRuns.outputs = slow_reference
"""


def _project(pytester: pytest.Pytester, specs: tuple[str, ...], conftest: str) -> pytest.Pytester:
    """Specs of small models, each with int8-dynamic and fp16, on host and a project device whose name holds '-'."""
    from conftest import make_classifier, make_eval_data

    models = pytester.path / "models"
    models.mkdir()
    (pytester.path / "specs").mkdir()
    for name, seed in zip(specs, range(0, 50, 5)):
        make_eval_data(models / f"{name}.npz", make_classifier(models / f"{name}.onnx", seed=seed), samples=256)
        (pytester.path / "specs" / f"{name}.yaml").write_text(SPEC.format(model=name).lstrip())
    (pytester.path / "devices").mkdir()
    (pytester.path / "devices" / "my-board.yaml").write_text("name: my-board\nextends: host\n")
    pytester.makeini("[pytest]\nedge_devices_dir = devices\n")
    pytester.makeconftest(SAY_SCHEDULER + conftest)
    return pytester


@pytest.fixture
def two_spec_project(pytester: pytest.Pytester) -> pytest.Pytester:
    return _project(pytester, ("a", "b"), "")


@pytest.fixture
def contended_project(pytester: pytest.Pytester) -> pytest.Pytester:
    return _project(pytester, ("a",), CONTENDED)


def _run(project: pytest.Pytester, cache: Path, *args: str) -> pytest.RunResult:
    return project.runpytest_subprocess("specs", "-v", "-p", "no:cacheprovider", "-o", "edge_progress_after=0",
                                        f"--edge-cache-dir={cache}", *args)


def test_minus_n_2_keeps_each_artifacts_checks_on_one_worker(two_spec_project, tmp_path):
    result = _run(two_spec_project, tmp_path / "cache", "-n", "2")
    result.assert_outcomes(passed=28)
    out = result.stdout.str()
    assert "scheduling tests via ArtifactScheduling" in out
    assert (two_spec_project.path / "scheduler.txt").read_text() == "ArtifactScopeScheduling"
    workers: dict[tuple[str, str], set[str]] = {}
    for worker, outcome, nodeid in WORKER_RESULT.findall(out):
        spec, name = nodeid.split("::")
        recipe = next(r for r in ("int8-dynamic", "fp16", "none") if f"-{r}-" in name)
        workers.setdefault((spec, recipe), set()).add(worker)
    assert len(workers) == 6 and all(len(found) == 1 for found in workers.values()), workers
    assert len(set().union(*workers.values())) == 2  # and both workers had work
    # each worker left without the collector's passes over what it held (freeze_at_exit); the controller as before
    frozen = {path.name: int(path.read_text()) for path in two_spec_project.path.glob("frozen-*.txt")}
    assert set(frozen) == {"frozen-gw0.txt", "frozen-gw1.txt", "frozen-controller.txt"}, frozen
    assert frozen["frozen-gw0.txt"] > 10_000 and frozen["frozen-gw1.txt"] > 10_000, frozen
    assert frozen["frozen-controller.txt"] == 0, frozen


def test_a_session_alone_leaves_without_the_collectors_passes(two_spec_project, tmp_path):
    result = _run(two_spec_project, tmp_path / "cache", "-n", "0")
    result.assert_outcomes(passed=28)
    assert int((two_spec_project.path / "frozen-controller.txt").read_text()) > 10_000  # (no workers: it ran them)


def test_minus_n_2_computes_each_outputs_key_once(contended_project, tmp_path):
    cache = tmp_path / "cache"
    result = _run(contended_project, cache, "-n", "2")
    result.assert_outcomes(passed=14)
    arrived = {p.name: p.read_text() for p in contended_project.path.glob("arrived-*")}
    assert len(arrived) == 2 and len(set(arrived.values())) == 1, arrived  # the two workers did contend
    out = result.stdout.str()
    computed = re.findall(r"^\[gw\d+\] ((reference )?outputs of .*)" + DONE, out, re.M)
    stored = [p for p in (cache / "outputs").glob("*/*") if p.is_dir()]
    # each entry was computed by one worker: one line of a finished computation per entry written
    assert computed and len(computed) == len(stored), "\n".join(c[0] for c in computed)
    # the other waited, and said so on the controller's terminal
    assert re.search(r"^\[gw\d\] edgecheck: waiting for the outputs \S+: another process holds its lock", out, re.M)
    built = re.findall(r"^\[gw\d+\] making (\S+) from (\S+)" + DONE, out, re.M)
    assert sorted(built) == sorted(set(built)) and len(built) == 2  # 2 entries, once each
    again = _run(contended_project, cache, "-n", "2")
    again.assert_outcomes(passed=14)
    assert "outputs of" not in again.stdout.str() and "making" not in again.stdout.str()


@pytest.mark.parametrize("where, scheduler", [("command line", "LoadScheduling"), ("addopts", "LoadFileScheduling")])
def test_an_explicit_dist_mode_is_the_users(two_spec_project, tmp_path, where, scheduler):
    if where == "addopts":
        two_spec_project.makeini("[pytest]\nedge_devices_dir = devices\naddopts = --dist loadfile\n")
        result = _run(two_spec_project, tmp_path / "cache", "-n", "2")
    else:
        result = _run(two_spec_project, tmp_path / "cache", "-n", "2", "--dist", "load")
    result.assert_outcomes(passed=28)
    assert f"scheduling tests via {scheduler}" in result.stdout.str()
    assert (two_spec_project.path / "scheduler.txt").read_text() == scheduler


def test_a_run_without_specs_keeps_xdists_load(pytester):
    pytester.makeconftest(SAY_SCHEDULER + "\n\ndef pytest_unconfigure(config):\n"
                          "    import sys\n"
                          "    Path('loaded.txt').write_text(str('edgecheck.devices' in sys.modules))\n")
    pytester.makepyfile(test_plain="def test_a():\n    pass\n\ndef test_b():\n    pass\n")
    result = pytester.runpytest_subprocess("-n", "2", "-v", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    assert "scheduling tests via ArtifactScheduling" in result.stdout.str()  # edgecheck's hook answered
    assert (pytester.path / "scheduler.txt").read_text() == "LoadScheduling"  # and kept xdist's load
    assert (pytester.path / "loaded.txt").read_text() == "False"  # the controller loaded no names for it
    # workers that ran no check of edgecheck's exit as Python would without it
    assert [(pytester.path / f"frozen-{w}.txt").read_text() for w in ("gw0", "gw1")] == ["0", "0"]


# a check that takes its worker down: xdist reports it once, as crashed, and the other checks of its artifact still
# run (xdist's LoadScopeScheduling gave the whole scope, crashed item included, to each replacement worker in turn)
CRASHED = "specs/a.yaml::host-onnxruntime-int8-dynamic-parity"
CRASHES = f"""
import os


def pytest_runtest_call(item):
    if item.nodeid == {CRASHED!r} and os.environ.get("PYTEST_XDIST_WORKER"):
        os._exit(1)
"""


@pytest.fixture
def crashing_project(pytester: pytest.Pytester) -> pytest.Pytester:
    return _project(pytester, ("a",), CRASHES)


def test_a_check_that_crashes_its_worker_fails_once_and_its_artifacts_other_checks_run(crashing_project, tmp_path):
    result = _run(crashing_project, tmp_path / "cache", "-n", "2")
    out = result.stdout.str()
    result.assert_outcomes(passed=13, failed=1)
    assert (crashing_project.path / "scheduler.txt").read_text() == "ArtifactScopeScheduling"
    outcomes = WORKER_RESULT.findall(out)
    assert [(outcome, nodeid) for _, outcome, nodeid in outcomes if outcome != "PASSED"] == [("FAILED", CRASHED)]
    siblings = [nodeid for _, outcome, nodeid in outcomes if "-int8-dynamic-" in nodeid and outcome == "PASSED"]
    assert len(siblings) == 4, out  # the artifact's other checks (accuracy and size on host, parity and size on my-board)
    crashed_on = next(worker for worker, _, nodeid in outcomes if nodeid == CRASHED)
    after = outcomes[[nodeid for _, _, nodeid in outcomes].index(CRASHED) + 1:]
    # what the crashed worker had left of the artifact went back as one scope, to one other worker
    rest = {worker for worker, _, nodeid in after if "-int8-dynamic-" in nodeid}
    assert len(rest) <= 1 and crashed_on not in rest, out
    assert len(re.findall(r"^replacing crashed worker gw\d+$", out, re.M)) == 1
    assert f"crashed while running {CRASHED!r}" in out and "maximum crashed workers" not in out
