"""Boards in the loop, run for real: a real OpenSSH server on 127.0.0.1 (tests/sshd_server.py) and a
"board" that is a Python of its own with only numpy and the runtimes (tests/board_env.py), so every
file the worker needs crosses the connection. Spec runs are real pytest sessions (pytester)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import make_classifier, make_eval_data

DEVICE = "raspberry-pi-4b"
SPEC = """\
edgecheck: 1
name: {name}
model: {{path: ../models/clf.onnx}}
data:
  evaluation: {{path: ../models/eval.npz, labels: labels, metric: top1}}
  parity_samples: 16
targets:
  raspberry-pi-4b:
    backends: [{backend}]
    budgets:
      accuracy_drop: 0.5
      parity: {{cosine: 0.999, rel_l2: 0.001}}
      latency_ms: {latency}
      memory_mb: {{peak: 500}}
"""
LATENCY = "{p50: 100, samples: 60, rounds: 2, warmup_runs: 2, warmup_s: 0}"


def live_board_processes(root: Path) -> list[str]:
    """Command lines of processes a board session of this test's project started (its workers carry the
    mark and the path of the project's board store; other sessions on this machine are not this test's)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"edgecheck-session=" in cmdline and str(root).encode() in cmdline and b"pytest" not in cmdline:
            found.append(cmdline.replace(b"\0", b" ").decode("utf-8", "replace")[:200])
    return found


def timing_holders(root: Path) -> list[int]:
    """Processes holding the timing lock of a board store of this test's project (`lock STORE exclusive`)."""
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if (b"lock" in cmdline and b"exclusive" in cmdline and any(b"agent_main" in w for w in cmdline)
                    and any(str(root).encode() in w for w in cmdline)):
                found.append(int(pid))
    return found


def while_timing(root: Path, action, settle_s: float = 1.0) -> threading.Thread:
    """A started thread that runs `action(holders)` once a board timing of this project is under way (its timing
    lock held), `settle_s` later; join it after the session."""
    def watch() -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            holders = timing_holders(root)
            if holders:
                time.sleep(settle_s)
                action(holders)
                return
            time.sleep(0.1)

    thread = threading.Thread(target=watch)
    thread.start()
    return thread


def wait_for_no_board_processes(root: Path, timeout_s: float = 30.0) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while True:
        left = live_board_processes(root)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def project(pytester: pytest.Pytester, sshd, python: Path, boards: list[tuple[str, str]], *, specs: int = 1,
            backend: str = "onnxruntime", latency: str = LATENCY, big_model: bool = False) -> Path:
    """A project with a classifier, its data, `specs` spec files and a boards file of (name, ssh alias)."""
    models = pytester.path / "models"
    models.mkdir(exist_ok=True)
    features = 2048 if big_model else 4
    make_eval_data(models / "eval.npz", make_classifier(models / "clf.onnx", features=features, classes=512 if
                                                        big_model else 3), samples=32)
    (pytester.path / "specs").mkdir(exist_ok=True)
    for i in range(specs):
        (pytester.path / "specs" / f"model{i}.yaml").write_text(
            SPEC.format(name=f"model{i}", backend=backend, latency=latency))
    lines = ["boards:"]
    for name, alias in boards:
        lines.append(f"  - {{name: {name}, device: {DEVICE}, ssh: {alias}, ssh_config: {sshd.ssh_config}, "
                     f"python: {python}, store: {pytester.path / ('store-' + name)}}}")
    (pytester.path / "boards.yaml").write_text("\n".join(lines) + "\n")
    pytester.makeini("[pytest]\nedge_boards = boards.yaml\n")
    return pytester.path


def records(path: Path) -> list[dict]:
    return json.loads(path.read_text())["records"]


def facts(record: dict) -> dict:
    return (record.get("result") or {}).get("facts") or {}


def windows(found: list[dict]) -> list[tuple[str, float, float]]:
    spans = []
    for record in found:
        window = facts(record).get("latency.window")
        if window:
            start, end = (float(x) for x in window.split(".."))
            spans.append((facts(record).get("board", ""), start, end))
    return spans


