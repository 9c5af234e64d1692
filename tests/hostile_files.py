"""Hostile files for edgecheck's tests (tests/test_hostile_corpus.py), built small: big sizes are
sparse files or headers and zip entries that claim them; and what a session did to a project (its
files' fingerprints, what it opened for writing under strace)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import struct
import subprocess
import sys
import sysconfig
import zlib
from pathlib import Path

import numpy as np
from conftest import HANG_GUARD_S

MIB = 2**20

# --- files -----------------------------------------------------------------------------------------


def onnx_model(path: Path, nodes, inputs, outputs, initializers=(), opset: int = 13) -> Path:
    from onnx import helper

    graph = helper.make_graph(nodes, path.stem, [helper.make_tensor_value_info(*i) for i in inputs],
                              [helper.make_tensor_value_info(*o) for o in outputs], list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path


def constant_of_shape_model(path: Path, elements: int = 1 << 27) -> Path:
    """~200 bytes: Constant([elements]) -> ConstantOfShape -> Shape -> Add: analysing it naively (shape
    inference, constant folding) materialises a tensor of `elements` int64 values (1 GiB)."""
    from onnx import TensorProto, helper, numpy_helper

    return onnx_model(path, [
        helper.make_node("Constant", [], ["dims"], name="dims",
                         value=numpy_helper.from_array(np.array([elements], np.int64))),
        helper.make_node("ConstantOfShape", ["dims"], ["big"], name="bomb",
                         value=numpy_helper.from_array(np.array([1], np.int64))),
        helper.make_node("Shape", ["big"], ["size"], name="size"),
        helper.make_node("Add", ["x", "size"], ["y"], name="add"),
    ], [("x", TensorProto.INT64, [1])], [("y", TensorProto.INT64, [1])], opset=17)


def escaping_external_data_model(path: Path, outside: Path) -> Path:
    """A classifier whose weight lives in external data named '../../<outside>': outside its folder."""
    from onnx import TensorProto, helper

    weight = np.ones((4, 3), np.float32)
    outside.write_bytes(weight.tobytes())
    tensor = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[4, 3])
    tensor.data_location = TensorProto.EXTERNAL
    relative = os.path.relpath(outside, path.parent)
    for key, value in (("location", relative), ("offset", "0"), ("length", str(weight.nbytes))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return onnx_model(path, [helper.make_node("MatMul", ["x", "W"], ["scores"], name="matmul")],
                       [("x", TensorProto.FLOAT, ["N", 4])], [("scores", TensorProto.FLOAT, ["N", 3])], [tensor])


def shared_tables_tflite(path: Path, fan_out: int = 800) -> Path:
    """`fan_out` subgraph entries all pointing at one subgraph whose `fan_out` operator entries all point at
    one operator: a few KB that an unpacking reader reads as fan_out² operators."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    b = flatbuffers.Builder(1024)

    def ints(values):
        b.StartVector(4, len(values), 4)
        for v in reversed(values):
            b.PrependInt32(v)
        return b.EndVector()

    def offsets(offset, count):
        b.StartVector(4, count, 4)
        for _ in range(count):
            b.PrependUOffsetTRelative(offset)
        return b.EndVector()

    s.OperatorCodeStart(b)
    s.OperatorCodeAddBuiltinCode(b, 0)
    code = s.OperatorCodeEnd(b)
    name = b.CreateString("t")
    s.TensorStart(b)
    s.TensorAddName(b, name)
    tensor = s.TensorEnd(b)
    ins, outs = ints([0]), ints([0])
    s.OperatorStart(b)
    s.OperatorAddInputs(b, ins)
    s.OperatorAddOutputs(b, outs)
    op = s.OperatorEnd(b)
    ops, tensors, graph_ins, graph_outs = offsets(op, fan_out), offsets(tensor, 1), ints([0]), ints([0])
    s.SubGraphStart(b)
    s.SubGraphAddTensors(b, tensors)
    s.SubGraphAddOperators(b, ops)
    s.SubGraphAddInputs(b, graph_ins)
    s.SubGraphAddOutputs(b, graph_outs)
    graph = s.SubGraphEnd(b)
    graphs, codes = offsets(graph, fan_out), offsets(code, 1)
    s.BufferStart(b)
    buffers = offsets(s.BufferEnd(b), 1)
    s.ModelStart(b)
    s.ModelAddVersion(b, 3)
    s.ModelAddOperatorCodes(b, codes)
    s.ModelAddSubgraphs(b, graphs)
    s.ModelAddBuffers(b, buffers)
    b.Finish(s.ModelEnd(b), file_identifier=b"TFL3")
    path.write_bytes(bytes(b.Output()))
    return path


def npy_header(shape: tuple[int, ...], dtype: str = "<f4") -> bytes:
    header = f"{{'descr': '{dtype}', 'fortran_order': False, 'shape': {shape!r}, }}"
    padding = 64 - (10 + len(header) + 1) % 64
    body = (header + " " * padding + "\n").encode()
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(body)) + body


def write_zip(path: Path, members: list[tuple[str, int, int, int, bytes, int]]) -> Path:
    """A zip of (name, crc, compressed size, size, compressed bytes, method) members, written as is."""
    local, central = bytearray(), bytearray()
    for name, crc, compressed_size, size, data, method in members:
        encoded = name.encode()
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0x21, crc,
                               compressed_size, size, len(encoded), 0, 0, 0, 0, 0, len(local)) + encoded
        local += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x21, crc, compressed_size, size,
                             len(encoded), 0) + encoded + data
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), len(local), 0)
    path.write_bytes(bytes(local + central + end))
    return path


