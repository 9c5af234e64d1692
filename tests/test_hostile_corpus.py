"""The hostile corpus (issue 14): every bad file a user or an attacker can hand edgecheck, built here in
a project, run end to end in real pytest sessions. Whatever the files, the session lives: it ends with
exit code 1 (never 3, never a crash or a hang), its JUnit XML parses, every case fails its own spec (or
the session start) naming its file and the cause, no user file changes, memory stays bounded (the
session runs under a data-segment limit far below what the bombs ask for) and, under strace, nothing
outside the project, the cache, the temporary folder and Python's own install paths is opened for
writing, and no user file is opened for writing at all.

Spec-level cases share one session (`test_the_hostile_corpus_...`); the files a session reads before
any spec — device profiles, operator tables, baselines — each get a small session of their own
(`test_session_level_...`), where the expected end is a usage error naming the file (exit 4).
Big sizes are sparse files or headers that claim them; nothing here takes long to build.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import HANG_GUARD_S, make_classifier, make_eval_data
from hostile_files import (allowed_write_roots, constant_of_shape_model, escaping_external_data_model, fingerprints,
                           npz_bomb, npz_claiming, outside_allowed, shared_tables_tflite, sparse, strace_unusable,
                           truncated, unchanged, written_paths)

# The session's data segment (RLIMIT_DATA): a session that analyses, decompresses or reads what the
# corpus claims (512 MiB tensors, a 1 GiB array, 16 TiB, 640,000 operators) goes past it; workers raise
# their own limit (--edge-worker-memory). A session on the good spec alone holds about 200 MiB.
SESSION_DATA_LIMIT = 2**30
WORKER_MEMORY_MB = 1024

# --- the spec-level corpus -------------------------------------------------------------------------

EVAL_SPEC = """\
edgecheck: 1
model: {{path: {model}}}
data:
  evaluation: {{path: {data}}}
{extra}targets:
  host:
    backends: [onnxruntime]
    budgets:
      accuracy_drop: 1
      parity: {{rel_l2: 0.01}}
"""

MODEL_SPEC = """\
edgecheck: 1
model: {{path: {model}}}
targets:
  host:
    budgets:
      {budgets}
