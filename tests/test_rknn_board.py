"""The rknn backend on a board (RunOptions(on_board=True)): the .rknn file run with rknn-toolkit-lite2's
RKNNLite, never the toolkit's simulator.

RKNNLite runs only on a Rockchip board (aarch64, librknnrt.so, an NPU): the tests that need it skip here
with that reason. What runs everywhere: the reason a machine without it gives, a board load without it,
the model description read from a .rknn file, the options the session passes, and the runner's own work
(input order, NCHW to NHWC, batches, return codes, facts) against stand-ins for RKNNLite written from its
documented API. Where `edgecheck env create rknn` has been run, a stand-in backed by rknn-toolkit2's
simulator checks that the board runner's feeds give exactly the simulator runner's outputs.
"""

from __future__ import annotations

import importlib.util
import json
import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import HANG_GUARD_S

from edgecheck.backends.base import RunOptions
from edgecheck.envs import find_env, run_env_env, unavailable_reason
from edgecheck.errors import BackendError
from edgecheck.vendors.rknn import lite
from edgecheck.vendors.rknn.backend import RknnBackend

REPO = Path(__file__).resolve().parents[1]
NO_RKNNLITE = "rknnlite is not installed: it runs only on a Rockchip board (aarch64) with librknnrt"
HAVE_RKNNLITE = importlib.util.find_spec("rknnlite") is not None
needs_rknnlite = pytest.mark.skipif(not HAVE_RKNNLITE, reason=NO_RKNNLITE)
without_rknnlite = pytest.mark.skipif(HAVE_RKNNLITE, reason="rknnlite is installed here (a board): the test is of a "
                                      "machine without it")
ENV = find_env("rknn")
needs_toolkit = pytest.mark.skipif(ENV is None, reason=unavailable_reason("rknn") or "")
BOARD_MODEL = os.environ.get("EDGECHECK_BOARD_RKNN")  # a .rknn built for this board's chip, to run on its NPU


def rknn_file(path: Path, inputs: list[tuple[str, list[int]]], outputs: list[tuple[str, list[int]]],
              platforms: tuple[str, ...] = ("rk3588",)) -> Path:
    """A .rknn file laid out as rknn-toolkit2 2.x writes one (header, compiled model, then its JSON
    description), with a stand-in for the compiled model; the description lists outputs first, as a
    reader must not rely on its order."""
    tensors, graph = [], []
    for side, entries in (("output", outputs), ("input", inputs)):
        for index, (name, shape) in enumerate(entries):
            tensors.append({"tensor_id": len(tensors), "url": name, "size": shape, "dim_num": len(shape)})
            graph.append({"left": side, "left_tensor_id": index, "right": "norm_tensor",
                          "right_tensor_id": tensors[-1]["tensor_id"]})
    info = json.dumps({"graph": graph, "norm_tensor": tensors, "input_num": len(inputs), "output_num": len(outputs),
                       "target_platform": list(platforms), "version": "2.5.0"}).encode()
    model = bytes(range(256)) * 4
    head = lite.MAGIC + b"\0" * 4 + struct.pack("<QQ", 6, len(model))
    path.write_bytes(head.ljust(lite.DATA_OFFSET, b"\0") + model + struct.pack("<Q", len(info)) + info)
    return path


TWO = ([("zeta", [1, 4]), ("alpha", [1, 3, 8, 8])], [("zout", [1, 7]), ("aout", [1, 3, 8, 8])])


# --- a machine without rknnlite (this one) ---------------------------------------------------------------------

@without_rknnlite
def test_board_availability_here_says_why_and_what_a_board_needs():
    availability = RknnBackend().board_availability()
    assert not availability
    assert NO_RKNNLITE in availability.reason
    assert "pip install rknn-toolkit-lite2" in availability.reason and "librknnrt.so" in availability.reason
    assert RknnBackend().board_facts() == {}  # nothing to record: no runtime, and never the simulator


@without_rknnlite
def test_a_board_load_without_rknnlite_is_a_backend_error_naming_the_file_and_the_cause(tmp_path):
    artifact = rknn_file(tmp_path / "model.rknn", *TWO)
    with pytest.raises(BackendError) as caught:
        RknnBackend().load(artifact, RunOptions(on_board=True))
    message = str(caught.value)
    assert caught.value.artifact == artifact and caught.value.step == "loading"
    assert "model.rknn" in message and NO_RKNNLITE in message and "pip install rknn-toolkit-lite2" in message
    assert "build folder" not in message and "simulator" not in message  # no rebuild is tried on a board