def stored(name: str, data: bytes) -> tuple[str, int, int, int, bytes, int]:
    return (name, zlib.crc32(data), len(data), len(data), data, 0)


def zeros_deflated(name: str, head: bytes, zero_mib: int) -> tuple[str, int, int, int, bytes, int]:
    """`head` then `zero_mib` MiB of zeros, deflated: a megabyte's block made once and repeated (a full
    flush resets the compressor, so each repetition is the same bytes), the CRC computed per block."""
    chunk = bytes(MIB)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = compressor.compress(head) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    tail = compressor.flush(zlib.Z_FINISH)
    crc = zlib.crc32(head)
    chunk_crc_state = crc
    for _ in range(zero_mib):
        chunk_crc_state = zlib.crc32(chunk, chunk_crc_state)
    data = first + block * zero_mib + tail
    return (name, chunk_crc_state, len(data), len(head) + zero_mib * MIB, data, 8)


def npz_bomb(path: Path, labels: np.ndarray) -> Path:
    """~1 MB on disk: an array 'x' of 1 GiB and 1 MiB of zeros ([2**26 + 2**16, 4] float32) and labels."""
    rows = (2**30 + MIB) // 16
    member = zeros_deflated("x.npy", npy_header((rows, 4)), 1025)
    return write_zip(path, [member, stored("labels.npy", npy_bytes(labels))])


def npy_bytes(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def npz_claiming(path: Path, shape: tuple[int, ...], labels: np.ndarray) -> Path:
    """An .npz whose 'x' header claims `shape` float32 (16 TiB) with 64 bytes behind it."""
    return write_zip(path, [stored("x.npy", npy_header(shape) + bytes(64)), stored("labels.npy", npy_bytes(labels))])


def truncated(source: Path, path: Path) -> Path:
    data = source.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def sparse(path: Path, head: str, size: int) -> Path:
    """`head`, then zeros to `size` bytes without writing them (a hole: nothing on disk)."""
    path.write_text(head)
    with path.open("r+b") as stream:
        stream.truncate(size)
    return path


# --- what a session did ----------------------------------------------------------------------------

OUTPUTS = {".edgecheck", "report.xml", "strace.log", ".pytest_cache", "__pycache__", "stdout", "stderr"}


def fingerprints(project: Path) -> dict[str, tuple]:
    """Every user file by its path: a link by its target, a FIFO by its kind (never opened), a regular
    file by its SHA-256 (big sparse ones by size, mtime and inode: a write changes those)."""
    found = {}
    for root, folders, files in os.walk(project):
        folders[:] = [f for f in folders if f not in OUTPUTS]
        for name in files:
            if name in OUTPUTS:
                continue
            path = Path(root, name)
            info = path.lstat()
            key = str(path.relative_to(project))
            if stat.S_ISLNK(info.st_mode):
                found[key] = ("link", os.readlink(path))
            elif not stat.S_ISREG(info.st_mode):
                found[key] = ("special", stat.S_IFMT(info.st_mode))
            elif info.st_size > 64 * MIB:
                found[key] = ("big", info.st_size, info.st_mtime_ns, info.st_ino)
            else:
                found[key] = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
    return found


def unchanged(project: Path, before: dict[str, tuple]) -> list[str]:
    """The user files (those `before` lists) that changed or went; files the session made are not theirs."""
    after = fingerprints(project)
    return sorted(key for key, value in before.items() if after.get(key) != value)


STRACE_CALL = re.compile(r'^(?P<pid>\d+)\s+(?P<call>open|openat|creat)\((?:(?:AT_FDCWD|\d+), )?"(?P<path>(?:[^"\\]|\\.)*)"'
                         r'(?:, (?P<flags>[A-Z_|0-9]+))?')
WRITE_FLAGS = ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND")


def written_paths(log: Path) -> list[str]:
    """Paths the traced processes opened for writing (or created), successfully or not."""
    paths = []
    for line in log.read_text(errors="replace").splitlines():
        match = STRACE_CALL.match(line)
        if not match:
            continue
        flags = match["flags"] or ""
        if match["call"] == "creat" or any(flag in flags for flag in WRITE_FLAGS):
            if not line.rstrip().endswith(("ENOENT (No such file or directory)", "EACCES (Permission denied)",
                                           "EEXIST (File exists)", "EROFS (Read-only file system)")):
                paths.append(match["path"])
    return paths


def allowed_write_roots(project: Path, temp: Path) -> list[Path]:
    roots = [project, temp, Path("/dev/null"), Path("/dev/shm"), Path("/proc"), Path("/dev/pts"), Path("/dev/tty")]
    for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix, *sysconfig.get_paths().values()}:
        roots.append(Path(prefix))
    import edgecheck

    roots.append(Path(edgecheck.__file__).resolve().parents[1])  # the package's own __pycache__ folders
    return [Path(os.path.realpath(root)) for root in roots]


def outside_allowed(path: str, roots: list[Path]) -> bool:
    if not path.startswith("/"):
        return ".." in Path(path).parts  # relative to the process's folder: the project, or a temp folder
    real = Path(os.path.realpath(path)) if not path.startswith("/proc/") else Path(path)
    return not any(real == root or root in real.parents for root in roots)


def strace_unusable() -> str | None:
    """None where strace can trace a child here; else why the opened-paths check skips."""
    strace = shutil.which("strace")
    if strace is None:
        return "strace is not installed (.ci/run installs it with apt-get where it can)"
    probe = subprocess.run([strace, "-f", "-o", os.devnull, "true"], capture_output=True, text=True,
                           timeout=HANG_GUARD_S)
    if probe.returncode != 0:
        return f"strace cannot trace here (ptrace not permitted?): {probe.stderr.strip()[:300]}"
    return None


