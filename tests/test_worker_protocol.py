"""The inputs a worker maps instead of reading (load_feeds(mapped=True)): the same arrays as np.load gives, writable
without touching the file, and a file it cannot map (compressed, not .npy members) read as before."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from edgecheck.worker.protocol import _mapped_members, load_feeds, save_feeds

ARRAYS = {
    "float32": np.arange(24, dtype=np.float32).reshape(2, 3, 4),
    "fortran": np.asfortranarray(np.arange(12, dtype=np.float64).reshape(3, 4)),
    "big-endian": np.arange(5, dtype=">i4"),
    "bool": np.array([True, False, True]),
    "float16": np.array([1.5, -2.25], dtype=np.float16),
    "scalar": np.array(7, dtype=np.int64),
    "empty": np.zeros((0, 3), dtype=np.float32),
    "uint8": np.arange(256, dtype=np.uint8).reshape(16, 16),
}


def _feeds():
    return [{name: array} for name, array in ARRAYS.items()] + [dict(ARRAYS)]


def test_mapped_feeds_are_the_arrays_read(tmp_path):
    path = tmp_path / "inputs.npz"
    names = save_feeds(path, _feeds())
    read, mapped = load_feeds(path, names), load_feeds(path, names, mapped=True)
    assert _mapped_members(path) is not None  # really mapped, not the fallback
    for got, want in zip(mapped, read):
        assert list(got) == list(want)
        for name in want:
            assert got[name].dtype == want[name].dtype and got[name].shape == want[name].shape, name
            np.testing.assert_array_equal(got[name], want[name])


def test_every_mapped_array_is_aligned_and_the_file_is_an_npz_any_reader_takes(tmp_path):
    """A runtime handed a misaligned float* misbehaves where the CPU faults on it (32-bit ARM boards)."""
    path = tmp_path / "inputs.npz"
    names = save_feeds(path, _feeds())
    for feed in load_feeds(path, names, mapped=True):
        for name, array in feed.items():
            assert array.ctypes.data % 64 == 0, name
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None  # every member's CRC right
    with np.load(path) as plain:
        np.testing.assert_array_equal(plain["f0_0"], ARRAYS["float32"])


def test_a_misaligned_npz_is_read_not_mapped(tmp_path):
    path = tmp_path / "inputs.npz"
    np.savez(path, f0_0=np.arange(6, dtype=np.float32))  # np.savez: its data starts at byte 122, not a multiple of 4
    assert _mapped_members(path) is None
    feed = load_feeds(path, [["x"]], mapped=True)[0]["x"]
    assert feed.flags.aligned and feed.tolist() == list(range(6))


def test_a_mapped_feed_is_writable_and_the_file_stays(tmp_path):
    path = tmp_path / "inputs.npz"
    names = save_feeds(path, [{"x": np.zeros((4, 4), dtype=np.float32)}])
    before = path.read_bytes()
    feed = load_feeds(path, names, mapped=True)[0]["x"]
    feed += 1  # a runner may write into its feed
    assert feed.sum() == 16 and path.read_bytes() == before


@pytest.mark.parametrize("kind", ["compressed", "not npy"])
def test_what_cannot_be_mapped_is_read(tmp_path, kind):
    path = tmp_path / "inputs.npz"
    if kind == "compressed":
        np.savez_compressed(path, f0_0=np.arange(6, dtype=np.float32))
    else:
        np.savez(path, f0_0=np.arange(6, dtype=np.float32))
        with zipfile.ZipFile(path, "a") as archive:
            archive.writestr("notes.txt", "not an array")
    assert _mapped_members(path) is None
    np.testing.assert_array_equal(load_feeds(path, [["x"]], mapped=True)[0]["x"], np.arange(6, dtype=np.float32))


def test_a_truncated_file_is_not_mapped_past_its_end(tmp_path):
    path = tmp_path / "inputs.npz"
    names = save_feeds(path, [{"x": np.ones(1000, dtype=np.float64)}])
    data = path.read_bytes()
    path.write_bytes(data[:200] + data[-200:])  # the directory survives, the array's bytes do not
    assert _mapped_members(path) is None
    with pytest.raises(Exception):  # and reading it fails as np.load fails
        load_feeds(path, names, mapped=True)