def test_the_host_path_is_unchanged_a_rknn_without_its_build_folder_is_refused_for_the_simulator(tmp_path):
    artifact = rknn_file(tmp_path / "model.rknn", *TWO)
    with pytest.raises(BackendError, match="no build folder model.rknn.build"):
        RknnBackend().load(artifact, RunOptions())


# --- the model description in the file, and the session's options ----------------------------------------------

def test_the_files_description_gives_names_in_model_order_built_shapes_and_chips(tmp_path):
    io = lite.io_from_info(lite.read_model_info(rknn_file(tmp_path / "m.rknn", *TWO, platforms=("rk3566", "rk3568"))))
    assert io == lite.ModelIo(("zeta", "alpha"), ((1, 4), (1, 3, 8, 8)), ("zout", "aout"), ("rk3566", "rk3568"))


@pytest.mark.parametrize("damage", ["not rknn", "truncated", "huge", "not json", "no outputs"])
def test_a_file_without_a_readable_description_gives_none(tmp_path, damage):
    path = rknn_file(tmp_path / "m.rknn", *TWO)
    data = path.read_bytes()
    (size,) = struct.unpack_from("<Q", data, 16)
    at = lite.DATA_OFFSET + size
    damaged = {"not rknn": b"ONNX" + data[4:], "truncated": data[:at + 4],
               "huge": data[:at] + struct.pack("<Q", 1 << 40) + data[at + 8:],
               "not json": data[:at + 8] + b"x" + data[at + 9:]}.get(damage)
    if damage == "no outputs":
        damaged = rknn_file(tmp_path / "n.rknn", TWO[0], []).read_bytes()
    path.write_bytes(damaged)
    info = lite.read_model_info(path)
    assert info is None or lite.io_from_info(info) is None


def test_the_sessions_names_are_used_their_count_checked_against_the_file(tmp_path):
    artifact = rknn_file(tmp_path / "m.rknn", *TWO)
    extra = {"input_names": '["z", "a"]', "output_names": '["y", "b"]'}
    io = lite.model_io(artifact, RunOptions(extra=extra))
    assert io.inputs == ("z", "a") and io.outputs == ("y", "b") and io.shapes == ((1, 4), (1, 3, 8, 8))
    with pytest.raises(BackendError, match=r"names 1 inputs and 2 outputs, the file 2 \(zeta, alpha\)"):
        lite.model_io(artifact, RunOptions(extra={**extra, "input_names": '["z"]'}))


@pytest.mark.parametrize(("extra", "says"), [
    ({"input_names": "[x]", "output_names": '["y"]'}, "option input_names is not JSON"),
    ({"input_names": '"x"', "output_names": '["y"]'}, "option input_names is not a JSON list"),
    ({"input_names": '["x"]'}, "option output_names must list the model's distinct names"),
    ({"input_names": '["x", "x"]', "output_names": '["y"]'}, "option input_names must list"),
    ({"input_names": '["x"]', "output_names": '["y"]', "input_shapes": "[[1, 3], [2]]"}, "one shape .* per input"),
])
def test_unreadable_names_from_the_session_say_which_option(tmp_path, extra, says):
    (tmp_path / "m.rknn").write_bytes(b"RKNN")
    with pytest.raises(BackendError, match=says):
        lite.model_io(tmp_path / "m.rknn", RunOptions(extra=extra))


def test_board_extra_comes_from_the_build_job_else_the_files_description_else_nothing(tmp_path):
    backend = RknnBackend()
    described = rknn_file(tmp_path / "m.rknn", *TWO)
    assert backend.board_extra(described) == {"input_names": '["zeta", "alpha"]', "output_names": '["zout", "aout"]',
                                              "input_shapes": "[[1, 4], [1, 3, 8, 8]]"}
    folder = tmp_path / "m.rknn.build"
    folder.mkdir()
    (folder / "job.json").write_text(json.dumps({"inputs": [{"name": "a:0", "shape": [2, 4]}], "outputs": ["y"]}))
    assert backend.board_extra(described) == {"input_names": '["a:0"]', "output_names": '["y"]',
                                              "input_shapes": "[[2, 4]]"}
    (tmp_path / "bare.rknn").write_bytes(b"RKNN")
    assert backend.board_extra(tmp_path / "bare.rknn") == {}


# --- the runner against a stand-in for RKNNLite (its documented API, nothing else) ------------------------------

