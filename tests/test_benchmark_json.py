"""Latency results exported as pytest-benchmark JSON, read back by pytest-benchmark's own CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import HANG_GUARD_S
from result_records import record

from edgecheck.checks.result import Measurement
from edgecheck.measure.stats import BENCHMARK_STATS_KEYS, LatencyStats
from edgecheck.report.benchmark_json import (
    benchmark_document,
    benchmark_entry,
    entries_from_records,
    machine_info,
    write_benchmark_json,
)


def _stats(seed: int, median_ms: float, n: int = 300) -> dict:
    rng = np.random.default_rng(seed)
    samples_ns = rng.lognormal(mean=np.log(median_ms * 1e6), sigma=0.2, size=n).round()
    return LatencyStats.from_ns(samples_ns).benchmark_stats()


def _record(target: str, recipe: str, stats: dict | str | None, check: str = "latency", **facts: str) -> dict:
    """One finished item's record, as the plugin makes it for a latency check."""
    found = {"measured_on": target, "runtime": "onnxruntime 1.32.0", "host": "ci-runner-7", "threads": "1", **facts}
    if stats is not None:
        found["latency.stats"] = stats if isinstance(stats, str) else json.dumps(stats)
    return record(check, recipe, [Measurement("latency.p99", 1.234)], found, spec_name="digits", target=target)


