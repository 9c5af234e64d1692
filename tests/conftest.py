"""Small real models and data for edgecheck's tests, built with onnx.helper (nothing downloads)."""

from __future__ import annotations

import contextlib
import shutil
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import onnx.checker  # noqa: F401  imported here so that in-process pytester runs never re-import
import onnx.helper  # noqa: F401  native extensions (they cannot be loaded twice)
import onnxruntime  # noqa: F401
import pytest
import yaml  # noqa: F401  (PyYAML's libyaml parser, re-imported after an in-process run, builds the old module's
#              nodes: 'could not determine a constructor for the tag None' where a test reads YAML after one)

import board_env
from hypothesis import settings

# No property test fails because this machine is slow: CI shares two cores (Hypothesis' default 200 ms deadline
# tripped on a loaded machine). Each test's own settings still apply on top of this profile.
settings.register_profile("edgecheck-ci", deadline=None)
settings.load_profile("edgecheck-ci")
from sshd_server import SshServer, mounted_tmpfs

try:  # the same for LiteRT's schema and flatbuffers: a re-import makes a second flatbuffers Table class,
    import ai_edge_litert.schema_py_generated  # noqa: F401  and flatbuffers asserts on the type identity
    import flatbuffers.table  # noqa: F401
    import ai_edge_quantizer  # noqa: F401  (it imports scipy and numpy.fft, whose extensions load once only)
except ImportError:  # the tflite extra is not installed: its tests skip
    pass

ROOT = Path(__file__).resolve().parents[1]

# The wall-clock guard on a subprocess or session that should finish: only against waiting forever
# when something hangs, never a measure of speed. A CI machine under load (load average 8 on 2 cores)
# runs a session many times slower than an idle one; a guard that trips there makes the gate flaky.
HANG_GUARD_S = 900
# A spec of models/clf.onnx (spec_project's model) with one int8-dynamic step: 5 items on host (no parity of the
# model itself on its reference backend).
INT8_SPEC = """
edgecheck: 1
model: {path: ../models/clf.onnx}
data:
  evaluation: {path: ../models/eval.npz}
compress: [int8-dynamic]
targets:
  host:
    backends: [onnxruntime]
    budgets:
      accuracy_drop: 50
      parity: {rel_l2: 0.5}
      size_mb: 1
"""
EXAMPLE = ROOT / "examples" / "digits"

# A backend for tests only: ONNX Runtime with a deterministic perturbation of every output, so that
# parity and accuracy budgets can be breached for real. Registered by a spec project's conftest.py.
PERTURBED_BACKEND = '''
import numpy as np
from edgecheck.backends import register_backend
from edgecheck.vendors.onnxruntime.backend import OnnxRuntimeBackend, OnnxRuntimeRunner
from edgecheck.backends.registry import unregister_backend


class PerturbedRunner(OnnxRuntimeRunner):
    def _infer_impl(self, feed):
        outputs = super()._infer_impl(feed)
        return {{k: (v * {scale} + np.float32({offset})).astype(v.dtype) for k, v in outputs.items()}}


@register_backend
class PerturbedBackend(OnnxRuntimeBackend):
    name = "perturbed"

    def _load_impl(self, artifact, options):
        runner = super()._load_impl(artifact, options)
        perturbed = PerturbedRunner(runner._session, artifact)
        perturbed.backend = self.name
        return perturbed


def pytest_unconfigure(config):
    unregister_backend("perturbed")
'''


def junit_properties(path: Path, qualified: bool = False) -> dict[str, dict[str, str]]:
    """Properties of each test case in a JUnit file, by case name (or 'classname::name')."""
    def key(case: ET.Element) -> str:
        return f"{case.get('classname')}::{case.get('name')}" if qualified else str(case.get("name"))

    return {key(case): {p.get("name"): p.get("value") for p in case.iter("property")}
            for case in ET.parse(path).iter("testcase")}


def _envs_root() -> Path:
    from edgecheck.envs import env_root

    return env_root()


ENVS_ROOT = _envs_root()  # read before pytester gives its sessions another HOME


