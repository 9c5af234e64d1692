"""Reading a user's .npz data files with bounded memory and time, never unpickling.

A data file is the user's, or anyone's: its zip directory and each member's .npy header say how
large every array is before a byte of it is decompressed, so a small file whose member inflates to
gigabytes, or a header that claims terabytes, is refused by name before anything is allocated. A
file is read once per process (keyed by its identity on disk), errors included, so the checks of a
session share one read.
"""

from __future__ import annotations

import json
import math
import os
import stat
import threading
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecheck.errors import DataError
from edgecheck.units import MIB

DEFAULT_MAX_MB = 1024  # largest uncompressed size of one data file's arrays (data.max_mb)
# files kept in memory at once, within twice DEFAULT_MAX_MB of arrays: every data file of a few tens of specs, so
# that the run's checks find what collection read (validating every spec's data) instead of reading it again;
# an LRU of fewer files than the session's specs name evicts each file before its checks run (under xdist each
# worker collects every spec, so a re-read there is one per worker, all at once)
_KEEP = 64


@dataclass(frozen=True)
class ArrayHeader:
    """What a member's .npy header says: enough to check names, shapes and types without reading."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    nbytes: int

    def text(self) -> str:
        return f"{self.name} {list(self.shape)} {self.dtype.name}"


def _size_text(nbytes: int) -> str:
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= size:
            return f"{nbytes / size:.3g} {unit}"
    return f"{nbytes} bytes"


def _open_zip(path: Path) -> zipfile.ZipFile:
    """The file as a zip archive; never a FIFO, device or link to one (those hang or never end)."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise DataError(f"{path}: not a regular file (a device, FIFO or folder); give an .npz file")
    try:
        with open(path, "rb") as handle:
            start = handle.read(4)
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if start != b"PK\x03\x04" and start != b"PK\x05\x06":  # a zip's first local header, or an empty zip
        kind = "an .npy array (save it with numpy.savez)" if start == b"\x93NUM" else f"starts with {start!r}"
        raise DataError(f"{path}: not an .npz file (a zip archive of .npy arrays): {kind}")
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npz file (a zip archive of .npy arrays): {exc}") from None


def _header(archive: zipfile.ZipFile, member: zipfile.ZipInfo, path: Path) -> ArrayHeader:
    name = member.filename.removesuffix(".npy")
    where = f"{path}: array {name!r}"
    try:
        with archive.open(member) as handle:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
            elif version in ((2, 0), (3, 0)):
                shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
            else:
                raise ValueError(f"unknown .npy format version {version}")
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, SyntaxError, TypeError,
            NotImplementedError, RuntimeError) as exc:
        raise DataError(f"{where}: not a readable .npy array: {exc}") from None
    if dtype.hasobject:
        raise DataError(f"{where} holds Python objects (dtype {dtype}), which only unpickling could read; "
                        "edgecheck never unpickles data: save numbers (numpy.savez of numeric arrays)")
    nbytes = math.prod(int(d) for d in shape) * dtype.itemsize  # Python ints: no overflow
    return ArrayHeader(name, tuple(int(d) for d in shape), dtype, nbytes)


