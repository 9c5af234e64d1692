"""Shape inference of an ONNX graph in a child process with memory and time limits.

Inferring shapes runs a graph's shape arithmetic: onnxruntime's symbolic inference materialises
integer constants (a ConstantOfShape of [1 << 27] is a 1 GiB array), and inlining model-local
functions can multiply a graph. A 200-byte model can so ask for gigabytes, and in the session's own
process nothing would stop it. Here one child process (started on first use, kept for the rest of
the process) infers under RLIMIT_DATA and a deadline; a model that needs more fails with the node
and the cause, the child is replaced, and the session goes on.

Limits: EDGECHECK_ANALYSIS_MEMORY_MB (default 1024 MiB plus four times the model's size) and
EDGECHECK_ANALYSIS_TIMEOUT_S (default 300 s).
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecheck.errors import ModelError
from edgecheck.processes import die_with_parent, proc_status_kb

MEMORY_ENV = "EDGECHECK_ANALYSIS_MEMORY_MB"
TIMEOUT_ENV = "EDGECHECK_ANALYSIS_TIMEOUT_S"
BASE_MEMORY_MB = 1024
DEFAULT_TIMEOUT_S = 300.0
START_TIMEOUT_S = 120.0
# An inlined model may be this many times its file (plus 64 MiB) before it is refused as a function bomb.
EXPANSION = 16
BOOTSTRAP = ("import json, sys; config = json.loads(sys.argv[1]); "
             "sys.path += [p for p in config['path'] if p not in sys.path]; "
             "from edgecheck.analysis.shapes import child_main; child_main(config)")
SCRATCH_PREFIX = "edgecheck-shapes-"


@dataclass(frozen=True)
class Limits:
    memory_mb: int
    timeout_s: float


def _env_number(name: str, default: float) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ModelError(name, f"environment variable {name}={text!r} is not a number") from None
    if value <= 0:
        raise ModelError(name, f"environment variable {name}={text!r} must be above 0")
    return value


def limits_for(size_bytes: int) -> Limits:
    """The limits for a model of this serialized size: room for the copies inference makes of it."""
    memory = _env_number(MEMORY_ENV, BASE_MEMORY_MB + 4 * size_bytes / 2**20)
    return Limits(int(memory), _env_number(TIMEOUT_ENV, DEFAULT_TIMEOUT_S))


@dataclass
class Inferred:
    model: Any  # onnx.ModelProto with inferred value_info (functions inlined)
    method: str
    notes: list[str] = field(default_factory=list)


def infer_shapes(model: Any, path: Path | str | None, limits: Limits | None = None) -> Inferred:
    """Inline the model's local functions and infer every shape, in the child, within `limits`.
    A model that needs more memory or time is a `ModelError` naming the node where it can be told."""
    payload = model.SerializeToString()
    limits = limits or limits_for(len(payload))
    where = path if path is not None else "<model>"
    with _LOCK:
        global _CHILD
        if _CHILD is None or not _CHILD.alive():
            _CHILD = _Child()
        child = _CHILD
        try:
            header, body = child.request(payload, limits, where)
        except ModelError as exc:  # it died or hung: name the node that asks for the most, where one can be told
            child.kill()
            _CHILD = None
            suspect = _largest_constant_shape(model, limits)
            if suspect:
                raise ModelError(where, f"{exc.reason}; {suspect}") from None
            raise
        except BaseException:
            child.kill()
            _CHILD = None
            raise
        if header.get("exit"):
            child.kill()
            _CHILD = None
    if not header.get("ok"):
        raise ModelError(where, _failure_text(header, limits, model))
    import onnx

    inferred = onnx.ModelProto()
    inferred.ParseFromString(body)
    return Inferred(inferred, str(header["method"]), list(header["notes"]))


def _failure_text(header: dict, limits: Limits, model: Any) -> str:
    kind = header.get("kind")
    node, output, op = header.get("node"), header.get("output"), header.get("op")
    if node:
        at = f" at node {node!r} ({op})"
    elif op:
        at = f" at the {op} node making {output!r}"
    else:
        at = ""
    if kind == "memory":
        size = _constant_shape_elements(model, output) if output else None
        what = (f": it makes a tensor of {size:,} elements from a constant shape" if size is not None else
                ": the graph computes a tensor too large to analyse")
        return (f"shape inference needed more than {limits.memory_mb} MiB{at}{what}; refused (a hostile or broken "
                f"model?). Set {MEMORY_ENV} to allow more")
    if kind == "expanded":
        size = header["inlined_bytes"] / 2**20
        return f"inlining the model's functions made it {size:.0f} MiB (more than {EXPANSION} times its size): refused"
    return str(header.get("message") or "shape inference failed")


def _largest_constant_shape(model: Any, limits: Limits) -> str:
    """Where a child that died without a word (the runtime aborted at its memory limit before Python could
    say where) most likely was: the ConstantOfShape node asking for the most elements from a constant shape,
    if that alone is more than the limit; '' where nothing stands out."""
    from onnx import helper

    try:
        sizes = []
        for node in model.graph.node:
            if node.op_type == "ConstantOfShape" and node.output:
                value = next((a.t for a in node.attribute if a.name == "value"), None)  # default: float32 zeros
                itemsize = helper.tensor_dtype_to_np_dtype(value.data_type).itemsize if value is not None else 4
                sizes.append(((_constant_shape_elements(model, node.output[0]) or 0) * itemsize, node.output[0]))
    except Exception:  # a model too odd to read here: the child's own words stand
        return ""
    if not sizes:
        return ""
    nbytes, output = max(sizes)
    # inference holds the tensor and what it computes from it: half the limit is already too much
    if nbytes * 2 <= limits.memory_mb * 2**20:
        return ""
    size = _constant_shape_elements(model, output) or 0
    return f"likely at the ConstantOfShape node making {output!r}: it makes a tensor of {size:,} elements from a constant shape"


def _constant_shape_elements(model: Any, output: str) -> int | None:
    """The element count a ConstantOfShape node asks for when its shape input is a constant."""
    from onnx import numpy_helper

    constants = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            constants.update({node.output[0]: a.t for a in node.attribute if a.name == "value"})
    for node in model.graph.node:
        if node.output and node.output[0] == output and node.op_type == "ConstantOfShape":
            tensor = constants.get(node.input[0]) if node.input else None
            if tensor is None or len(tensor.dims) > 1 or (tensor.dims and tensor.dims[0] > 64):
                return None
            count = 1
            for dim in numpy_helper.to_array(tensor).reshape(-1).tolist():
                count *= max(int(dim), 0)
            return count
    return None


# --- the session's side -------------------------------------------------------------------------

_LOCK = threading.Lock()
_CHILD: _Child | None = None


class _Child:
    def __init__(self) -> None:
        package = Path(__file__).resolve().parents[2]
        read_end, write_end = os.pipe()
        self.log = tempfile.TemporaryFile(prefix=SCRATCH_PREFIX)  # nameless: nothing stays behind
        config = {"answers_fd": write_end, "parent_pid": os.getpid(),
                  "path": [str(package), *(p for p in sys.path if p)]}
        try:
            self.proc = subprocess.Popen([sys.executable, "-c", BOOTSTRAP, json.dumps(config)], stdin=subprocess.PIPE,
                                         stdout=self.log, stderr=subprocess.STDOUT, pass_fds=(write_end,),
                                         start_new_session=True, cwd=tempfile.gettempdir())
        except Exception as exc:  # OSError; pass_fds on Windows
            os.close(read_end)
            raise ModelError("<shape inference>", f"cannot start the shape inference process: "
                             f"{type(exc).__name__}: {exc} (it needs Linux or macOS)") from None
        finally:
            os.close(write_end)
        self.answers = read_end
        self.buffer = bytearray()  # grown in place: an answer of hundreds of MB in 1 MB reads
        self.started = False

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for closing in (lambda: self.proc.stdin and self.proc.stdin.close(), lambda: os.close(self.answers),
                        self.log.close):
            try:
                closing()
            except OSError:
                pass

    def request(self, payload: bytes, limits: Limits, where: Path | str) -> tuple[dict, bytes]:
        if not self.started:
            self._read(START_TIMEOUT_S, where, "starting")
            self.started = True
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps({"bytes": len(payload), "memory_mb": limits.memory_mb}).encode() + b"\n")
            self.proc.stdin.write(payload)
            self.proc.stdin.flush()
        except (OSError, ValueError):
            pass  # it died: the read below says how
        header, body = self._read(limits.timeout_s, where, "inferring shapes", limits)
        return header, body

    def _read(self, timeout_s: float, where: Path | str, step: str, limits: Limits | None = None) -> tuple[dict, bytes]:
        deadline = time.monotonic() + timeout_s
        header: dict | None = None
        while True:
            if header is None and b"\n" in self.buffer:
                line, _, self.buffer = self.buffer.partition(b"\n")
                header = json.loads(line)
            if header is not None and len(self.buffer) >= int(header.get("bytes", 0)):
                size = int(header.get("bytes", 0))
                body, self.buffer = bytes(self.buffer[:size]), self.buffer[size:]
                return header, body
            left = deadline - time.monotonic()
            if left <= 0:
                raise ModelError(where, f"shape inference took longer than {timeout_s:g} s while {step}: refused "
                                 f"(a hostile or very large model?). Set {TIMEOUT_ENV} to allow longer")
            ready, _, _ = select.select([self.answers], [], [], min(left, 1.0))
            if not ready:
                continue
            chunk = os.read(self.answers, 1 << 20)
            if chunk:
                self.buffer += chunk
                continue
            code = self.proc.wait(timeout=10)
            how = f"killed by {signal.Signals(-code).name}" if code < 0 and -code in signal.valid_signals() \
                else f"exit status {code}"
            limit = f" (its memory limit was {limits.memory_mb} MiB)" if limits else ""
            raise ModelError(where, f"the shape inference process died while {step} ({how}){limit}: refused "
                             f"(a hostile or broken model?); its last output: {self._tail() or 'none'}")

    def _tail(self) -> str:
        try:
            self.log.seek(0, os.SEEK_END)
            self.log.seek(max(0, self.log.tell() - 2000))
            return " | ".join(self.log.read().decode("utf-8", "replace").strip().splitlines()[-5:])
        except (OSError, ValueError):
            return ""


# --- the child's side ---------------------------------------------------------------------------

def child_main(config: dict) -> None:
    """Serve requests on stdin (a JSON header line, then the model's bytes); answer on `answers_fd`."""
    import resource

    die_with_parent(int(config["parent_pid"]))
    answers = os.fdopen(int(config["answers_fd"]), "wb")
    import onnx  # noqa: F401  the imports count once, before any limit
    try:
        from onnxruntime.tools import symbolic_shape_infer  # noqa: F401
    except ImportError:
        pass
    _remove_dead_scratch()
    _send(answers, {"ready": True})
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    stdin = sys.stdin.buffer
    while True:
        line = stdin.readline()
        if not line:
            return
        request = json.loads(line)
        payload = stdin.read(int(request["bytes"]))
        cap = (proc_status_kb("VmData") or 0) * 1024 + int(request["memory_mb"]) * 2**20
        resource.setrlimit(resource.RLIMIT_DATA, (cap if hard == resource.RLIM_INFINITY else min(cap, hard), hard))
        try:
            header, body = _job(payload)
        except MemoryError:  # the child is left as it is and replaced: its heap may be fragmented
            header, body = {"ok": False, "kind": "memory", "exit": True, **_node_of(sys.exc_info()[2])}, b""
        finally:
            resource.setrlimit(resource.RLIMIT_DATA, (hard, hard))
        _send(answers, header, body)
        if header.get("exit"):
            return


def _send(answers: Any, header: dict, body: bytes = b"") -> None:
    answers.write(json.dumps({**header, "bytes": len(body)}).encode() + b"\n" + body)
    answers.flush()


def _remove_dead_scratch() -> None:
    """Scratch folders a killed child left (named after its pid): removed once that process is gone."""
    import shutil

    for folder in Path(tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*-*"):
        pid = folder.name[len(SCRATCH_PREFIX):].split("-")[0]
        if not pid.isdigit() or not folder.is_dir() or folder.is_symlink():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            pass


def _node_of(traceback: Any) -> dict:
    """The innermost frame's `node` (an onnx NodeProto) where inference ran out: the node to name."""
    found: dict = {}
    while traceback is not None:
        node = traceback.tb_frame.f_locals.get("node")
        if hasattr(node, "op_type") and hasattr(node, "input"):
            found = {"node": node.name, "output": node.output[0] if node.output else "", "op": node.op_type}
        traceback = traceback.tb_next
    return found


def _job(payload: bytes) -> tuple[dict, bytes]:
    import onnx

    model = onnx.ModelProto()
    model.ParseFromString(payload)
    notes = []
    if model.functions:  # judge what runtimes run: the body at each call, with the call's shapes and names
        import onnx.inliner

        names = sorted({f"{f.domain}.{f.name}" for f in model.functions})
        model = onnx.inliner.inline_local_functions(model)
        size = model.ByteSize()
        if size > EXPANSION * len(payload) + 64 * 2**20:
            return {"ok": False, "kind": "expanded", "inlined_bytes": size}, b""
        notes.append(f"model-local functions inlined at each call, as runtimes do: {', '.join(names)}")
    model, method, more = _infer(model)
    return {"ok": True, "method": method, "notes": notes + more}, model.SerializeToString()


def _infer(model: Any) -> tuple[Any, str, list[str]]:
    import onnx

    try:
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

        logger = logging.getLogger("onnxruntime.tools.symbolic_shape_infer")
        logger.setLevel(logging.ERROR)
        # where it cannot infer every shape it saves "sym_shape_infer_temp.onnx" in the working folder
        # before raising: run it in a scratch folder so no user's folder gets a stray file
        here = os.getcwd()
        with tempfile.TemporaryDirectory(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-") as scratch:
            try:
                os.chdir(scratch)
                inferred = SymbolicShapeInference.infer_shapes(model, auto_merge=True, guess_output_rank=False)
            finally:
                os.chdir(here)
        if inferred is not None:
            return inferred, "onnxruntime symbolic shape inference", []
        first = "it gave no result"
    except ImportError:
        first = "onnxruntime is not installed"
    except MemoryError:
        raise
    except Exception as exc:  # its failures on unusual graphs are many and untyped
        first = f"{type(exc).__name__}: {exc}".strip().splitlines()[0][:200]
    try:
        return (onnx.shape_inference.infer_shapes(model, data_prop=True), "onnx shape inference",
                [f"onnxruntime's symbolic shape inference failed ({first}); used onnx's, which resolves fewer shapes"])
    except MemoryError:
        raise
    except Exception as exc:
        return model, "none", [f"shape inference failed ({first}; onnx: {type(exc).__name__}: {exc}); shapes "
                               "the file does not state are unknown"]