@pytest.fixture(autouse=True)
def _same_tool_environments(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inner pytester sessions find the converter environments (edgecheck env) this session finds."""
    monkeypatch.setenv("EDGECHECK_ENVS", str(ENVS_ROOT))
    # inner sessions are not the CI job's run: under GitHub Actions they must not write its job summary
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


@pytest.fixture(autouse=True)
def _quiet_inner_sessions(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process pytester runs warn that the already-imported edgecheck plugin cannot be
    assertion-rewritten; that is expected here and would only clutter their output."""
    if "pytester" in request.fixturenames:
        request.getfixturevalue("pytester")  # it clears PYTEST_ADDOPTS when created: set it after
    monkeypatch.setenv("PYTEST_ADDOPTS", "-W ignore::pytest.PytestAssertRewriteWarning")


def make_classifier(path: Path, features: int = 4, classes: int = 3, seed: int = 0,
                    output_name: str = "scores", input_name: str = "x", batch: int | str = "N"
                    ) -> tuple[np.ndarray, np.ndarray]:
    """A linear classifier x[N, features] -> scores[N, classes]; returns its weight and bias."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weight = rng.normal(size=(features, classes)).astype(np.float32)
    bias = rng.normal(size=(classes,)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", [input_name, "W"], ["mm"], name="matmul"),
         helper.make_node("Add", ["mm", "B"], [output_name], name="add")],
        "classifier",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [batch, features])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [batch, classes])],
        [numpy_helper.from_array(weight, "W"), numpy_helper.from_array(bias, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return weight, bias


def make_eval_data(path: Path, params: tuple[np.ndarray, np.ndarray], samples: int = 64, wrong: int = 0,
                   seed: int = 1, input_name: str = "x") -> None:
    """Labels are the model's own argmax, except `wrong` of them: the original scores 100 - wrong/samples %."""
    weight, bias = params
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, size=(samples, weight.shape[0])).astype(np.float32)
    labels = np.argmax(x @ weight + bias, axis=1)
    labels[:wrong] = (labels[:wrong] + 1) % weight.shape[1]
    np.savez(path, **{input_name: x, "labels": labels})


@pytest.fixture
def spec_project(pytester: pytest.Pytester) -> Callable[..., Path]:
    """A project folder with models/ and specs/: `spec_project(spec_yaml, **files)` writes the spec."""
    models = pytester.path / "models"
    models.mkdir(exist_ok=True)
    make_eval_data(models / "eval.npz", make_classifier(models / "clf.onnx"))

    def write(spec: str, name: str = "model", perturb: tuple[float, float] | None = None) -> Path:
        specs = pytester.path / "specs"
        specs.mkdir(exist_ok=True)
        path = specs / f"{name}.yaml"
        path.write_text(textwrap.dedent(spec).lstrip())
        if perturb is not None:
            pytester.makeconftest(PERTURBED_BACKEND.format(scale=perturb[0], offset=perturb[1]))
        return path

    return write


@pytest.fixture
def digits_project(pytester: pytest.Pytester) -> Path:
    """A copy of the shipped example and its spec in a fresh project folder."""
    shutil.copytree(EXAMPLE, pytester.path / "examples" / "digits",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (pytester.path / "specs").mkdir()
    shutil.copy(ROOT / "specs" / "digits.yaml", pytester.path / "specs" / "digits.yaml")
    return pytester.path


# -- boards over SSH: a real sshd on 127.0.0.1 and a board's own Python (tests/sshd_server.py,
# tests/board_env.py); nothing mocked.

@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[SshServer]:
    """A started sshd for this test: aliases board-a and board-b log in (ssh -F sshd.ssh_config),
    wrong-key is refused. Stopped, with whatever its sessions left running, after the test."""
    server = SshServer(tmp_path / "sshd", aliases=("board-a", "board-b"), wrong_key_alias="wrong-key")
    try:
        yield server.start()
    finally:
        server.stop()


def _board_python(variant: str) -> Path:
    try:
        return board_env.board_python(variant)
    except board_env.BoardEnvUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def board_python() -> Path:
    """A board's python: numpy, onnxruntime and ai-edge-litert at the session's versions, and neither
    edgecheck nor any of its host-side dependencies (created once under ~/.cache/edgecheck-tests)."""
    return _board_python("full")


@pytest.fixture(scope="session")
def board_python_oldest() -> Path:
    """A board's python 3.8 (the oldest edgecheck's worker supports) with numpy and onnxruntime; skips where no
    Python 3.8 is installed."""
    try:
        return board_env.oldest_board_python()
    except board_env.BoardEnvUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def board_python_bare() -> Path:
    """A board's python with numpy alone: a board without the runtime."""
    return _board_python("numpy")


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """`tmpfs(size_kib=256, name="full")` mounts a small tmpfs under tmp_path (a filesystem that fills);
    unmounted after the test. Skips where mounting is not permitted."""
    with contextlib.ExitStack() as stack:
        def mount(size_kib: int = 256, name: str = "tmpfs") -> Path:
            return stack.enter_context(mounted_tmpfs(tmp_path / name, size_kib))

        yield mount