"""


@dataclass(frozen=True)
class Case:
    """One hostile input: `build(folder, project)` writes its files in `folder` and returns its spec's
    text; its failure must name `file` (a path relative to the project) and match every `causes` regex."""

    name: str
    file: str
    causes: tuple[str, ...]
    build: Callable[[Path, Path], str]


def _rel(path: Path, project: Path) -> str:
    return "../" + path.relative_to(project).as_posix()  # specs/ is one level down


def _clf(project: Path) -> tuple[np.ndarray, np.ndarray]:
    return make_classifier(project / "models" / "clf.onnx")


def _x(samples: int = 16) -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 1, (samples, 4)).astype(np.float32)


def _eval_case(arrays: Callable[[], dict[str, np.ndarray]], extra: str = "") -> Callable[[Path, Path], str]:
    def build(folder: Path, project: Path) -> str:
        np.savez(folder / "data.npz", **arrays())
        return EVAL_SPEC.format(model="../models/clf.onnx", data=_rel(folder / "data.npz", project), extra=extra)
    return build


def _build_bomb(folder: Path, project: Path) -> str:
    npz_bomb(folder / "data.npz", np.zeros(16, np.int64))
    return EVAL_SPEC.format(model="../models/clf.onnx", data=_rel(folder / "data.npz", project), extra="")


def _build_claiming(folder: Path, project: Path) -> str:
    npz_claiming(folder / "data.npz", (2**40, 4), np.zeros(16, np.int64))  # [2**40, 4] float32: 16 TiB
    return EVAL_SPEC.format(model="../models/clf.onnx", data=_rel(folder / "data.npz", project), extra="")


def _build_text_npz(folder: Path, project: Path) -> str:
    (folder / "data.npz").write_text("x,label\n0.1,0.2,0.3,0.4,1\n")
    return EVAL_SPEC.format(model="../models/clf.onnx", data=_rel(folder / "data.npz", project), extra="")


def _build_all_nan_calibration(folder: Path, project: Path) -> str:
    np.savez(folder / "cal.npz", x=np.full((8, 4), np.nan, np.float32))
    spec = EVAL_SPEC.format(model="../models/clf.onnx", data="../models/eval.npz", extra="compress: [int8-static]\n")
    return spec.replace("data:\n", f"data:\n  calibration: {_rel(folder / 'cal.npz', project)}\n")


def _model_case(make: Callable[[Path, Path], Path], budgets: str = "size_mb: 1") -> Callable[[Path, Path], str]:
    def build(folder: Path, project: Path) -> str:
        return MODEL_SPEC.format(model=_rel(make(folder, project), project), budgets=budgets)
    return build


def _truncated_tflite(folder: Path, project: Path) -> Path:
    from tflite_builders import build_fc_tflite

    build_fc_tflite(folder / "whole.tflite")
    model = truncated(folder / "whole.tflite", folder / "model.tflite")
    (folder / "whole.tflite").unlink()
    return model


def _truncated_onnx(folder: Path, project: Path) -> Path:
    return truncated(project / "models" / "clf.onnx", folder / "model.onnx")


def _build_huge_spec(folder: Path, project: Path) -> str:
    return "\0"  # the spec itself is the case: written sparse in place below (see _write_cases)


CASES: tuple[Case, ...] = (
    Case("constant_of_shape", "constant_of_shape/model.onnx", (r"ConstantOfShape|bomb|elements|shape inference",),
         lambda folder, project: MODEL_SPEC.format(
             model=_rel(constant_of_shape_model(folder / "model.onnx"), project), budgets="ops: {unsupported: 0}"
         ).replace("  host:\n", "  rk3588:\n    backends: [rknn]\n")),  # the ops check reads its graph
    Case("npz_bomb", "npz_bomb/data.npz", (r"GiB|max_mb|uncompressed",), _build_bomb),
    Case("npy_header_16_tib", "npy_header_16_tib/data.npz", (r"claims|TiB|max_mb",), _build_claiming),
    Case("text_as_npz", "text_as_npz/data.npz", (r"not an \.npz|not a readable \.npz|zip",), _build_text_npz),
    Case("nan_labels", "nan_labels/data.npz", (r"NaN",),
         _eval_case(lambda: {"x": _x(), "labels": np.r_[np.zeros(3), np.nan, np.zeros(12)]})),
    Case("labels_out_of_range", "labels_out_of_range/data.npz", (r"outside|out of range",),
         _eval_case(lambda: {"x": _x(), "labels": np.full(16, 7)})),
    Case("negative_labels", "negative_labels/data.npz", (r"negative",),
         _eval_case(lambda: {"x": _x(), "labels": np.r_[np.zeros(15, np.int64), -1]})),
    Case("labels_0d", "labels_0d/data.npz", (r"single value|shape \[\]|0-d|scalar",),
         _eval_case(lambda: {"x": _x(), "labels": np.array(1)})),
    Case("nan_inputs", "nan_inputs/data.npz", (r"NaN",),
         _eval_case(lambda: {"x": np.where(np.arange(64).reshape(16, 4) == 21, np.nan, _x()).astype(np.float32),
                             "labels": np.zeros(16, np.int64)})),
    Case("all_nan_calibration", "all_nan_calibration/cal.npz", (r"NaN",), _build_all_nan_calibration),
    Case("truncated_onnx", "truncated_onnx/model.onnx", (r"truncat|pars|protobuf|not a valid|corrupt|cannot",),
         _model_case(_truncated_onnx)),
    Case("truncated_tflite", "truncated_tflite/model.tflite", (r"truncat|corrupt|cannot read|not a TFLite",),
         _model_case(_truncated_tflite)),
    Case("shared_tables_tflite", "shared_tables_tflite/model.tflite", (r"claims|operators|entries|shared",),
         _model_case(lambda folder, _: shared_tables_tflite(folder / "model.tflite"),
                     "ops: {unsupported: 0}\n      size_mb: 1")),
    Case("missing_model", "missing_model/nowhere.onnx", (r"not found|no such|does not exist|missing",),
         _model_case(lambda folder, _: folder / "nowhere.onnx")),
    Case("external_data_escaping", "external_data_escaping/model.onnx", (r"outside|escap|\.\./",),
         _model_case(lambda folder, project: escaping_external_data_model(folder / "model.onnx",
                                                                          project / "outside.bin"),
                     "parity: {rel_l2: 0.01}\n      size_mb: 1")),
    Case("huge_spec", "specs/huge_spec.yaml", (r"larger than|too large|MB|bytes",), _build_huge_spec),
    Case("override_without_bound", "specs/override_without_bound.yaml", (r"latency_ms",),
         lambda folder, project: EVAL_SPEC.format(
             model="../models/clf.onnx", data="../models/eval.npz", extra="compress: [fp16]\n")
         + "    recipes:\n      fp16: {latency_ms: {source: host}}\n"),
    Case("boolean_threads", "specs/boolean_threads.yaml", (r"threads", r"true|bool|number"),
         lambda folder, project: EVAL_SPEC.format(model="../models/clf.onnx", data="../models/eval.npz",
                                                  extra="").replace("    budgets:", "    threads: true\n    budgets:")),
    Case("boolean_in_shape", "specs/boolean_in_shape.yaml", (r"shape", r"true|bool|number"),
         lambda folder, project: EVAL_SPEC.format(model="../models/clf.onnx", data="../models/eval.npz",
                                                  extra="inputs:\n  x: {shape: [true, 4]}\n")),
    Case("fewer_samples_than_rounds", "specs/fewer_samples_than_rounds.yaml", (r"samples", r"rounds"),
         lambda folder, project: MODEL_SPEC.format(model="../models/clf.onnx",
                                                   budgets="latency_ms: {p50: 1000, samples: 2, rounds: 3}")),
)

# The good spec beside the corpus: it must pass, and its int8-static step (a converter run on the user's
# model) must write nothing beside the model.
CONTROL_SPEC = EVAL_SPEC.format(model="../models/clf.onnx", data="../models/eval.npz",
                                extra="compress: [int8-static]\n").replace(
    "data:\n", "data:\n  calibration: ../models/calibration.npz\n") + "    recipes:\n      int8-static: {accuracy_drop: 25, parity: {rel_l2: 0.3}}\n"


def _write_cases(project: Path) -> None:
    """Every case's files and spec, and a good spec beside them (the session goes on for it)."""
    (project / "models").mkdir()
    (project / "specs").mkdir()
    make_eval_data(project / "models" / "eval.npz", _clf(project))
    np.savez(project / "models" / "calibration.npz", x=_x(32))
    (project / "specs" / "control.yaml").write_text(CONTROL_SPEC)
    for case in CASES:
        folder = project / "cases" / case.name
        folder.mkdir(parents=True)
        spec = case.build(folder, project)
        if case.name == "huge_spec":
            sparse(project / "specs" / "huge_spec.yaml", CONTROL_SPEC, 300 * 10**6)
        else:
            (project / "specs" / f"{case.name}.yaml").write_text(spec)