def assert_no_overlap(spans: list[tuple[str, float, float]]) -> None:
    for board in {b for b, _, _ in spans}:
        mine = sorted({(s, e) for b, s, e in spans if b == board})  # one timing's checks share its window
        for (_, end), (start, _) in zip(mine, mine[1:]):
            assert start >= end, f"two timings overlapped on {board}: {mine}"


# --- a spec run on a board ------------------------------------------------------------------------

def test_a_spec_runs_on_the_board_measured_and_labelled_there(pytester, sshd, board_python):
    root = project(pytester, sshd, board_python, [("pi-a", "board-a")])
    result = pytester.runpytest("specs", "--edge-target", DEVICE, "--edge-results", "r.json", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["  pass*latency*onnxruntime @ pi-a*"])  # the summary names the board
    found = records(root / "r.json")
    assert {r["check"] for r in found} == {"accuracy", "parity", "latency", "memory"}
    for record in found:
        where = facts(record)["measured_on"]
        # the board's own label: which board, its host name and kernel, the runtime and its version, the governor
        assert where.startswith(f"{DEVICE} board pi-a ("), where
        assert "kernel " in where and "governor " in where
        assert f"onnxruntime {__import__('onnxruntime').__version__}" in where, where
        assert facts(record)["board"] == "pi-a"
        assert "on this host" not in facts(record).get("note", "")  # never "measured on this host, not on a board"
        # the test board is this x86_64 machine, not the aarch64 of a Raspberry Pi: the record says so
        assert facts(record)["board.machine"] == os.uname().machine
        assert f"board pi-a is {os.uname().machine}, not the aarch64" in facts(record)["note"]
    latency = next(r for r in found if r["check"] == "latency")
    assert "before" in facts(latency)["measured_on"] or "thermal" in facts(latency)["measured_on"]
    # the artifact, the inputs and edgecheck's worker package crossed the connection into the board's store
    store = root / "store-pi-a"
    assert len(list((store / "blobs").glob("*.onnx"))) == 1
    assert len([p for p in (store / "code").iterdir() if (p / "ok").exists()]) == 1
    assert not any((store / "jobs").iterdir()), "the session's job folder stays on the board"
    assert wait_for_no_board_processes(root) == [], "a process of the session was left running on the board"


