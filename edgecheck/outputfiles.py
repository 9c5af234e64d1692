"""Joined model outputs on disk: one raw .npy file per output, named by position.

A worker writes them (edgecheck.worker), the session maps them, and the cache keeps those very files
as an entry (edgecheck.cache): a hundred megabytes of outputs are written once, and read only as
they are used. Numpy alone: a worker under another Python imports this too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import mmap

import numpy as np


def output_file(index: int) -> str:
    """The file of a joined output, by position (a tensor name can hold any character)."""
    return f"output_{index}.npy"


def save_outputs(folder: Path, outputs: Mapping[str, np.ndarray]) -> list[str]:
    """Write joined outputs into `folder`, one .npy file each (raw arrays: no zip, no CRC, no copy on
    reading them back); returns their names in file order."""
    names = list(outputs)
    for index, name in enumerate(names):
        write_output(folder / output_file(index), outputs[name])
    return names


def mapped_from(array: np.ndarray, path: Path) -> bool:
    """Whether `array` is the mapping of the whole array of the .npy file at `path` (so that file holds it,
    byte for byte): its offset, shape and dtype are the file's, and it is no view (a slice, a reshape) of
    such a mapping."""
    if not (isinstance(array, np.memmap) and array.filename is not None and isinstance(array.base, mmap.mmap)
            and Path(array.filename).resolve() == path.resolve()):
        return False
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            shape, fortran_order, dtype = read_header(handle)
            data_offset = handle.tell()
    except (OSError, ValueError):
        return False
    return (array.offset == data_offset and array.shape == tuple(shape) and array.dtype == dtype
            and not fortran_order and array.flags.c_contiguous)


def write_output(path: Path, array: np.ndarray) -> None:
    """One output as a .npy file: np.save's format, its bytes written by Python's own file writes, so a full
    disk is an OSError with its errno (ENOSPC), which the cache turns into where the disk is full (numpy's
    tofile says only how many bytes it wrote). A file already there is unlinked first, never truncated: an
    array mapped from it stays valid."""
    array = np.asarray(array)  # (np.ascontiguousarray would make a 0-d output 1-d)
    array = array if array.flags.c_contiguous else array.copy(order="C")
    path.unlink(missing_ok=True)
    if array.dtype.hasobject:
        raise ValueError(f"an output of dtype {array.dtype} holds Python objects: not stored (no pickles)")
    header = np.lib.format.header_data_from_array_1_0(array)
    with open(path, "wb") as handle:
        try:
            np.lib.format.write_array_header_1_0(handle, header)
        except ValueError:  # a header past 64 KiB (a very wide structured dtype)
            handle.seek(0)
            handle.truncate()
            np.lib.format.write_array_header_2_0(handle, header)
        handle.write(array.reshape(-1).view(np.uint8).data)


# Smaller files are read into memory: a mapping holds a file descriptor for as long as its array lives (a
# session keeps every output), so only the large outputs that mapping saves memory and time on are mapped
# (and numpy maps a 0-d array as 1-d).
MAP_BYTES = 16 << 20


def load_outputs(folder: Path, names: Sequence[str]) -> dict[str, np.ndarray]:
    """What `save_outputs` wrote. A large file is mapped copy-on-write: nothing is read until used, nothing is
    copied until written (a metric may change its array in place without touching the file)."""
    loaded = {}
    for index, name in enumerate(names):
        path = folder / output_file(index)
        mode = "c" if path.stat().st_size >= MAP_BYTES else None
        loaded[name] = np.load(path, mmap_mode=mode, allow_pickle=False)
    return loaded
