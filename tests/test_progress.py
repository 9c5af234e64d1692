"""Progress of long steps: the rules (a fake clock), pip's output read, and real pytest sessions — the
terminal (plain, -q, -qq, -v), captured output kept apart, and xdist workers' lines on the controller's
terminal with their worker's id. A threshold of 0 (the ini option) stands in for a long step: no sleeps."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

from conftest import HANG_GUARD_S, INT8_SPEC
from edgecheck import progress
from edgecheck.envs.pip_output import PipActivity
from edgecheck.terminal_progress import WorkersChannel


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(progress, "time", fake)
    return fake


@pytest.fixture
def said() -> Iterator[list[str]]:
    lines: list[str] = []
    output = progress.install(lines.append, after_s=2.0, repeat_s=30.0)
    yield lines
    progress.uninstall(output)


# --- the rules ------------------------------------------------------------------------------


def test_a_short_step_says_nothing(clock, said):
    with progress.step("making fp16 from digits.onnx"):
        clock.now += 1.9
        progress.update("compressing")
        progress.tick()
    assert said == []


def test_a_long_step_says_when_it_crosses_the_threshold_what_it_does_and_its_duration(clock, said):
    with progress.step("rknn-int8 of digits.onnx"):
        progress.update("building digits.onnx with rknn-toolkit2")
        clock.now += 2.0
        progress.tick()
        assert said == ["rknn-int8 of digits.onnx … building digits.onnx with rknn-toolkit2"]
        progress.update("checking digits.rknn")  # within 2 s of the last line: said later, if still true
        assert len(said) == 1
        clock.now += 2.0
        progress.tick()
        clock.now += 22.0
    assert said[1:] == ["rknn-int8 of digits.onnx … checking digits.rknn", "rknn-int8 of digits.onnx … 26 s"]


def test_a_very_long_step_says_it_is_still_running_every_30_s_and_only_the_innermost(clock, said):
    with progress.step("onnx2tf environment: pip install"):
        clock.now += 3
        progress.tick()
        with progress.step("downloading"):
            progress.update("tensorflow (645 MB)")
            clock.now += 3
            progress.tick()
            for _ in range(3):
                clock.now += 15
                progress.tick()
        clock.now += 423
    assert said == [
        "onnx2tf environment: pip install …",
        "downloading … tensorflow (645 MB)",
        "downloading … tensorflow (645 MB), still running, 33 s",
        "downloading … 48 s",
        "onnx2tf environment: pip install … 7 min 54 s",
    ]


def test_a_failing_step_says_so(clock, said):
    with pytest.raises(RuntimeError):
        with progress.step("timing digits.onnx on onnxruntime"):
            clock.now += 5
            raise RuntimeError("boom")
    assert said == ["timing digits.onnx on onnxruntime … failed after 5.0 s"]


def test_an_interrupted_step_says_so_not_failed(clock, said):
    with pytest.raises(KeyboardInterrupt):
        with progress.step("making int8-static from bignet.onnx"):
            clock.now += 3
            raise KeyboardInterrupt
    assert said == ["making int8-static from bignet.onnx … interrupted after 3.0 s"]


def test_threshold_zero_says_every_step_at_once(clock):
    lines: list[str] = []
    output = progress.install(lines.append, after_s=0)
    try:
        with progress.step("a step"):
            assert lines == ["a step …"]
    finally:
        progress.uninstall(output)
    assert lines == ["a step …", "a step … 0.0 s"]


def test_edgecheck_as_a_library_says_nothing():
    """A fresh interpreter, as a library user's: nothing is installed, a step is a no-op."""
    code = ("from edgecheck import progress\n"
            "assert not progress.enabled()\n"
            "with progress.step('nothing listens'):\n"
            "    progress.update('still nothing'); progress.tick()\n"
            "progress.say('nor this')\n"
            "import threading; assert [t.name for t in threading.enumerate()] == ['MainThread']\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ,
                          progress.AFTER_VARIABLE: "0"}, timeout=HANG_GUARD_S)
    assert done.returncode == 0, done.stderr
    assert done.stdout == done.stderr == ""


def test_uninstalling_an_inner_output_restores_the_outer_one(clock):
    outer: list[str] = []
    inner: list[str] = []
    first = progress.install(outer.append, after_s=0)
    second = progress.install(inner.append, after_s=0)
    progress.say("to the inner")
    progress.uninstall(second)
    progress.say("to the outer")
    progress.uninstall(first)
    assert inner == ["to the inner"] and outer == ["to the outer"]


