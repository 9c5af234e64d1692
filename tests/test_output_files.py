"""Joined outputs on disk: only large ones are mapped (each mapping holds a file descriptor for the whole
session), a job folder without a cache is removed once loaded, and only a whole file's own mapping counts
as the file's content (a slice of it does not)."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np

import edgecheck.measure.runs as runs_module
from edgecheck.outputfiles import MAP_BYTES, load_outputs, mapped_from, output_file, save_outputs


def _outputs() -> dict[str, np.ndarray]:
    large = np.arange(MAP_BYTES // 4 + 16, dtype=np.float32).reshape(-1, 16)
    return {"boxes": large, "score": np.arange(12, dtype=np.float32).reshape(3, 4), "flag": np.array(1.5),
            "masks": np.ones((4, 1 << 20), dtype=np.uint8)}  # 4 MiB: read, not mapped


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_only_outputs_of_16_mib_and_more_are_mapped(tmp_path):
    expected = _outputs()
    names = save_outputs(tmp_path, expected)
    before = _open_descriptors()
    loaded = load_outputs(tmp_path, names)
    assert isinstance(loaded["boxes"], np.memmap)
    assert MAP_BYTES == 16 << 20
    assert not any(isinstance(loaded[name], np.memmap) for name in ("score", "flag", "masks"))
    assert _open_descriptors() - before == 1  # the one mapping's
    for name, array in expected.items():
        assert loaded[name].shape == array.shape and np.array_equal(loaded[name], array)


def test_only_the_whole_mapping_of_a_file_counts_as_its_content(tmp_path):
    names = save_outputs(tmp_path, _outputs())
    loaded = load_outputs(tmp_path, names)
    boxes, path = loaded["boxes"], tmp_path / output_file(0)
    assert mapped_from(boxes, path)
    assert not mapped_from(boxes[1:], path) and not mapped_from(boxes[:-1], path)
    assert not mapped_from(boxes[:, ::-1], path) and not mapped_from(boxes.reshape(-1), path)
    assert not mapped_from(boxes, tmp_path / output_file(1))
    assert not mapped_from(loaded["score"], tmp_path / output_file(1))  # read into memory: no file holds it
    assert not mapped_from(np.memmap(path, dtype=np.float32, mode="r", shape=boxes.shape), path)  # offset 0: the header


class FakeWorkers:
    """A pool whose worker writes the outputs where it is told, as the real one does."""

    def __init__(self, scratch: Path):
        self.scratch, self.count = scratch, 0

    def job_dir(self) -> Path:
        self.count += 1
        folder = self.scratch / f"job-{self.count}"
        folder.mkdir()
        return folder

    def run(self, backend, command, artifact):
        return {"names": save_outputs(Path(command["joined"]), _outputs())}


def test_without_a_cache_the_job_folder_goes_once_its_outputs_are_loaded(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGECHECK_LOCK_DIR", str(tmp_path / "locks"))
    monkeypatch.setattr(runs_module.ModelRuns, "inputs_file", lambda self, inputs: (tmp_path / "inputs.npz", []))
    monkeypatch.setattr(runs_module, "run_suffixes", lambda backend: [])
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    runs = runs_module.ModelRuns(FakeWorkers(scratch), "test-device")  # type: ignore[arg-type]
    outputs = runs.outputs(SimpleNamespace(name="b"), tmp_path / "m.onnx", 1, None)  # type: ignore[arg-type]
    assert list(scratch.iterdir()) == []  # nothing piles up until the pool closes
    assert np.array_equal(outputs["boxes"], _outputs()["boxes"])  # the mapping outlives its file's name

    into = tmp_path / "entry"
    into.mkdir()
    runs.outputs(SimpleNamespace(name="b"), tmp_path / "m.onnx", 1, None, into=into)  # type: ignore[arg-type]
    assert sorted(p.name for p in into.iterdir()) == [output_file(i) for i in range(4)]  # the cache's: kept
