"""The TFLite backend in a worker on a board (RunOptions(on_board=True)): the same runner under the board's
own Python, with LiteRT (ai-edge-litert) or tflite-runtime, whichever it has, and nothing of edgecheck's
host dependencies (pydantic, packaging, onnx). Only the .tflite file need travel: the converter's layout
map goes with the job's options (`board_extra`)."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert", reason="the TFLite backend needs ai-edge-litert: pip install 'pytest-edgecheck[tflite]'")

from tflite_builders import FEATURES, build_fc_tflite  # noqa: E402

import edgecheck.vendors.tflite.backend as module  # noqa: E402
from edgecheck.backends.base import RunOptions  # noqa: E402
from edgecheck.errors import BackendError  # noqa: E402
from edgecheck.vendors.tflite.backend import TfliteBackend, io_sidecar  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _x(samples: int = 2) -> np.ndarray:
    return np.random.default_rng(5).uniform(-1, 1, size=(samples, FEATURES)).astype(np.float32)


def _sidecar(artifact: Path) -> None:
    io_sidecar(artifact).write_text(json.dumps({
        "converter": "onnx2tf", "inputs": [{"name": "features", "model_name": "x", "perm": None, "layout": ""}],
        "outputs": [{"name": "scores", "model_name": "y", "perm": None, "layout": ""}]}))


def test_a_board_load_runs_like_the_host_and_is_available_with_the_same_facts(tmp_path):
    build_fc_tflite(tmp_path / "fc.tflite", dynamic_batch=True)
    backend = TfliteBackend()
    assert backend.board_availability() and backend.board_facts() == backend.facts()
    x = _x(3)
    with backend.load(tmp_path / "fc.tflite", RunOptions(threads=2)) as host:
        want = host.infer({"x": x})
    with backend.load(tmp_path / "fc.tflite", RunOptions(threads=2, on_board=True)) as board:
        assert (board.input_names, board.output_names) == (("x",), ("y",))
        got = board.infer({"x": x})
    np.testing.assert_array_equal(got["y"], want["y"])


def test_only_the_tflite_file_travels_its_layout_map_goes_in_the_options(tmp_path):
    built = tmp_path / "host" / "fc.tflite"
    built.parent.mkdir()
    weight, bias = build_fc_tflite(built)
    _sidecar(built)
    backend = TfliteBackend()
    extra = backend.board_extra(built)
    assert json.loads(extra["io_map"])["inputs"][0]["name"] == "features"
    sent = tmp_path / "board" / "fc.tflite"  # the board's copy: no sidecar beside it
    sent.parent.mkdir()
    sent.write_bytes(built.read_bytes())
    x = _x(1)
    with backend.load(sent, RunOptions(on_board=True, extra=extra)) as board:
        assert (board.input_names, board.output_names) == (("features",), ("scores",))
        np.testing.assert_allclose(board.infer({"features": x})["scores"], x @ weight.T + bias, rtol=1e-5, atol=1e-5)
    assert backend.board_extra(sent) == {}  # a .tflite without a map needs none
    with pytest.raises(BackendError, match="option io_map is unreadable"):
        backend.load(sent, RunOptions(on_board=True, extra={"io_map": "{not json"}))


def test_a_board_with_tflite_runtime_only_runs_without_pydantic_or_packaging(tmp_path, monkeypatch):
    """A board's Python: tflite-runtime (here LiteRT's own Interpreter under that name, without metadata, as a
    system package may be), no ai-edge-litert, and none of edgecheck's host dependencies."""
    from ai_edge_litert.interpreter import Interpreter

    build_fc_tflite(tmp_path / "fc.tflite")
    runtime = types.ModuleType("tflite_runtime")
    runtime.__version__ = "2.16.1"  # type: ignore[attr-defined]
    interpreter = types.ModuleType("tflite_runtime.interpreter")
    interpreter.Interpreter = Interpreter  # type: ignore[attr-defined]
    for name, value in (("tflite_runtime", runtime), ("tflite_runtime.interpreter", interpreter),
                        ("ai_edge_litert.interpreter", None), ("pydantic", None), ("packaging", None),
                        ("packaging.specifiers", None), ("edgecheck.envs", None), ("edgecheck.envs.definitions", None)):
        monkeypatch.setitem(sys.modules, name, value)  # None: importing it fails, as where it is not installed
    backend = TfliteBackend()
    assert backend.board_availability(), backend.board_availability().reason
    assert backend.board_facts()["version"] == "tflite-runtime 2.16.1"
    with backend.load(tmp_path / "fc.tflite", RunOptions(on_board=True)) as board:
        assert board.infer({"x": _x(1)})["y"].shape == (1, 3)


def test_without_a_runtime_a_board_is_told_what_to_install_there(monkeypatch):
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", None)
    monkeypatch.setattr(module, "_version", lambda distribution, module_name="": "unknown")
    availability = TfliteBackend().board_availability()
    assert not availability and module.BOARD_INSTALL in availability.reason
    assert "edgecheck[tflite]" not in availability.reason  # edgecheck's extras mean nothing on a board
    assert "edgecheck[tflite]" in TfliteBackend().availability().reason


@pytest.mark.parametrize(("version", "release"), [("2.14.0", (2, 14, 0)), ("2.15.0rc1", (2, 15, 0)),
                                                  ("2.16.1.post1", (2, 16, 1)), ("unknown", ())])
def test_versions_are_compared_with_the_standard_library_only(version, release):
    assert module._release(version) == release


BLOCKED = ("pydantic", "packaging", "yaml", "onnx", "onnxruntime", "ai_edge_litert", "tflite_runtime", "rknn", "rknnlite")
IMPORTS = f'''
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
import json
from edgecheck.vendors.tflite.backend import TfliteBackend
from edgecheck.vendors.rknn.backend import RknnBackend
import edgecheck.vendors.rknn.lite
print(json.dumps({{"tflite": TfliteBackend().board_availability().reason, "rknn": RknnBackend().board_availability().reason,
                   "rknn_facts": RknnBackend().board_facts()}}))
'''


def test_the_backend_modules_import_with_the_standard_library_and_numpy_only():
    said = subprocess.run([sys.executable, "-c", IMPORTS], capture_output=True, text=True, cwd=REPO,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert said.returncode == 0, said.stderr[-3000:]
    result = json.loads(said.stdout.strip().splitlines()[-1])
    assert "blocked: ai_edge_litert" in result["tflite"] and module.BOARD_INSTALL in result["tflite"]
    assert "rknnlite is not installed" in result["rknn"] and result["rknn_facts"] == {}
