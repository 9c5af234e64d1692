"""Where the session may keep two cores busy, a spec's reference outputs are computed in a second worker while an
artifact is made (Executor.artifact_with_reference): same verdicts and figures as one after the other, the
recipe's error still first, and the second worker (started from a thread of its own) kept alive for later jobs.

A recipe here looks, while it runs, for a second edgecheck worker of the session's process: with two cores one
appears (the reference's), with one core none does."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from conftest import make_classifier, make_eval_data

# a recipe that counts the session's edgecheck workers while it runs (waiting up to SIBLING_WAIT s for a second),
# then halves the weights; "fail-recipe" refuses at once
SIBLING_RECIPE = """
import os
import time
from pathlib import Path

import onnx
from onnx import numpy_helper

from edgecheck.compress import Artifact, artifact_path, register_recipe, unregister_recipe
from edgecheck.errors import RecipeError

ROOT = Path(__file__).parent


def pytest_unconfigure(config):
    unregister_recipe("sibling-recipe")
    unregister_recipe("fail-recipe")


def _workers(parent):
    found = set()
    for children in Path(f"/proc/{parent}/task").glob("*/children"):
        for pid in children.read_text().split():
            try:
                if b"edgecheck.worker.main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    found.add(pid)
            except OSError:
                pass
    return found


@register_recipe("sibling-recipe")
def sibling_recipe(model, params, context):
    deadline = time.monotonic() + float(os.environ["SIBLING_WAIT"])
    seen = set()
    while len(seen) < 2 and time.monotonic() < deadline:
        seen |= _workers(os.getppid())
        time.sleep(0.05)
    (ROOT / "siblings.txt").write_text(str(len(seen)))
    proto = onnx.load(str(model))
    for tensor in proto.graph.initializer:
        tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor) * 0.5, tensor.name))
    out = artifact_path(model, "sibling-recipe", context)
    onnx.save(proto, str(out))
    return Artifact(out, "sibling-recipe", {"did": "halved the weights"})


@register_recipe("fail-recipe")
def fail_recipe(model, params, context):
    raise RecipeError("fail-recipe refuses every model, on purpose")
"""

# parity only: an accuracy budget checks the original model first, which computes the reference with nothing to make
SPEC = """
edgecheck: 1
model: {path: ../models/clf.onnx}
data:
  parity: ../models/eval.npz
compress: [%s]
targets:
  host:
    budgets:
      parity: {cosine: 0.5}
      size_mb: 10
"""


@pytest.fixture
def project(pytester):
    (pytester.path / "models").mkdir()
    (pytester.path / "specs").mkdir()
    params = make_classifier(pytester.path / "models" / "clf.onnx")
    make_eval_data(pytester.path / "models" / "eval.npz", params, samples=32)
    pytester.makeconftest(SIBLING_RECIPE)

    def write(entries: str) -> None:
        (pytester.path / "specs" / "clf.yaml").write_text((SPEC % entries).lstrip())

    return write


def _run(pytester, monkeypatch, cores: int, wait_s: float, xml: str, *args: str):
    import edgecheck.session

    monkeypatch.setattr(edgecheck.session, "session_cores", lambda workers=1: cores)
    monkeypatch.setenv("SIBLING_WAIT", str(wait_s))
    return pytester.runpytest("specs", "-p", "no:cacheprovider", f"--junitxml={xml}", *args)


def _figures(path) -> dict[str, dict[str, str]]:
    """Each case's measured figures (JUnit properties), without where and when they were made."""
    cases = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        cases[case.get("name")] = {p.get("name"): p.get("value") for p in case.iter("property")
                                   if p.get("name", "").startswith(("edge.parity.", "edge.size"))}
    return cases


def test_with_two_cores_the_reference_runs_beside_the_recipe_and_the_figures_are_the_same(pytester, monkeypatch,
                                                                                            project):
    project("sibling-recipe")  # its first check makes the artifact and needs the reference
    # generous: the second worker only has to start; a slow machine waits longer, never fails
    beside = _run(pytester, monkeypatch, 2, 120, "beside.xml", "--edge-cache-dir=beside-cache")
    beside.assert_outcomes(passed=3)
    assert (pytester.path / "siblings.txt").read_text() == "2"
    # one core: one worker at a time (a second would have appeared within the wait)
    alone = _run(pytester, monkeypatch, 1, 2, "alone.xml", "--edge-cache-dir=alone-cache")
    alone.assert_outcomes(passed=3)
    assert (pytester.path / "siblings.txt").read_text() == "1"
    figures = _figures(pytester.path / "beside.xml")
    assert figures == _figures(pytester.path / "alone.xml")
    assert any("edge.parity.scores.cosine" in case for case in figures.values()), figures


def test_a_recipe_error_is_the_checks_failure_and_the_reference_serves_the_other_entry(pytester, monkeypatch,
                                                                                         project):
    project("fail-recipe, sibling-recipe")
    result = _run(pytester, monkeypatch, 2, 0, "fail.xml", "--edge-no-cache", "-o", "edge_progress_after=0")
    result.assert_outcomes(passed=3, failed=2)  # the original's size, the other recipe's parity and size
    out = result.stdout.str()
    failures = [line for line in out.splitlines() if line.startswith("FAILED ")]
    assert len(failures) == 2 and all("fail-recipe" in line for line in failures), failures
    assert out.count("fail-recipe refuses every model, on purpose") >= 2
    # computed once, beside the failing recipe, and kept for the other entry's parity
    finished = re.findall(r"^reference outputs of clf.onnx on onnxruntime, parity inputs … [\d.]+ s$", out, re.M)
    assert len(finished) == 1, out


def test_only_the_one_thread_run_of_the_original_is_called_its_reference(pytester, monkeypatch, project):
    """The original's accuracy at the target's threads is its own run, not the reference (the 1-thread run)."""
    spec = (SPEC % "sibling-recipe").replace("  host:\n", "  host:\n    threads: 2\n").replace(
        "  parity: ../models/eval.npz\n", "  parity: ../models/eval.npz\n"
        "  evaluation: {path: ../models/eval.npz, labels: labels, metric: top1}\n").replace(
        "      size_mb: 10\n", "      size_mb: 10\n      accuracy_drop: 100\n")
    (pytester.path / "specs" / "clf.yaml").write_text(spec.lstrip())
    result = _run(pytester, monkeypatch, 1, 0, "threads.xml", "--edge-no-cache", "-o", "edge_progress_after=0")
    out = result.stdout.str()
    result.assert_outcomes(passed=5)  # size and accuracy of each, the recipe's parity
    done = r" on onnxruntime, evaluation inputs … [\d.]+ s$"
    assert len(re.findall(r"^reference outputs of clf\.onnx" + done, out, re.M)) == 1, out
    assert len(re.findall(r"^outputs of clf\.onnx" + done, out, re.M)) == 1, out  # the original at 2 threads