def _junit(path: Path) -> dict[str, dict[str, str]]:
    """Each test case of the XML by 'classname::name': its outcome and its message (the failure's
    headline: a file named only somewhere in a traceback below it is not named to the user)."""
    cases = {}
    for case in ET.parse(path).iter("testcase"):
        outcome, message = "passed", ""
        for kind in ("failure", "error", "skipped"):
            found = case.find(kind)
            if found is not None:
                outcome, message = kind, found.get("message") or ""
                break
        cases[f"{case.get('classname')}::{case.get('name')}"] = {"outcome": outcome, "message": message}
    return cases


LIMITED_PYTEST = ("import os, resource, sys; limit = int(sys.argv[1]); "
                  "resource.setrlimit(resource.RLIMIT_DATA, (limit, resource.getrlimit(resource.RLIMIT_DATA)[1])); "
                  "os.execv(sys.executable, [sys.executable, '-m', 'pytest', *sys.argv[2:]])")


def _session_command(*args: str) -> list[str]:
    """A pytest session in a fresh interpreter whose data segment is limited (see SESSION_DATA_LIMIT)."""
    return [sys.executable, "-c", LIMITED_PYTEST, str(SESSION_DATA_LIMIT), *args]


# --- the tests -------------------------------------------------------------------------------------