STAND_IN = '''
import numpy as np


class RKNNLite:
    NPU_CORE_AUTO, NPU_CORE_0, NPU_CORE_1, NPU_CORE_2, NPU_CORE_0_1, NPU_CORE_0_1_2 = 0, 1, 2, 4, 3, 7
    calls = []
    returns = {}  # method name to what it returns instead of doing its work

    def __init__(self, verbose=False, verbose_file=None):
        self.path = None

    def _call(self, name, *args, **kwargs):
        RKNNLite.calls.append((name, args, kwargs))
        return RKNNLite.returns.get(name, 0)

    def load_rknn(self, path):
        self.path = path
        return self._call("load_rknn", path)

    def init_runtime(self, target=None, device_id=None, async_mode=False, core_mask=NPU_CORE_AUTO):
        return self._call("init_runtime", core_mask=core_mask)

    def inference(self, inputs, data_type=None, data_format=None, inputs_pass_through=None, get_frame_id=False):
        if "inference" in RKNNLite.returns:
            return self._call("inference")
        self._call("inference", [(a.shape, str(a.dtype)) for a in inputs], data_format=data_format)
        zeta, alpha = inputs  # the model: zout = [zeta, alpha summed over H and W], aout = alpha as NCHW
        return [np.concatenate([zeta, alpha.sum(axis=(1, 2))], axis=1), alpha.transpose(0, 3, 1, 2) * 2]

    def get_sdk_version(self):
        return "API: 2.3.2 (stand-in)\\n  DRV: rknnrt: 2.3.2"

    def release(self):
        self._call("release")
'''