def test_a_worker_relays_the_text_of_its_innermost_step():
    sent: list[str] = []
    output = progress.relay_to(sent.append)
    try:
        with progress.step("converting digits.onnx with onnx2tf"):
            with progress.step("simplifying"):
                progress.update("onnxsim")
            progress.update("calibrating")
    finally:
        progress.uninstall(output)
    assert sent == ["converting digits.onnx with onnx2tf", "simplifying", "simplifying: onnxsim",
                    "converting digits.onnx with onnx2tf", "converting digits.onnx with onnx2tf: calibrating"]


def test_the_threshold_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(progress.AFTER_VARIABLE, "0.5")
    assert progress.after_from_environment() == 0.5
    monkeypatch.setenv(progress.AFTER_VARIABLE, "soon")
    assert progress.after_from_environment() == progress.DEFAULT_AFTER_S


def test_the_workers_channel_says_whole_lines_only_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    shown: list[str] = []
    channel = WorkersChannel(shown.append)
    with open(channel.path, "ab") as file:
        file.write(json.dumps({"worker": "gw1", "line": "making fp16 from a.onnx … 3.0 s"}).encode() + b"\n")
        file.write(b"\x1b[2Jnot json\n")
        file.write(json.dumps({"worker": "gw0", "line": "two\nlines"}).encode() + b"\n")
        file.write(json.dumps({"worker": "gw0", "line": "cut off"}).encode())  # no newline: never whole
    channel.close()
    assert shown == ["[gw1] making fp16 from a.onnx … 3.0 s", "[gw0] two lines"]
    assert not channel.folder.exists()


# --- pip's output --------------------------------------------------------------------------

PIP_OUTPUT = """\
Collecting onnx2tf==1.29.24
  Downloading onnx2tf-1.29.24-py3-none-any.whl.metadata (147 kB)
Collecting tensorflow==2.19.0 (from onnx2tf==1.29.24)
  Downloading tensorflow-2.19.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl.metadata (4.1 kB)
Requirement already satisfied: numpy<2.2.0,>=1.26.0 in ./lib/python3.11/site-packages (from tensorflow==2.19.0) (1.26.4)
Downloading onnx2tf-1.29.24-py3-none-any.whl (468 kB)
Downloading tensorflow-2.19.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl (644.9 MB)
Using cached numpy-1.26.4-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl (18.3 MB)
Building wheels for collected packages: onnxsim
  Building wheel for onnxsim (pyproject.toml): started
  Building wheel for onnxsim (pyproject.toml): finished with status 'done'
Successfully built onnxsim
Installing collected packages: namex, onnxsim, tensorflow, onnx2tf
Successfully installed namex-0.0.8 onnx2tf-1.29.24 onnxsim-0.4.36 tensorflow-2.19.0
"""


def test_pip_output_says_what_pip_is_doing():
    watch = PipActivity()
    said = [(line, watch(line)) for line in PIP_OUTPUT.splitlines()]
    assert [doing for _, doing in said if doing] == [
        "collecting onnx2tf==1.29.24",
        "collecting tensorflow==2.19.0",
        "downloading onnx2tf 1.29.24 (468 kB)",
        "downloading tensorflow 2.19.0 (644.9 MB)",
        "building onnxsim from source",
        "building onnxsim from source",
        "installing 4 packages, the largest tensorflow (644.9 MB)",
    ]
    assert dict(said)["Successfully built onnxsim"] is None


def test_pip_output_of_an_older_pip_and_of_one_package():
    watch = PipActivity()
    assert watch("  Downloading https://files.pythonhosted.org/packages/ab/cd/onnxsim-0.4.36.tar.gz (1.9 MB)") \
        == "downloading onnxsim 0.4.36 (1.9 MB)"
    assert watch("Installing collected packages: onnxsim") == "installing onnxsim (1.9 MB)"
    assert watch("Installing collected packages: six") == "installing six"
    assert watch("some line pip may print one day") is None


# --- real sessions --------------------------------------------------------------------------

STEPS_TEST = """
from edgecheck import progress


def test_a_long_step():
    print("NOISE-BEFORE-THE-STEP")
    with progress.step("converting the model with the converter"):
        print("NOISE-INSIDE-THE-STEP")
        progress.update("round 2/3")
    print("NOISE-AFTER-THE-STEP")


def test_another():
    with progress.step("another step"):
        pass
"""
# a duration as progress writes one, whatever this machine's load: "0.0 s", "12 s", "1 min 5 s"
DURATION = r"(?:\d+(?:\.\d)? s|\d+ min \d+ s)"
LINE = re.compile(r"converting the model with the converter … (?:round 2/3 )?" + DURATION)