def test_the_hostile_corpus_fails_case_by_case_and_the_session_lives(pytester, tmp_path, monkeypatch):
    pytest.importorskip("ai_edge_litert", reason="the .tflite cases need ai-edge-litert (pip install .[dev])")
    project = pytester.path
    _write_cases(project)
    before = fingerprints(project)
    temp = tmp_path / "session-tmp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))  # the session's temporary files go here, and only here
    reason = strace_unusable()
    log = project / "strace.log"
    command = _session_command("specs", "-p", "no:cacheprovider", "-p", "no:randomly", "-rfEs",
                               "--junitxml=report.xml", f"--edge-worker-memory={WORKER_MEMORY_MB}")
    if reason is None:
        command = [shutil.which("strace"), "-f", "-qq", "-e", "trace=open,openat,creat", "-o", str(log), *command]
    result = pytester.run(*command, timeout=HANG_GUARD_S)
    output = result.stdout.str() + result.stderr.str()

    problems = _problems(result.ret, output, project / "report.xml")  # every one, not only the first
    if unchanged(project, before):
        problems.append(f"user files changed or removed: {unchanged(project, before)}")
    if reason is None:
        written = written_paths(log)
        outside = sorted({path for path in written if outside_allowed(path, allowed_write_roots(project, temp))})
        if outside:
            problems.append(f"opened for writing outside the project, cache and temporary folders: {outside}")
        # user files are opened read-only, and nothing is written into the folders that hold them (a
        # scratch file beside the user's model fails in a read-only checkout and collides between sessions)
        user_files = {os.path.realpath(project / key) for key in before}
        user_folders = {os.path.dirname(path) for path in user_files} - {os.path.realpath(project)}
        opened = {os.path.realpath(path if path.startswith("/") else project / path) for path in written}
        mine = sorted(path for path in opened if path in user_files or os.path.dirname(path) in user_folders)
        if mine:
            problems.append(f"user files or folders opened for writing: {mine}")
    assert problems == [], "\n".join(problems)
    if reason is not None:
        pytest.skip(f"every check but the opened paths passed; those were not checked: {reason}")


def _problems(ret: int, output: str, report: Path) -> list[str]:
    """What the corpus session got wrong: its end, its XML, the good spec, each case's failure."""
    problems = []
    # the session lived: tests failed, nothing crashed, the good spec still passed
    if ret != pytest.ExitCode.TESTS_FAILED or "INTERNALERROR" in output:
        problems.append(f"the session ended with exit code {int(ret)}:\n{output[-3000:]}")
    try:
        cases = _junit(report)
    except (OSError, ET.ParseError) as exc:
        return [*problems, f"no JUnit XML that parses: {exc}"]
    control = [name for name, case in cases.items() if name.startswith("specs.control.yaml::")]
    if not control or any(cases[name]["outcome"] != "passed" for name in control):
        problems.append(f"the good spec beside the corpus did not pass: {[cases[n] for n in control]}")
    # every case failed its own spec, naming its file and the cause
    for case in CASES:
        mine = {name: found for name, found in cases.items() if name.startswith(f"specs.{case.name}.yaml::")}
        failed = "\n".join(found["message"] for found in mine.values() if found["outcome"] in ("failure", "error"))
        missing = [case.file] if case.file not in failed else []
        missing += [cause for cause in case.causes if not re.search(cause, failed, re.IGNORECASE)]
        if not failed or missing:
            outcomes = {name.split("::")[-1]: found["outcome"] for name, found in mine.items()}
            problems.append(f"case {case.name}: not failed with {missing} (outcomes {outcomes}); said: "
                            f"{' '.join(failed.split())[:400]!r}")
    return problems


# --- session-level files: device profiles, operator tables, baselines -----------------------------

SIZE_SPEC = MODEL_SPEC.format(model="../models/clf.onnx", budgets="size_mb: 1")
OPS_SPEC = MODEL_SPEC.format(model="../models/clf.onnx", budgets="ops: {unsupported: 0}")
TABLE = """\
name: project-ort
title: Project ONNX Runtime table
backend: onnxruntime
version: "1"
source: this test
unlisted: {status: supported, reason: everything else runs}
ops:
  MatMul: {status: supported}
"""
BOARD = "name: board\nextends: host\nbackends:\n  onnxruntime: {precisions: [fp32], threads: 2}\n"


def _devices(project: Path, text: str) -> list[str]:
    (project / "devices").mkdir()
    (project / "devices" / "board.yaml").write_text(text)
    (project / "pytest.ini").write_text("[pytest]\nedge_devices_dir = devices\n")
    return []