@pytest.fixture
def stand_in(tmp_path, monkeypatch):
    """An `rknnlite` package that plays RKNNLite (and an rknn-toolkit-lite2 2.3.2 distribution), first on sys.path."""
    root = tmp_path / "site"
    (root / "rknnlite" / "api").mkdir(parents=True)
    (root / "rknnlite" / "__init__.py").write_text("")
    (root / "rknnlite" / "api" / "__init__.py").write_text(STAND_IN)
    dist = root / "rknn_toolkit_lite2-2.3.2.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: rknn-toolkit-lite2\nVersion: 2.3.2\n")
    monkeypatch.syspath_prepend(str(root))
    for name in ("rknnlite", "rknnlite.api"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    from rknnlite.api import RKNNLite

    RKNNLite.calls.clear()
    RKNNLite.returns.clear()
    yield RKNNLite
    for name in ("rknnlite", "rknnlite.api"):
        sys.modules.pop(name, None)


def _feed(count: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"alpha": rng.normal(size=(count, 3, 8, 8)), "zeta": rng.normal(size=(count, 4)).astype(np.float32)}


def test_a_board_run_feeds_the_model_order_nhwc_float32_and_names_outputs(tmp_path, stand_in):
    artifact = rknn_file(tmp_path / "m.rknn", *TWO)
    backend = RknnBackend()
    feed = _feed()
    with backend.load(artifact, RunOptions(on_board=True)) as runner:
        assert runner.input_names == ("zeta", "alpha") and runner.output_names == ("zout", "aout")
        got = runner.infer(feed)
        facts = backend.board_facts()
    calls = [c for c in stand_in.calls if c[0] == "inference"]
    assert calls == [("inference", ([((1, 4), "float32"), ((1, 8, 8, 3), "float32")],), {"data_format": None})]
    alpha = feed["alpha"].astype(np.float32)
    nhwc = np.ascontiguousarray(alpha.transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(got["zout"], np.concatenate([feed["zeta"], nhwc.sum(axis=(1, 2))], axis=1))
    np.testing.assert_array_equal(got["aout"], alpha * 2)  # the NHWC feed is the NCHW input, transposed
    assert ("init_runtime", (), {"core_mask": 0}) in stand_in.calls and stand_in.calls[-1][0] == "release"
    assert facts["runtime"] == "rknn-toolkit-lite2 2.3.2"
    assert facts["librknnrt"] == "API: 2.3.2 (stand-in) DRV: rknnrt: 2.3.2"
    assert facts["runs_on"].endswith("NPU") and "simulator" not in json.dumps(facts)


def test_more_samples_than_the_built_batch_run_one_batch_at_a_time(tmp_path, stand_in):
    artifact = rknn_file(tmp_path / "m.rknn", *TWO)
    feed = _feed(3)
    with RknnBackend().load(artifact, RunOptions(on_board=True)) as runner:
        got = runner.infer(feed)
        timed = runner.bind(feed)
        stand_in.calls.clear()
        timed()
    assert got["aout"].shape == (3, 3, 8, 8) and got["zout"].shape == (3, 7)
    np.testing.assert_array_equal(got["aout"], feed["alpha"].astype(np.float32) * 2)
    assert [c[0] for c in stand_in.calls] == ["inference"] * 3 + ["release"]
    with RknnBackend().load(artifact, RunOptions(on_board=True)) as runner:
        with pytest.raises(BackendError, match=r"do not fit the built shapes \[\[1, 4\], \[1, 3, 8, 8\]\]"):
            runner.infer({"zeta": np.zeros((1, 4)), "alpha": np.zeros((1, 3, 4, 4))})


@pytest.mark.parametrize(("mask", "value"), [("auto", 0), ("0", 1), ("0_1_2", 7), ("NPU_CORE_1", 2)])
def test_the_core_mask_option_picks_rknnlites_constant(tmp_path, stand_in, mask, value):
    with RknnBackend().load(rknn_file(tmp_path / "m.rknn", *TWO), RunOptions(on_board=True, extra={"core_mask": mask})):
        assert ("init_runtime", (), {"core_mask": value}) in stand_in.calls


def test_a_core_mask_rknnlite_lacks_or_does_not_know_is_refused(tmp_path, stand_in):
    artifact = rknn_file(tmp_path / "m.rknn", *TWO)
    with pytest.raises(BackendError, match="has no RKNNLite.NPU_CORE_ALL"):  # older than 2.0.0b0
        RknnBackend().load(artifact, RunOptions(on_board=True, extra={"core_mask": "all"}))
    with pytest.raises(BackendError, match="core_mask 'npu3' is not one of auto, 0, 1, 2"):
        RknnBackend().load(artifact, RunOptions(on_board=True, extra={"core_mask": "npu3"}))


def test_runtime_return_codes_fail_the_load_or_run_in_its_words_and_release_it(tmp_path, stand_in):
    artifact = rknn_file(tmp_path / "m.rknn", *TWO, platforms=("rk3566",))
    stand_in.returns["init_runtime"] = -1
    with pytest.raises(BackendError) as caught:
        RknnBackend().load(artifact, RunOptions(on_board=True, extra={"core_mask": "0"}))
    message = str(caught.value)
    assert "initialising the NPU runtime" in message and "init_runtime(core_mask=RKNNLite.NPU_CORE_0) returned -1" in message
    assert "built for rk3566" in message and stand_in.calls[-1][0] == "release"
    stand_in.returns.clear()
    stand_in.returns["load_rknn"] = -1
    with pytest.raises(BackendError, match="RKNNLite.load_rknn returned -1"):
        RknnBackend().load(artifact, RunOptions(on_board=True))
    stand_in.returns.clear()
    stand_in.returns["inference"] = None
    with RknnBackend().load(artifact, RunOptions(on_board=True)) as runner:
        with pytest.raises(BackendError, match="RKNNLite.inference returned no outputs"):
            runner.infer(_feed())


def test_without_names_from_the_session_or_the_file_the_load_says_what_to_pass(tmp_path, stand_in):
    (tmp_path / "m.rknn").write_bytes(b"RKNN" + bytes(100))
    with pytest.raises(BackendError, match="the session passes them .extra input_names and output_names"):
        RknnBackend().load(tmp_path / "m.rknn", RunOptions(on_board=True))


def test_with_rknnlite_but_no_librknnrt_availability_says_to_install_the_library(stand_in, monkeypatch):
    monkeypatch.setattr(lite, "_load_runtime_library", lambda: "librknnrt.so: cannot open shared object file")
    availability = RknnBackend().board_availability()
    assert not availability and "rknn-toolkit-lite2 2.3.2 is installed but librknnrt.so does not load" in availability.reason
    monkeypatch.setattr(lite, "_load_runtime_library", lambda: None)
    assert RknnBackend().board_availability()


# --- the board runner's feeds on rknn-toolkit2's own runtime (the simulator), where its environment exists -------

SIMULATED = '''
import json
import sys
from pathlib import Path

from edgecheck.vendors.rknn import toolkit
from edgecheck.vendors.rknn.backend import build_dir


class RKNNLite:  # RKNNLite's documented calls, run by rknn-toolkit2's simulator on the artifact's own build
    NPU_CORE_AUTO = 0

    def __init__(self, verbose=False, verbose_file=None):
        self.rknn = None

    def load_rknn(self, path):
        self.path = Path(path)
        return 0 if self.path.is_file() else -1

    def init_runtime(self, target=None, device_id=None, async_mode=False, core_mask=0):
        self.rknn = toolkit.build(build_dir(self.path))
        return self.rknn.init_runtime()

    def inference(self, inputs, data_type=None, data_format=None, inputs_pass_through=None, get_frame_id=False):
        return self.rknn.inference(inputs=inputs, data_format=data_format)

    def get_sdk_version(self):
        return "simulated"

    def release(self):
        if self.rknn is not None:
            self.rknn.release()
'''

COMPARE = '''
import json, sys
from pathlib import Path
import numpy as np
from edgecheck.backends.base import RunOptions
from edgecheck.vendors.rknn import toolkit
from edgecheck.vendors.rknn.backend import RknnBackend, build_dir

artifact = Path(sys.argv[1])
job = toolkit.read_job(build_dir(artifact))
rng = np.random.default_rng(3)
feed = {i["name"]: rng.uniform(0, 1, [3 * i["shape"][0]] + i["shape"][1:]).astype(np.float32) for i in job["inputs"]}
backend = RknnBackend()
extra = backend.board_extra(artifact)
with backend.load(artifact, RunOptions(on_board=True, extra=extra)) as board:
    got = board.infer(feed)
with RknnBackend().load(artifact) as host:
    want = host.infer(feed)
print(json.dumps({"extra": extra, "names": sorted(got), "equal": {k: bool(np.array_equal(got[k], want[k])) for k in want},
                  "shapes": {k: list(v.shape) for k, v in got.items()}}))
'''


@needs_toolkit
def test_the_board_runners_nhwc_feeds_give_the_simulator_runners_outputs_exactly(tmp_path):
    from test_rknn import two_input_model

    from edgecheck.compress import RecipeContext, get_recipe

    two_input_model(tmp_path / "two.onnx")
    recipe = get_recipe("rknn-fp16")
    out = tmp_path / "out"
    out.mkdir()
    artifact = recipe.apply(tmp_path / "two.onnx", recipe.parse_params({}), RecipeContext(None, out)).path
    site = tmp_path / "site"
    (site / "rknnlite" / "api").mkdir(parents=True)
    (site / "rknnlite" / "__init__.py").write_text("")
    (site / "rknnlite" / "api" / "__init__.py").write_text(SIMULATED)
    environ = run_env_env(ENV)
    environ["PYTHONPATH"] = os.pathsep.join([str(REPO), str(site)])
    said = subprocess.run([str(ENV.python), "-c", textwrap.dedent(COMPARE), str(artifact)], env=environ, cwd=tmp_path,
                          capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert said.returncode == 0, said.stdout[-3000:] + said.stderr[-3000:]
    result = json.loads(said.stdout.strip().splitlines()[-1])
    assert result["names"] == ["scores"] and result["shapes"] == {"scores": [3, 5]}
    assert result["equal"] == {"scores": True}
    assert json.loads(result["extra"]["input_names"]) == ["image", "extra"]
    info = lite.io_from_info(lite.read_model_info(artifact))  # the real file's own description says the same
    assert info is not None and info.inputs == ("image", "extra") and info.outputs == ("scores",)
    assert info.shapes == ((1, 3, 8, 8), (1, 4)) and info.platforms == ("rk3588",)


# --- on a board ---------------------------------------------------------------------------------------------------

@needs_rknnlite
def test_on_a_board_rknnlite_and_librknnrt_are_available_and_say_their_versions():
    assert RknnBackend().board_availability(), RknnBackend().board_availability().reason
    assert lite.lite_version() is not None


@pytest.mark.skipif(not BOARD_MODEL, reason="EDGECHECK_BOARD_RKNN names no .rknn built for this board's chip")
@needs_rknnlite
def test_on_a_board_a_rknn_file_runs_on_the_npu():
    backend = RknnBackend()
    artifact = Path(BOARD_MODEL)
    with backend.load(artifact, RunOptions(on_board=True)) as runner:
        io = lite.io_from_info(lite.read_model_info(artifact))
        feed = {name: np.random.default_rng(0).uniform(0, 1, shape).astype(np.float32)
                for name, shape in zip(io.inputs, io.shapes)}
        outputs = runner.infer(feed)
    assert set(outputs) == set(runner.output_names)
    assert backend.board_facts()["runs_on"].endswith("NPU")