def _run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """pytest-benchmark's console script is `from pytest_benchmark.cli import main; main()`."""
    pytest.importorskip("pytest_benchmark", reason="pytest-benchmark is not installed (pip install .[dev])")
    return subprocess.run([sys.executable, "-m", "pytest_benchmark", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=HANG_GUARD_S)


# --- document layout --------------------------------------------------------------------------

def test_entry_has_pytest_benchmarks_keys() -> None:
    entry = benchmark_entry("rpi4-onnxruntime-int8", "specs/d.yaml::rpi4-onnxruntime-int8-latency",
                            "digits rpi4", _stats(0, 2.0), {"runtime": "ort"})
    assert list(entry) == ["group", "name", "fullname", "params", "param", "extra_info", "options", "stats"]
    assert tuple(entry["stats"]) == BENCHMARK_STATS_KEYS
    assert entry["params"] is None and entry["param"] is None


def test_document_top_level_keys() -> None:
    doc = benchmark_document([], machine_info())
    assert list(doc) == ["machine_info", "commit_info", "benchmarks", "datetime", "version"]
    assert doc["commit_info"]["id"] == "unversioned"
    given = {"id": "abc123", "time": None, "author_time": None, "dirty": True, "project": "p", "branch": "main"}
    assert benchmark_document([], {}, given)["commit_info"] == given


def test_machine_info_has_pytest_benchmarks_fields() -> None:
    info = machine_info()
    for key in ("node", "processor", "machine", "python_compiler", "python_implementation",
                "python_version", "release", "system"):
        assert isinstance(info[key], str), key
    assert info["cpu"]["brand_raw"]
    assert info["cpu"]["count"] == os.cpu_count()
    json.dumps(info)


# --- atomic writing ---------------------------------------------------------------------------

def test_write_creates_folders_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "latency.json"
    doc = benchmark_document([], machine_info())
    write_benchmark_json(path, doc)
    assert json.loads(path.read_text()) == doc
    assert [p.name for p in path.parent.iterdir()] == ["latency.json"]


def test_write_replaces_an_existing_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "latency.json"
    path.write_text("x" * 100_000)   # longer than the new document: no tail of it may survive
    doc = benchmark_document([benchmark_entry("n", "f", "g", _stats(1, 1.0), {})], {})
    write_benchmark_json(path, doc)
    assert json.loads(path.read_text()) == doc
    assert os.listdir(tmp_path) == ["latency.json"]


def test_failed_write_keeps_the_old_file_and_cleans_up(tmp_path: Path) -> None:
    path = tmp_path / "latency.json"
    path.write_text('{"old": true}')
    with pytest.raises(ValueError):
        write_benchmark_json(path, {"bad": float("nan")})   # not JSON: refused before anything moves
    with pytest.raises(TypeError):
        write_benchmark_json(path, {"bad": object()})
    assert path.read_text() == '{"old": true}'
    assert os.listdir(tmp_path) == ["latency.json"]


def test_write_interrupted_before_the_rename_keeps_the_old_file(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "latency.json"
    path.write_text('{"old": true}')

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space"):
        write_benchmark_json(path, benchmark_document([], {}))
    monkeypatch.undo()
    assert path.read_text() == '{"old": true}'
    assert os.listdir(tmp_path) == ["latency.json"]


def test_written_file_honours_the_umask(tmp_path: Path) -> None:
    if os.name != "posix":
        pytest.skip("file modes are POSIX")
    old = os.umask(0o022)
    try:
        write_benchmark_json(tmp_path / "latency.json", {})
    finally:
        os.umask(old)
    assert (tmp_path / "latency.json").stat().st_mode & 0o777 == 0o644


# --- from records --------------------------------------------------------------------------

def test_entries_from_records() -> None:
    stats = _stats(2, 3.0)
    reports = [
        _record("rpi4", "int8", stats, artifact="cache/ab12/model.onnx"),
        _record("rpi4", "int8", None, check="accuracy"),   # not a latency item
        _record("jetson", "fp16", stats),
    ]
    entries = entries_from_records(reports)
    assert [e["name"] for e in entries] == ["rpi4-onnxruntime-int8", "jetson-onnxruntime-fp16"]
    first = entries[0]
    assert first["fullname"] == "specs/digits.yaml::rpi4-onnxruntime-int8-latency"
    assert first["group"] == "digits rpi4"
    assert first["stats"] == stats
    assert first["extra_info"] == {"measured_on": "rpi4", "runtime": "onnxruntime 1.32.0",
                                   "host": "ci-runner-7", "threads": "1",
                                   "artifact": "cache/ab12/model.onnx"}
    assert "artifact" not in entries[1]["extra_info"]


def test_a_host_figure_standing_in_for_a_device_says_so_in_name_and_group() -> None:
    stand_in = _record("rpi4", "int8", _stats(2, 3.0),
                           measured_on="host, as a stand-in for rpi4 (the spec's source: host)")
    on_host = _record("host", "int8", _stats(2, 3.0), measured_on="host")
    first, second = entries_from_records([stand_in, on_host])
    assert first["name"] == "rpi4-onnxruntime-int8 (host stand-in)"
    assert first["group"] == "digits rpi4 (host stand-in)"
    assert second["name"] == "host-onnxruntime-int8" and second["group"] == "digits host"


@pytest.mark.parametrize("bad", ["{not json", "[1, 2]", json.dumps({"mean": 0.1})])
def test_malformed_stats_are_skipped_with_a_warning(bad: str) -> None:
    reports = [_record("rpi4", "int8", bad), _record("jetson", "fp16", _stats(3, 1.0))]
    with pytest.warns(UserWarning, match=r"specs/digits\.yaml::rpi4-onnxruntime-int8-latency"):
        entries = entries_from_records(reports)
    assert [e["name"] for e in entries] == ["jetson-onnxruntime-fp16"]


def test_non_finite_stats_are_skipped() -> None:
    stats = _stats(4, 1.0)
    stats["mean"] = float("inf")
    with pytest.warns(UserWarning, match="mean"):
        assert entries_from_records([_record("rpi4", "int8", json.dumps(stats))]) == []


# --- read back by pytest-benchmark ------------------------------------------------------------

def _write_run(path: Path, medians: dict[tuple[str, str], float], seed: int) -> None:
    reports = [_record(target, recipe, _stats(seed + i, median))
               for i, ((target, recipe), median) in enumerate(medians.items())]
    entries = entries_from_records(reports)
    write_benchmark_json(path, benchmark_document(entries, machine_info()))


def test_pytest_benchmark_compare_reads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "out" / "latency.json"
    _write_run(path, {("rpi4", "int8"): 2.0, ("jetson", "fp16"): 0.5}, seed=10)
    result = _run_cli("compare", str(path), "--columns=min,median,mean,max,rounds", cwd=tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "Failed to load" not in out
    assert "rpi4-onnxruntime-int8" in out and "jetson-onnxruntime-fp16" in out
    assert "digits rpi4" in out and "digits jetson" in out   # groups
    # Each group is scaled to the unit its fastest min calls for; figures are printed to 4 places.
    from pytest_benchmark.utils import time_unit

    document = json.loads(path.read_text())
    for bench in document["benchmarks"]:
        stats = bench["stats"]
        unit, scale = time_unit(stats["min"])
        assert f"Name (time in {unit}s)" in out
        for key in ("min", "median", "mean", "max"):
            assert f"{stats[key] * scale:,.4f}" in out, (bench["name"], key)
        assert f"{stats['rounds']}" in out


def test_pytest_benchmark_compare_two_runs(tmp_path: Path) -> None:
    before, after = tmp_path / "0001_before.json", tmp_path / "0002_after.json"
    _write_run(before, {("rpi4", "int8"): 2.0}, seed=20)
    _write_run(after, {("rpi4", "int8"): 3.0}, seed=30)
    result = _run_cli("compare", str(before), str(after), "--group-by=name", "--columns=median,rounds",
                      cwd=tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "Failed to load" not in out
    assert "0001_before" in out and "0002_after" in out
    for path in (before, after):
        median = json.loads(path.read_text())["benchmarks"][0]["stats"]["median"]
        assert f"{median * 1e3:,.4f}" in out
    assert out.count("rpi4-onnxruntime-int8") >= 2


def test_pytest_benchmark_compare_between_runs(tmp_path: Path) -> None:
    before, after = tmp_path / "0001_before.json", tmp_path / "0002_after.json"
    _write_run(before, {("rpi4", "int8"): 2.0}, seed=40)
    _write_run(after, {("rpi4", "int8"): 3.0}, seed=50)
    result = _run_cli("compare", str(before), str(after), "--between=median", cwd=tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "rpi4-onnxruntime-int8" in out