def _tables(project: Path, text: str, folder: str = "ops") -> list[str]:
    (project / "ops").mkdir()
    (project / "ops" / "mine.yaml").write_text(text)
    (project / "pytest.ini").write_text(f"[pytest]\nedge_ops_dir = {folder}\n")
    return []


def _baseline(project: Path, make: Callable[[Path], None]) -> list[str]:
    folder = project / ".edgecheck" / "baselines"
    folder.mkdir(parents=True)
    make(folder / "main.json")
    return ["--edge-baseline", "main"]


@dataclass(frozen=True)
class SessionCase:
    name: str
    file: str  # relative to the project
    causes: tuple[str, ...]
    spec: str
    build: Callable[[Path], list[str]]  # writes the files; returns the session's extra options


NESTED = 20_000
SESSION_CASES = (
    SessionCase("profile_extends_a_list", "devices/board.yaml", (r"extends",), SIZE_SPEC,
                lambda project: _devices(project, "name: board\nextends: [host]\n")),
    SessionCase("profile_nested_20000_deep", "devices/board.yaml", (r"nested|deep",), SIZE_SPEC,
                lambda project: _devices(project, BOARD + "source: " + "[" * NESTED + "]" * NESTED + "\n")),
    SessionCase("profile_duplicate_key", "devices/board.yaml", (r"duplicate",), SIZE_SPEC,
                lambda project: _devices(project, BOARD + "  onnxruntime: {precisions: [fp16]}\n")),
    SessionCase("profile_boolean_threads", "devices/board.yaml", (r"threads|true|number",), SIZE_SPEC,
                lambda project: _devices(project, BOARD.replace("threads: 2", "threads: true"))),
    SessionCase("op_table_not_a_mapping", "ops/mine.yaml", (r"mapping",), OPS_SPEC,
                lambda project: _tables(project, "- Conv\n- Relu\n")),
    SessionCase("op_table_without_title", "ops/mine.yaml", (r"title",), OPS_SPEC,
                lambda project: _tables(project, TABLE.replace("title: Project ONNX Runtime table\n", ""))),
    SessionCase("op_table_duplicate_key", "ops/mine.yaml", (r"duplicate",), OPS_SPEC,
                lambda project: _tables(project, TABLE + "  MatMul: {status: unsupported}\n")),
    SessionCase("op_table_folder_mistyped", "opz", (r"not found|no such|does not exist",), OPS_SPEC,
                lambda project: _tables(project, TABLE, folder="opz")),
    SessionCase("baseline_linked_to_dev_zero", ".edgecheck/baselines/main.json", (r"character device|not a regular",),
                SIZE_SPEC, lambda project: _baseline(project, lambda path: path.symlink_to("/dev/zero"))),
    SessionCase("baseline_fifo", ".edgecheck/baselines/main.json", (r"FIFO|pipe|not a regular",), SIZE_SPEC,
                lambda project: _baseline(project, os.mkfifo)),
    SessionCase("baseline_100000_nested_brackets", ".edgecheck/baselines/main.json", (r"nested|deep",), SIZE_SPEC,
                lambda project: _baseline(project, lambda path: path.write_text("[" * 100_000 + "]" * 100_000))),
)


@pytest.mark.parametrize("case", SESSION_CASES, ids=[case.name for case in SESSION_CASES])
def test_session_level_hostile_files_stop_the_session_at_start_naming_the_file(pytester, case):
    project = pytester.path
    (project / "models").mkdir()
    make_classifier(project / "models" / "clf.onnx")
    (project / "specs").mkdir()
    (project / "specs" / "model.yaml").write_text(case.spec)
    options = case.build(project)
    before = fingerprints(project)
    result = pytester.run(*_session_command("specs", "-p", "no:cacheprovider", "-p", "no:randomly", *options),
                          timeout=HANG_GUARD_S)
    output = result.stdout.str() + "\n" + result.stderr.str()
    # a usage error at start (or the spec's own failure), never an internal error or a green run
    assert result.ret in (pytest.ExitCode.USAGE_ERROR, pytest.ExitCode.TESTS_FAILED), output[-4000:]
    assert "INTERNALERROR" not in output and "Traceback" not in output, output[-4000:]
    assert str(project / case.file) in output or case.file in output, output[-4000:]
    for cause in case.causes:
        assert re.search(cause, output, re.IGNORECASE), (cause, output[-4000:])
    assert unchanged(project, before) == [], "user files changed or removed"