def test_without_the_board_the_same_device_figures_cannot_be_judged(pytester, sshd, board_python):
    """The control: the same spec with no board skips latency and memory (no device to measure on)."""
    root = project(pytester, sshd, board_python, [("pi-a", "board-a")])
    (root / "pytest.ini").write_text("[pytest]\n")
    result = pytester.runpytest("specs", "--edge-target", DEVICE, "-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, skipped=2)
    result.stdout.fnmatch_lines(["*no raspberry-pi-4b to measure on*"])


def test_the_artifact_is_sent_once_across_sessions(pytester, sshd, board_python):
    root = project(pytester, sshd, board_python, [("pi-a", "board-a")])
    pytester.runpytest("specs", "--edge-target", DEVICE, "-p", "no:cacheprovider").assert_outcomes(passed=4)
    blobs = {p.name: p.stat().st_ino for p in (root / "store-pi-a" / "blobs").iterdir()}
    code = {p.name: p.stat().st_ino for p in (root / "store-pi-a" / "code").iterdir()}
    pytester.runpytest("specs", "--edge-target", DEVICE, "-p", "no:cacheprovider").assert_outcomes(passed=4)
    assert {p.name: p.stat().st_ino for p in (root / "store-pi-a" / "blobs").iterdir()} == blobs
    assert {p.name: p.stat().st_ino for p in (root / "store-pi-a" / "code").iterdir()} == code


def test_a_backend_from_a_conftest_runs_on_the_board_as_its_file(pytester, sshd, board_python):
    """A third party's backend defined in a project file travels to the board as that file."""
    from conftest import PERTURBED_BACKEND

    root = project(pytester, sshd, board_python, [("pi-a", "board-a")], backend="perturbed")
    pytester.makeconftest(PERTURBED_BACKEND.format(scale=1.0, offset=0.5))
    result = pytester.runpytest("specs", "--edge-target", DEVICE, "--edge-results", "r.json", "-k", "parity",
                                "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)  # its offset shows in the board's outputs: the file ran there
    parity = records(root / "r.json")[0]
    assert facts(parity)["measured_on"].startswith(f"{DEVICE} board pi-a")
    assert parity["result"]["verdict"] == "fail"


# --- pools and locks ----------------------------------------------------------------------------

def hold(sshd, python: Path, alias: str, store: Path, mode: str = "exclusive") -> subprocess.Popen:
    """Another run's hold of a board's lock, through the board's own agent (as a session holds it)."""
    from edgecheck.boards.store import agent_script

    command = [str(python), "-c", agent_script(), "lock", str(store), mode, "0",
               json.dumps({"host": "another-ci-job", "pid": 1, "what": "time someone's model"}),
               "3600"]  # no heartbeat from this stand-in holder: held until its stdin closes, however slow the run
    proc = subprocess.Popen(sshd.ssh_command(alias, *[_quote(w) for w in command]), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = proc.stdout.readline()
    assert json.loads(line)["held"], line
    return proc


def _quote(word: str) -> str:
    import shlex

    return shlex.quote(word)


def test_a_busy_board_of_a_pool_is_passed_over_for_a_free_one(pytester, sshd, board_python):
    root = project(pytester, sshd, board_python, [("pi-a", "board-a"), ("pi-b", "board-b")])
    holder = hold(sshd, board_python, "board-a", root / "store-pi-a")
    try:
        result = pytester.runpytest("specs", "--edge-target", DEVICE, "--edge-results", "r.json", "-p",
                                    "no:cacheprovider")
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    result.assert_outcomes(passed=4)
    assert {facts(r)["board"] for r in records(root / "r.json")} == {"pi-b"}


def test_a_run_waits_for_a_busy_board_and_says_so(pytester, sshd, board_python):
    root = project(pytester, sshd, board_python, [("pi-a", "board-a")])
    holder = hold(sshd, board_python, "board-a", root / "store-pi-a")
    run = subprocess.Popen([sys.executable, "-m", "pytest", "specs", "--edge-target", DEVICE, "-k", "latency", "-q",
                            "-p", "no:cacheprovider"], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           env={**os.environ, "PYTEST_ADDOPTS": ""})
    said = []
    try:
        for line in run.stdout:  # the board stays held until the session has said that it waits for it
            said.append(line.decode("utf-8", "replace"))
            if "waiting for a raspberry-pi-4b board" in said[-1]:
                break
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    rest, _ = run.communicate(timeout=600)
    text = "".join(said) + rest.decode("utf-8", "replace")
    assert run.returncode == 0, text[-3000:]
    assert "1 passed" in text
    waiting = next(line for line in said if "waiting for" in line)
    assert "another-ci-job" in waiting and "time someone's model" in waiting, waiting


def test_two_boards_share_the_work_of_two_xdist_workers_and_timings_never_overlap(pytester, sshd, board_python):
    root = project(pytester, sshd, board_python, [("pi-a", "board-a"), ("pi-b", "board-b")], specs=4,
                   latency="{p50: 100, duration_s: 0.5, rounds: 1, warmup_runs: 2, warmup_s: 0}")
    result = pytester.runpytest_subprocess("specs", "--edge-target", DEVICE, "-n", "2", "--edge-results", "r.json",
                                           "-p", "no:cacheprovider", timeout=600)
    result.assert_outcomes(passed=16)
    found = records(root / "r.json")
    assert {facts(r)["board"] for r in found} <= {"pi-a", "pi-b"}
    assert_no_overlap(windows(found))
    assert wait_for_no_board_processes(root) == []


def test_two_sessions_competing_for_one_board_never_time_at_once(pytester, sshd, board_python):
    root = project(pytester, sshd, board_python, [("pi-a", "board-a")], specs=2,
                   latency="{p50: 100, duration_s: 1.0, rounds: 2, warmup_runs: 2, warmup_s: 0}")
    outcomes = {}

    def run(index: int) -> None:
        env = {**os.environ, "PYTEST_ADDOPTS": ""}
        outcomes[index] = subprocess.run(
            [sys.executable, "-m", "pytest", f"specs/model{index}.yaml", "--edge-target", DEVICE, "-k", "latency",
             "--edge-results", f"r{index}.json", "-p", "no:cacheprovider", "-q"],
            cwd=root, env=env, capture_output=True, text=True, timeout=600)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index in range(2):
        assert outcomes[index].returncode == 0, outcomes[index].stdout[-3000:]
    spans = windows(records(root / "r0.json")) + windows(records(root / "r1.json"))
    assert len(spans) == 2
    assert_no_overlap(spans)


# --- faults ---------------------------------------------------------------------------------------

def test_sshd_killed_mid_run_fails_that_item_naming_the_board_and_the_run_goes_on(pytester, sshd, board_python):
    root = project(pytester, sshd, board_python, [("pi-a", "board-a")],
                   latency="{p50: 100, duration_s: 60, rounds: 1, warmup_runs: 1, warmup_s: 0}")

    killer = while_timing(root, lambda holders: sshd.kill_all())
    result = pytester.runpytest("specs", "--edge-target", DEVICE, "-k", "latency or memory", "-rfs",
                                "-p", "no:cacheprovider")
    killer.join()
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) >= 1, result.stdout.str()[-3000:]
    assert outcomes.get("failed", 0) + outcomes.get("skipped", 0) == 2  # the session went on to the next item
    text = result.stdout.str()
    assert "board pi-a" in text and ("was lost" in text or "dropped off" in text or "unreachable" in text), text[-3000:]
    assert wait_for_no_board_processes(root) == [], "the board kept running the session's worker"


def test_a_wrong_key_skips_with_ssh_s_own_words_and_strict_fails(pytester, sshd, board_python):
    project(pytester, sshd, board_python, [("pi-a", "wrong-key")])
    result = pytester.runpytest("specs", "--edge-target", DEVICE, "-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=4)
    result.stdout.fnmatch_lines(["*pi-a*unreachable*Permission denied*"])
    strict = pytester.runpytest("specs", "--edge-target", DEVICE, "--edge-strict", "-p", "no:cacheprovider")
    strict.assert_outcomes(failed=4)


def test_a_board_without_the_runtime_skips_naming_it(pytester, sshd, board_python_bare):
    project(pytester, sshd, board_python_bare, [("pi-a", "board-a")])
    result = pytester.runpytest("specs", "--edge-target", DEVICE, "-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=4)
    result.stdout.fnmatch_lines(["*board pi-a*cannot run onnxruntime*"])


def test_a_full_disk_on_the_board_is_a_named_failure(pytester, sshd, board_python, tmpfs):
    root = project(pytester, sshd, board_python, [("pi-a", "board-a")], big_model=True)
    full = tmpfs(size_kib=3072, name="board-disk")
    boards = (root / "boards.yaml").read_text().replace(str(root / "store-pi-a"), str(full / "store"))
    (root / "boards.yaml").write_text(boards)
    assert (root / "models" / "clf.onnx").stat().st_size > 3 * 1024 * 1024
    result = pytester.runpytest("specs", "--edge-target", DEVICE, "-k", "parity", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*pi-a*disk is full*"])


# --- no ssh needed --------------------------------------------------------------------------------

def test_a_broken_boards_file_names_the_file_the_board_and_the_field(pytester):
    pytester.makeini("[pytest]\nedge_boards = boards.yaml\n")
    (pytester.path / "boards.yaml").write_text(textwrap.dedent("""\
        boards:
          - {name: pi-a, device: raspberry-pi-4b, ssh: pi@pi-a}
          - {name: pi-b, device: raspberry-pi-4b, ssh: pi@pi-b, store_limit_mb: -1}
        """))
    result = pytester.runpytest("--edge-target", DEVICE)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*boards.yaml:3: boards.1.store_limit_mb (board 'pi-b'): *greater than 0*"])
    (pytester.path / "boards.yaml").write_text("boards:\n  - {name: x, device: rk3599, ssh: a@b}\n")
    result = pytester.runpytest("--edge-target", DEVICE)
    result.stderr.fnmatch_lines(["*board 'x': unknown device 'rk3599'*"])


@pytest.mark.parametrize("text, expected", [
    ("rk3588=ssh://ci@10.0.0.5:2222", ("rk3588", "ci@10.0.0.5", 2222, "python3")),
    ("raspberry-pi-4b=pi@pi-1.lab?python=/opt/edge/bin/python", ("raspberry-pi-4b", "pi@pi-1.lab", None,
                                                                  "/opt/edge/bin/python")),
])
def test_the_edge_board_option(text, expected):
    from edgecheck.boards.config import parse_board_option

    board = parse_board_option(text)
    assert (board.device, *board.destination(), board.python) == expected


@pytest.mark.parametrize("text", ["rk3588", "=ci@x", "rk3588=-oProxyCommand=x", "rk3588=a@b?shell=x"])
def test_a_bad_edge_board_option_is_refused(text):
    from edgecheck.boards.config import BoardsError, parse_board_option

    with pytest.raises(BoardsError, match="--edge-board"):
        parse_board_option(text)


def test_thermal_throttling_seen_makes_a_passing_latency_inconclusive():
    from edgecheck.checks.performance import LatencyCheck
    from edgecheck.measure.runs import Measured, TimingPlan
    from edgecheck.measure.stats import LatencyStats
    from edgecheck.spec.performance import LatencyBudget

    class Planned:
        budgets = type("B", (), {"latency_ms": LatencyBudget(p50=100)})()

    measured = Measured(LatencyStats.from_ns(np.full(100, 1_000_000, dtype=np.int64)), TimingPlan(), {"peak": 1,
                        "baseline": 1}, 0.1, 1, 0.0, "perf_counter_ns",
                        extra={"throttling": ["soc-thermal reached 85.0 °C, at its passive trip point 85.0 °C"]})
    result = LatencyCheck().judge(Planned(), None, measured, None)
    assert result.verdict == "inconclusive"
    assert any("thermal throttling" in d and "soc-thermal" in d for d in result.doubts)


# --- the boards command ---------------------------------------------------------------------------

def test_edgecheck_boards_checks_each_board(tmp_path, sshd, board_python, board_python_bare):
    boards = tmp_path / "boards.yaml"
    boards.write_text(textwrap.dedent(f"""\
        boards:
          - {{name: pi-a, device: {DEVICE}, ssh: board-a, ssh_config: {sshd.ssh_config}, python: {board_python}, store: {tmp_path / 'a'}}}
          - {{name: pi-bare, device: {DEVICE}, ssh: board-b, ssh_config: {sshd.ssh_config}, python: {board_python_bare}, store: {tmp_path / 'b'}}}
          - {{name: pi-locked-out, device: {DEVICE}, ssh: wrong-key, ssh_config: {sshd.ssh_config}}}
        """))
    done = subprocess.run([sys.executable, "-m", "edgecheck", "boards", "--boards", str(boards)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr  # one board cannot be used
    lines = {line.split()[0]: line for line in done.stdout.splitlines()[1:]}
    onnxruntime = __import__("onnxruntime").__version__
    assert f"onnxruntime {onnxruntime}" in lines["pi-a"] and lines["pi-a"].rstrip().endswith("ok")
    assert "no runtime installed" in lines["pi-bare"] and not lines["pi-bare"].rstrip().endswith("ok")
    assert "unreachable" in lines["pi-locked-out"] and "Permission denied" in lines["pi-locked-out"]


def test_a_board_measures_even_where_the_spec_accepts_an_estimate(pytester, sshd, board_python):
    """An estimate or a host stand-in is never used where a board of the device measured."""
    root = project(pytester, sshd, board_python, [("pi-a", "board-a")],
                   latency="{p50: 100, source: estimate, samples: 20, rounds: 1, warmup_runs: 1, warmup_s: 0}")
    result = pytester.runpytest("specs", "--edge-target", DEVICE, "-k", "latency", "--edge-results", "r.json",
                                "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    latency = records(root / "r.json")[0]
    assert facts(latency)["measured_on"].startswith(f"{DEVICE} board pi-a")
    assert not any(m["name"].startswith("latency.estimate") for m in latency["result"]["measurements"])
    assert any("source: estimate is not used" in n for n in latency["result"]["notes"])


def test_a_tflite_model_runs_on_the_board_s_litert(pytester, sshd, board_python):
    """LiteRT on the board, through the backend that owns .tflite files; the host's LiteRT gives the reference."""
    import shutil

    from conftest import EXAMPLE

    shutil.copytree(EXAMPLE / "tflite", pytester.path / "tflite")
    (pytester.path / "specs").mkdir()
    (pytester.path / "specs" / "digits.yaml").write_text(textwrap.dedent(f"""\
        edgecheck: 1
        name: digits-tflite
        model: {{path: ../tflite/digits.tflite}}
        data:
          evaluation: {{path: ../tflite/test.npz, labels: labels, metric: top1}}
          parity_samples: 32
        targets:
          {DEVICE}:
            backends: [tflite]
            budgets:
              accuracy_drop: 0.5
              parity: {{rel_l2: 0.001}}
              latency_ms: {{p95: 100, samples: 40, rounds: 1, warmup_runs: 2, warmup_s: 0}}
        """))
    (pytester.path / "boards.yaml").write_text(
        f"boards:\n  - {{name: pi-a, device: {DEVICE}, ssh: board-a, ssh_config: {sshd.ssh_config}, "
        f"python: {board_python}, store: {pytester.path / 'store'}}}\n")
    pytester.makeini("[pytest]\nedge_boards = boards.yaml\n")
    result = pytester.runpytest("specs", "--edge-target", DEVICE, "--edge-results", "r.json", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)
    for record in records(pytester.path / "r.json"):
        assert facts(record)["measured_on"].startswith(f"{DEVICE} board pi-a"), facts(record)
        assert "ai-edge-litert" in facts(record)["measured_on"] or "litert" in facts(record)["measured_on"].lower()
    assert len(list((pytester.path / "store" / "blobs").glob("*.tflite"))) == 1


def test_a_board_on_python_3_8_runs_the_worker(pytester, sshd, board_python_oldest):
    """The oldest board Python edgecheck supports (Ubuntu 20.04, JetPack 5): the whole worker side runs there."""
    root = project(pytester, sshd, board_python_oldest, [("pi-old", "board-a")])
    result = pytester.runpytest("specs", "--edge-target", DEVICE, "--edge-results", "r.json", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
    for record in records(root / "r.json"):
        assert "onnxruntime 1.19" in facts(record)["measured_on"], facts(record)["measured_on"]


def test_a_board_of_the_pool_without_the_runtime_is_passed_over(pytester, sshd, board_python, board_python_bare):
    root = project(pytester, sshd, board_python, [("pi-bare", "board-a"), ("pi-full", "board-b")])
    boards = (root / "boards.yaml").read_text().splitlines()
    boards[1] = boards[1].replace(str(board_python), str(board_python_bare))  # pi-bare: numpy, no onnxruntime
    (root / "boards.yaml").write_text("\n".join(boards) + "\n")
    result = pytester.runpytest("specs", "--edge-target", DEVICE, "--edge-results", "r.json", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
    assert {facts(r)["board"] for r in records(root / "r.json")} == {"pi-full"}


def test_a_file_s_size_is_not_labelled_as_a_board_s_figure(pytester, sshd, board_python):
    root = project(pytester, sshd, board_python, [("pi-a", "board-a")])
    spec = root / "specs" / "model0.yaml"
    spec.write_text(spec.read_text().replace("      memory_mb: {peak: 500}", "      memory_mb: {peak: 500}\n      size_mb: 1"))
    pytester.runpytest("specs", "--edge-target", DEVICE, "--edge-results", "r.json", "-p", "no:cacheprovider"
                       ).assert_outcomes(passed=5)
    size = next(r for r in records(root / "r.json") if r["check"] == "size")
    assert "board" not in facts(size).get("measured_on", "") and "board" not in facts(size)


def test_an_onnx_model_with_external_data_is_a_named_failure_before_any_board_is_used(pytester, sshd, board_python):
    import onnx

    root = project(pytester, sshd, board_python, [("pi-a", "board-a")])
    model = onnx.load(str(root / "models" / "clf.onnx"))
    onnx.save(model, str(root / "models" / "clf.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
              location="clf.onnx.data", size_threshold=0)
    result = pytester.runpytest("specs", "--edge-target", DEVICE, "-k", "parity", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*clf.onnx keeps its weights in 1 external data file(s) (clf.onnx.data)*"])
    assert not (root / "store-pi-a" / "blobs").exists() or not any((root / "store-pi-a" / "blobs").iterdir())


def test_edgecheck_boards_refuses_an_unknown_device(tmp_path):
    boards = tmp_path / "boards.yaml"
    boards.write_text("boards:\n  - {name: x, device: rk3858, ssh: a@b}\n")
    done = subprocess.run([sys.executable, "-m", "edgecheck", "boards", "--boards", str(boards)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and "unknown device 'rk3858'" in done.stderr, done.stderr


def test_a_timing_whose_board_lock_was_lost_is_a_named_failure(pytester, sshd, board_python):
    """The connection holding the board's timing lock closes mid-timing: another run could time beside this one,
    so the samples are not used (never a clean pass)."""
    import signal

    root = project(pytester, sshd, board_python, [("pi-a", "board-a")],
                   latency="{p50: 100, duration_s: 6, rounds: 3, warmup_runs: 1, warmup_s: 0}")

    def drop_the_lock(holders: list[int]) -> None:
        for pid in holders:
            os.kill(pid, signal.SIGKILL)

    dropper = while_timing(root, drop_the_lock, settle_s=0.5)
    result = pytester.runpytest("specs", "--edge-target", DEVICE, "-k", "latency", "-p", "no:cacheprovider")
    dropper.join()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*board pi-a*lost its timing lock while timing clf.onnx*"])


def test_a_board_s_baseline_is_compared_only_with_the_same_board_s_figures(pytester, sshd, board_python):
    root = project(pytester, sshd, board_python, [("pi-a", "board-a")])
    pytester.runpytest("specs", "--edge-target", DEVICE, "-k", "latency", "--edge-save-baseline", "onboard",
                       "-p", "no:cacheprovider").assert_outcomes(passed=1)
    again = pytester.runpytest("specs", "--edge-target", DEVICE, "-k", "latency", "--edge-baseline", "onboard",
                               "--edge-results", "same.json", "-p", "no:cacheprovider")
    again.assert_outcomes(passed=1)
    assert "regression.latency.p50" in json.dumps(records(root / "same.json"))  # the same board: compared
    # the same item with the host standing in (no board): never compared with the board's figures
    spec = root / "specs" / "model0.yaml"
    spec.write_text(spec.read_text().replace("warmup_s: 0}", "warmup_s: 0, source: host}"))
    (root / "pytest.ini").write_text("[pytest]\n")
    host = pytester.runpytest("specs", "--edge-target", DEVICE, "-k", "latency", "--edge-baseline", "onboard",
                              "--edge-results", "host.json", "-p", "no:cacheprovider")
    host.assert_outcomes(passed=1)
    text = json.dumps(records(root / "host.json"))
    assert "another machine" in text, text[:3000]


def test_a_lock_holder_without_a_heartbeat_releases_the_board(sshd, board_python, tmp_path):
    """A session that freezes (its TCP connection open, nothing sent) does not keep the board: the holder on the
    board lets go once the heartbeat stops (30 s; 15 s here: long enough for the second ssh below to find it still
    held on a loaded machine)."""
    from edgecheck.boards.store import agent_script

    store = tmp_path / "store"
    command = [str(board_python), "-c", agent_script(), "lock", str(store), "exclusive", "0",
               json.dumps({"host": "frozen", "pid": 1, "what": "a frozen session"}), "15"]
    frozen = subprocess.Popen(sshd.ssh_command("board-a", *[_quote(w) for w in command]), stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert json.loads(frozen.stdout.readline())["held"]
        busy = sshd.run("board-a", *[_quote(w) for w in [str(board_python), "-c", agent_script(), "lock", str(store),
                                                           "exclusive", "0", json.dumps({"what": "x"})]])
        assert json.loads(busy.stdout.splitlines()[-1])["held"] is False  # held by the frozen session
        assert frozen.wait(timeout=120) == 0  # no heartbeat for 15 s: the holder exits, the lock goes with it
        mine = hold(sshd, board_python, "board-a", store)  # free again
        mine.stdin.close()
        mine.wait(timeout=30)
    finally:
        frozen.kill()


CRASHING_BACKEND = '''
import os
import signal

from edgecheck.backends import register_backend
from edgecheck.backends.registry import unregister_backend
from edgecheck.vendors.onnxruntime.backend import OnnxRuntimeBackend, OnnxRuntimeRunner


class CrashingRunner(OnnxRuntimeRunner):
    def _infer_impl(self, feed):
        os.kill(os.getpid(), signal.SIGSEGV)  # what a runtime's segfault does to its process


@register_backend
class CrashingBackend(OnnxRuntimeBackend):
    name = "crashing"

    def _load_impl(self, artifact, options):
        runner = super()._load_impl(artifact, options)
        return CrashingRunner(runner._session, artifact)


def pytest_unconfigure(config):
    unregister_backend("crashing")
'''


def test_a_runtime_crash_on_the_board_is_a_crash_not_a_lost_board(pytester, sshd, board_python):
    root = project(pytester, sshd, board_python, [("pi-a", "board-a")], backend="crashing")
    pytester.makeconftest(CRASHING_BACKEND)
    result = pytester.runpytest("specs", "--edge-target", DEVICE, "-k", "parity or accuracy", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=2)  # both ran on the board (not skipped as a board that dropped off)
    result.stdout.fnmatch_lines(["*crashing on board pi-a crashed while running clf.onnx*board pi-a*still answers*"])
    assert wait_for_no_board_processes(root) == []


def test_a_store_reached_through_a_link_works(pytester, sshd, board_python, tmp_path):
    root = project(pytester, sshd, board_python, [("pi-a", "board-a")])
    (tmp_path / "real-store").mkdir()
    (root / "linked-store").symlink_to(tmp_path / "real-store", target_is_directory=True)
    boards = (root / "boards.yaml").read_text().replace(str(root / "store-pi-a"), str(root / "linked-store"))
    (root / "boards.yaml").write_text(boards)
    pytester.runpytest("specs", "--edge-target", DEVICE, "-k", "parity", "-p", "no:cacheprovider"
                       ).assert_outcomes(passed=1)
    assert list((tmp_path / "real-store" / "blobs").glob("*.onnx"))


def test_a_connection_lost_and_back_at_once_is_not_taken_for_a_crash(pytester, sshd, board_python):
    """sshd killed mid-timing and started again at once (a network blip): the item fails as a lost connection,
    and the board is found again (the worker did not crash)."""
    root = project(pytester, sshd, board_python, [("pi-a", "board-a")],
                   latency="{p50: 100, duration_s: 60, rounds: 1, warmup_runs: 1, warmup_s: 0}")

    def blip(holders: list[int]) -> None:
        sshd.kill_all()
        sshd.restart()

    thread = while_timing(root, blip)
    result = pytester.runpytest("specs", "--edge-target", DEVICE, "-k", "latency", "-p", "no:cacheprovider")
    thread.join()
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    assert "crashed" not in text and ("was lost" in text or "dropped off" in text), text[-3000:]
    assert wait_for_no_board_processes(root) == []


def test_a_pool_s_boards_of_one_cpu_compare_with_each_other_s_baseline(pytester, sshd, board_python):
    """A pool gives an item whichever board is free: a baseline from one board is compared with a figure of another
    board of the same CPU signature, and the note names both."""
    root = project(pytester, sshd, board_python, [("pi-a", "board-a"), ("pi-b", "board-b")])
    holder = hold(sshd, board_python, "board-b", root / "store-pi-b")
    try:  # the baseline from pi-a
        pytester.runpytest("specs", "--edge-target", DEVICE, "-k", "latency", "--edge-save-baseline", "pool",
                           "-p", "no:cacheprovider").assert_outcomes(passed=1)
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    holder = hold(sshd, board_python, "board-a", root / "store-pi-a")
    try:  # the comparison on pi-b
        result = pytester.runpytest("specs", "--edge-target", DEVICE, "-k", "latency", "--edge-baseline", "pool",
                                    "--edge-results", "r.json", "-p", "no:cacheprovider")
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    result.assert_outcomes(passed=1)
    latency = records(root / "r.json")[0]
    assert facts(latency)["board"] == "pi-b"
    change = next(m for m in latency["result"]["measurements"] if m["name"] == "regression.latency.p50")
    assert change["interval"] not in (None, ["-inf", "inf"]) and not change["cannot_judge"], change
    assert any("measured on board pi-a" in n and "this on board pi-b" in n for n in latency["result"]["notes"])