def _checked_headers(archive: zipfile.ZipFile, path: Path, max_mb: float) -> dict[str, ArrayHeader]:
    """Every array's name, shape and type from the zip directory and the .npy headers only; refuses a
    file whose arrays would take more than `max_mb` MiB, or whose headers claim more than it holds."""
    members = archive.infolist()
    if len(members) > 10_000:
        raise DataError(f"{path}: holds {len(members)} members; a data file holds an array per model input")
    limit = int(max_mb * MIB)
    declared = sum(m.file_size for m in members)
    if declared > limit:
        raise DataError(f"{path}: its arrays take {_size_text(declared)} uncompressed (the file is "
                        f"{_size_text(sum(m.compress_size for m in members))}), over data.max_mb ({max_mb:g} MiB): "
                        "raise data.max_mb in the spec if it is meant")
    headers: dict[str, ArrayHeader] = {}
    for member in members:
        if not member.filename.endswith(".npy"):
            raise DataError(f"{path}: member {member.filename!r} is not an .npy array; an .npz holds only arrays")
        header = _header(archive, member, path)
        if header.nbytes > limit:
            raise DataError(f"{path}: array {header.name!r} claims shape {list(header.shape)} {header.dtype.name}, "
                            f"{_size_text(header.nbytes)}, over data.max_mb ({max_mb:g} MiB)")
        if header.nbytes > member.file_size:
            raise DataError(f"{path}: array {header.name!r} claims shape {list(header.shape)} {header.dtype.name} "
                            f"({header.nbytes} bytes), and its member holds {member.file_size} bytes: the file is "
                            "truncated or not what it claims")
        if header.name in headers:  # zipfile writes a second member of the same name with only a warning
            raise DataError(f"{path}: holds two arrays named {header.name!r}; which one is meant is not known")
        headers[header.name] = header
    return headers


class _Memo:
    """The last few files read, by (path, size, mtime, limit), with the error if reading failed."""

    def __init__(self) -> None:
        self._entries: OrderedDict[tuple, dict[str, np.ndarray] | DataError] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> dict[str, np.ndarray] | DataError | None:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def put(self, key: tuple, value: dict[str, np.ndarray] | DataError) -> None:
        with self._lock:
            self._entries[key] = value
            # the newest always stays; older ones go past a few files or twice the default limit in bytes
            while len(self._entries) > 1 and (len(self._entries) > _KEEP or self._bytes() > 2 * DEFAULT_MAX_MB * MIB):
                self._entries.popitem(last=False)

    def _bytes(self) -> int:
        return sum(a.nbytes for v in self._entries.values() if isinstance(v, dict) for a in v.values())

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_memo = _Memo()


def load_npz(path: Path, max_mb: float = DEFAULT_MAX_MB) -> dict[str, np.ndarray]:
    """Every array of an .npz, read once per process while the file is unchanged; the arrays are
    read-only (shared by every caller). Raises `DataError` naming the file and the cause."""
    try:
        info = os.stat(path)
        key = (str(Path(path).resolve()), info.st_size, info.st_mtime_ns, info.st_ino, float(max_mb))
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    found = _memo.get(key)
    if found is None:
        try:
            found = _read(Path(path), max_mb)
        except DataError as exc:
            found = exc
        _memo.put(key, found)
    if isinstance(found, DataError):
        raise DataError(str(found))
    return dict(found)


def _read(path: Path, max_mb: float) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    with _open_zip(path) as archive:
        headers = _checked_headers(archive, path, max_mb)
        members = {member.filename.removesuffix(".npy"): member for member in archive.infolist()}
        for name, header in headers.items():
            member = members[name]
            try:
                with archive.open(member) as handle:
                    array = np.lib.format.read_array(handle, allow_pickle=False)
            except (ValueError, OSError, EOFError, zipfile.BadZipFile, MemoryError) as exc:
                raise DataError(f"{path}: array {header.name!r} cannot be read: {type(exc).__name__}: {exc}") from None
            array.setflags(write=False)
            arrays[header.name] = array
    return arrays


LAYOUT_MEMBER = "edgecheck.layout"  # in a prepared calibration file: the spec's batch axes and fixed inputs


def write_npz(path: Path, arrays: dict[str, np.ndarray], layout: dict | None = None) -> None:
    """Write arrays (and a layout) as an .npz whose bytes depend on the content only (no timestamps),
    so a file prepared from the same data keys the same cached artifacts."""
    members = dict(arrays)
    if layout is not None:
        members[LAYOUT_MEMBER] = np.array(json.dumps(layout, sort_keys=True))
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:
        for name in sorted(members):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with archive.open(info, "w", force_zip64=True) as handle:
                np.lib.format.write_array(handle, np.asarray(members[name], order="C"), allow_pickle=False)  # 0-d stays 0-d
    os.replace(tmp, path)