@pytest.fixture
def steps_project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_steps=STEPS_TEST)
    return pytester


@pytest.mark.parametrize("verbosity", [[], ["-q"], ["-v"]])
def test_a_step_over_the_threshold_is_said_with_its_duration_and_output_stays_captured(steps_project, verbosity):
    result = steps_project.runpytest_subprocess("-o", "edge_progress_after=0", "-p", "no:cacheprovider", *verbosity)
    result.assert_outcomes(passed=2)
    out = result.stdout.str()
    assert "converting the model with the converter …" in out
    assert LINE.search(out), out
    assert re.search(r"another step … " + DURATION, out), out
    assert "NOISE" not in out  # the test's own output stays captured around the progress lines


def test_with_the_default_threshold_short_steps_say_nothing(steps_project, monkeypatch):
    monkeypatch.setenv(progress.AFTER_VARIABLE, "600")  # "short": whatever this machine's load
    result = steps_project.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    assert "…" not in result.stdout.str()


def test_minus_qq_says_nothing(steps_project):
    result = steps_project.runpytest_subprocess("-qq", "-o", "edge_progress_after=0", "-p", "no:cacheprovider")
    assert result.ret == 0  # -qq prints no summary line to count outcomes in
    assert "…" not in result.stdout.str()


def test_xdist_workers_lines_reach_the_controller_with_their_id(steps_project, tmp_path, monkeypatch):
    pytest.importorskip("xdist")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    result = steps_project.runpytest_subprocess("-n", "2", "-o", "edge_progress_after=0", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    out = result.stdout.str()
    assert re.search(r"^\[gw[01]\] converting the model with the converter … ", out, re.M), out
    assert re.search(r"^\[gw[01]\] another step … " + DURATION + "$", out, re.M), out
    assert "NOISE" not in out
    assert not list(scratch.glob("edgecheck-progress-*"))  # the channel's folder went with the session


def test_a_spec_run_says_its_artifact_and_reference_with_the_workers_phases(spec_project, pytester, tmp_path):
    spec_project(INT8_SPEC)
    result = pytester.runpytest_subprocess("specs", "-o", "edge_progress_after=0", "-p", "no:cacheprovider",
                                           f"--edge-cache-dir={tmp_path / 'cache'}")
    result.assert_outcomes(passed=5)
    out = result.stdout.str()
    assert re.search(r"^making int8-dynamic from clf\.onnx … " + DURATION + "$", out, re.M), out
    # what the worker said it was doing: a phase, and the recipe's own step (the artifact's check)
    assert re.search(r"^making int8-dynamic from clf\.onnx … applying the recipe$", out, re.M), out
    assert re.search(r"^making int8-dynamic from clf\.onnx … checking clf\S*\.onnx$", out, re.M), out
    assert re.search(r"^reference outputs of clf\.onnx on onnxruntime, (parity|evaluation) inputs … " + DURATION + "$", out, re.M), out
    again = pytester.runpytest_subprocess("specs", "-o", "edge_progress_after=0", "-p", "no:cacheprovider",
                                          f"--edge-cache-dir={tmp_path / 'cache'}")
    again.assert_outcomes(passed=5)
    assert "making int8-dynamic" not in again.stdout.str()  # from the cache: nothing made, nothing said


def test_env_create_says_its_steps_on_stderr(tmp_path, monkeypatch, capsys):
    from edgecheck.cli import main

    defs = tmp_path / "defs"
    defs.mkdir()
    (defs / "tiny.yaml").write_text(textwrap.dedent("""\
        name: tiny
        description: A test environment.
        python: ">=3.8"
        requirements: []
        check: 'print("tool 1.0")'
        size: a few kB
        """))
    monkeypatch.setenv("EDGECHECK_ENV_DEFS", str(defs))
    monkeypatch.setenv("EDGECHECK_ENVS", str(tmp_path / "envs"))
    monkeypatch.setenv(progress.AFTER_VARIABLE, "0")
    assert main(["env", "create", "tiny"]) == 0
    captured = capsys.readouterr()
    assert re.search(r"^tiny environment: creating the virtual environment … " + DURATION + "$", captured.err, re.M)
    assert re.search(r"^tiny environment: checking it … " + DURATION + "$", captured.err, re.M)
    assert "…" not in captured.out and "created the tiny environment" in captured.out
