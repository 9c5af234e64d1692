"""What the session and a worker process say to each other: JSON lines and .npz files, nothing pickled.

A worker may run under another Python interpreter than the session's (a toolkit whose pins clash
with ours gets its own virtual environment), so this module, like the rest of the worker side,
needs only the standard library and numpy: no pydantic, no onnx, no pytest.

Commands go to the worker's stdin, one JSON object per line. The worker answers on a pipe of its
own (never stdout: runtimes print there) with events, one JSON object per line:
  {"event": "ready", "pid": ..., "python": ...}
  {"event": "phase", "phase": "loading" | "running" | "warming up" | "timing"}
  {"event": "done", "result": {...}}
  {"event": "error", "kind": "MemoryError" | "BackendError" | ..., "step": ..., "message": ..., "traceback": ...}
Arrays travel in .npz files written with allow_pickle=False, keyed by position (f{feed}_{input},
o{feed}_{output}) because tensor names can hold any character; the names travel in the JSON.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from typing import Mapping as TypingMapping

import numpy as np

PROTOCOL_VERSION = 1
# typing's Mapping: collections.abc.Mapping[...] is evaluated here, and it takes a subscript from Python 3.9 on
Feed = TypingMapping[str, np.ndarray]


def encode(message: Mapping[str, Any]) -> bytes:
    return (json.dumps(message, separators=(",", ":"), allow_nan=False) + "\n").encode()


def decode(line: bytes | str) -> dict[str, Any]:
    message = json.loads(line)
    if not isinstance(message, dict):
        raise ValueError(f"not a message object: {line!r:.200}")
    return message


def save_feeds(path: Path, feeds: Sequence[Feed], prefix: str = "f") -> list[list[str]]:
    """Write feeds (or outputs) to one .npz by position; returns the names, per feed, in key order."""
    arrays: dict[str, np.ndarray] = {}
    names: list[list[str]] = []
    for i, feed in enumerate(feeds):
        names.append(list(feed))
        for j, name in enumerate(feed):
            arrays[f"{prefix}{i}_{j}"] = np.ascontiguousarray(feed[name])
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        _write_aligned_npz(handle, arrays)
    os.replace(tmp, path)
    return names


ALIGN = 64  # where each array's data starts in the file, as np.save aligns it in a .npy of its own
_PADDING_EXTRA = 0xD935  # the zip extra field Android's zipalign pads with: readers skip what they do not know


def _write_aligned_npz(handle: Any, arrays: Mapping[str, np.ndarray]) -> None:
    """np.savez's file (uncompressed .npy members, zip64), each member's data aligned to ALIGN in the file: a
    worker maps the arrays (load_feeds(mapped=True)), and a runtime given a misaligned float* misbehaves on CPUs
    that fault on it (32-bit ARM boards). np.load reads it as any .npz."""
    import struct
    import zipfile

    with zipfile.ZipFile(handle, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for key, array in arrays.items():
            name = f"{key}.npy"
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED
            # the local header: 30 bytes, the name, this extra field (4 + its padding), zip64's (20); then the .npy
            # header, a multiple of 64 bytes
            base = handle.tell() + 30 + len(name.encode()) + 4 + 20
            pad = -base % ALIGN
            info.extra = struct.pack("<HH", _PADDING_EXTRA, pad) + bytes(pad)
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


def load_feeds(path: Path, names: Sequence[Sequence[str]], prefix: str = "f",
               mapped: bool = False) -> list[dict[str, np.ndarray]]:
    """Read what `save_feeds` wrote, with the names it returned. `mapped`: the arrays map the file instead of
    copying it (as save_feeds writes it; anything else is read), so a worker's hundred megabytes of inputs cost no
    read and no private copy."""
    arrays = _mapped_members(path) if mapped else None
    if arrays is not None:
        return [{name: arrays[f"{prefix}{i}_{j}"] for j, name in enumerate(feed)} for i, feed in enumerate(names)]
    with np.load(path, allow_pickle=False) as data:
        return [{name: data[f"{prefix}{i}_{j}"] for j, name in enumerate(feed)} for i, feed in enumerate(names)]


def _mapped_members(path: Path) -> dict[str, np.ndarray] | None:
    """Every member of an uncompressed .npz (np.savez's) as an array over a copy-on-write mapping of the file
    (writable; nothing copied unless written), or None where one is compressed or not a plain .npy: read instead.
    Only for files a session wrote itself: no CRC is checked."""
    import io
    import mmap
    import struct
    import zipfile

    with open(path, "rb") as handle:
        try:
            with zipfile.ZipFile(handle) as archive:
                members = archive.infolist()
        except (zipfile.BadZipFile, OSError):
            return None
        if not members or any(m.compress_type != zipfile.ZIP_STORED or not m.filename.endswith(".npy")
                              for m in members):
            return None
        try:
            whole = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_COPY)
        except (OSError, ValueError):
            return None
    arrays = {}
    for member in members:
        local = whole[member.header_offset:member.header_offset + 30]
        if len(local) < 30 or local[:4] != b"PK\x03\x04":
            return None
        name_length, extra_length = struct.unpack("<HH", local[26:30])
        start = member.header_offset + 30 + name_length + extra_length
        header = io.BytesIO(whole[start:start + min(member.file_size, 1 << 16)])
        try:
            version = np.lib.format.read_magic(header)
            read = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}[version]
            shape, fortran, dtype = read(header)
        except (ValueError, KeyError):
            return None
        offset = start + header.tell()
        end = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if dtype.hasobject or end > start + member.file_size or end > len(whole) or offset % dtype.alignment:
            return None  # (misaligned: another writer's file; read, as np.load copies it aligned)
        arrays[member.filename[:-4]] = np.ndarray(shape, dtype, buffer=whole, offset=offset,
                                                  order="F" if fortran else "C")
    return arrays


def concat_outputs(per_feed: Sequence[Feed]) -> dict[str, np.ndarray]:
    """Join per-batch outputs along the sample axis (stacking outputs that have none)."""
    if not per_feed:
        return {}
    joined = {}
    for name in per_feed[0]:
        parts = [outputs[name] for outputs in per_feed]
        joined[name] = np.concatenate(parts) if all(p.ndim for p in parts) else np.stack(parts)
    return joined


def backend_reference(cls: type) -> dict[str, str]:
    """How a worker finds a backend class (or a recipe's function): its module, its name, and its
    file for modules that are not importable by name there (a conftest.py, a test module)."""
    import inspect

    try:
        file = inspect.getsourcefile(cls) or ""
    except TypeError:
        file = ""
    return {"module": cls.__module__, "qualname": cls.__qualname__, "file": file}
