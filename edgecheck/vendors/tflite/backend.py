"""The TFLite backend: runs .tflite files with LiteRT (`ai-edge-litert`), else `tflite-runtime`.

Inputs and outputs are fed and read by name: the signature's names where the model has one
signature, else the tensors' names. Quantized inputs and outputs (int8/uint8 with a scale and zero
point) are quantized from and dequantized to real values here, so parity and accuracy compare real
numbers. An artifact converted from ONNX carries a sidecar `<file>.io.json` (written by the
converter recipe) that maps the ONNX names and layouts (NCHW) onto the TFLite model's (NHWC): the
runner transposes, so a converted model is fed and read exactly like the ONNX model it came from.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from edgecheck.backends.base import Availability, Backend, RunOptions, Runner
from edgecheck.errors import BackendError

IO_SIDECAR_SUFFIX = ".io.json"
HOST_INSTALL = "Install LiteRT: pip install 'pytest-edgecheck[tflite]' (ai-edge-litert)"
BOARD_INSTALL = ("Install LiteRT for the board's Python: pip install ai-edge-litert (or tflite-runtime where no "
                 "ai-edge-litert wheel fits the board)")
IO_MAP_OPTION = "io_map"  # RunOptions.extra: the sidecar's text, passed where the sidecar itself is not beside the file


def io_sidecar(artifact: Path) -> Path:
    """Where a converter writes the name and layout map of a .tflite artifact."""
    return artifact.with_name(artifact.name + IO_SIDECAR_SUFFIX)


@dataclass(frozen=True)
class IoMap:
    """One input or output: the name edgecheck uses, the model's own name, and the permutation that
    takes an array from edgecheck's layout to the model's (None: the same layout)."""

    name: str
    model_name: str
    perm: tuple[int, ...] | None = None
    layout: str = ""  # what the model takes, e.g. "NHWC (the ONNX model's NCHW, transposed)"

    def as_json(self) -> dict:
        """The entry as the sidecar stores it (read back by `read_io_sidecar`)."""
        return {"name": self.name, "model_name": self.model_name, "perm": list(self.perm) if self.perm else None,
                "layout": self.layout}

    def to_model(self, array: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(array.transpose(self.perm)) if self.perm else array

    def from_model(self, array: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(array.transpose(np.argsort(self.perm))) if self.perm else array


def read_io_sidecar(artifact: Path) -> tuple[list[IoMap], list[IoMap]] | None:
    """The converter's map for this artifact, or None where there is none (a .tflite made elsewhere)."""
    path = io_sidecar(artifact)
    if not path.is_file():
        return None
    try:
        return _parse_io_map(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BackendError("tflite", artifact, "loading", f"its layout map {path.name} is unreadable: {exc}") from None


def _parse_io_map(text: str) -> tuple[list[IoMap], list[IoMap]]:
    data = json.loads(text)
    return tuple([IoMap(e["name"], e["model_name"], tuple(e["perm"]) if e.get("perm") else None, e.get("layout", ""))
                  for e in data[side]] for side in ("inputs", "outputs"))  # type: ignore[return-value]


def _io_map_option(artifact: Path, options: RunOptions) -> tuple[list[IoMap], list[IoMap]] | None:
    """The layout map the session passed (extra io_map: the sidecar's text, `TfliteBackend.board_extra`), for a
    worker on a board, where only the artifact may have been sent; None where it passed none."""
    text = options.extra.get(IO_MAP_OPTION)
    if text is None:
        return None
    try:
        return _parse_io_map(text)
    except (ValueError, KeyError, TypeError) as exc:
        raise BackendError("tflite", artifact, "loading", f"option {IO_MAP_OPTION} is unreadable: {exc}") from None


def _release(version: str) -> tuple[int, ...]:
    """A version's leading numbers ("2.14.0" -> (2, 14, 0)): the standard library only, as on a board,
    whose Python has neither packaging nor edgecheck's own dependencies."""
    numbers = []
    for part in version.split("."):
        digits = re.match(r"\d+", part)
        if digits is None:
            break
        numbers.append(int(digits.group()))
        if digits.end() != len(part):
            break
    return tuple(numbers)


def _version(distribution: str, module: str = "") -> str:
    """A runtime's version: its distribution's (either spelling, as Python 3.8's metadata lookup may need),
    else the imported module's __version__; "unknown" where neither says."""
    for name in filter(None, (distribution, distribution.replace("-", "_"))):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    if module:
        import importlib

        try:
            return str(getattr(importlib.import_module(module), "__version__", "unknown"))
        except ImportError:
            pass
    return "unknown"


def _runtime(install: str = HOST_INSTALL) -> tuple[Any, str, str]:
    """The Interpreter class, the distribution it comes from and its version; ImportError with the
    reason a user can act on where none works here."""
    problems = []
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai-edge-litert", _version("ai-edge-litert", "ai_edge_litert")
    except ImportError as exc:
        problems.append(f"ai-edge-litert: {exc}")
    version = _version("tflite-runtime", "tflite_runtime")  # a board's system package may have no metadata
    major = int(np.__version__.split(".")[0])
    if version != "unknown" and major >= 2 and _release(version) < (2, 15):
        # it imports beside numpy 2, then fails when an Interpreter is made (`_ARRAY_API not found`)
        problems.append(f"tflite-runtime {version} is built against numpy 1 and fails at run time beside numpy "
                        f"{np.__version__} (`_ARRAY_API not found`)")
    else:
        try:
            from tflite_runtime.interpreter import Interpreter  # type: ignore[no-redef]

            return Interpreter, "tflite-runtime", version
        except ImportError as exc:
            if version != "unknown":
                problems.append(f"tflite-runtime {version}: {exc}")
    raise ImportError("; ".join(problems) + f". {install}")


def _quantization(detail: Mapping[str, Any]) -> tuple[float, int] | None:
    scale, zero = detail.get("quantization", (0.0, 0))
    if not scale or not np.issubdtype(detail["dtype"], np.integer):
        return None
    return float(scale), int(zero)


class TfliteRunner(Runner):
    def __init__(self, artifact: Path, options: RunOptions,
                 io_map: tuple[list[IoMap], list[IoMap]] | None = None):
        """`io_map` overrides the artifact's sidecar (the converter's probe tries candidate maps)."""
        interpreter_class, self.runtime, self.version = _runtime()
        self.backend, self.artifact = "tflite", artifact
        self._interpreter = interpreter_class(model_path=str(artifact), num_threads=max(1, options.threads))
        self._interpreter.allocate_tensors()
        inputs, outputs = self._model_names()
        mapped = io_map or _io_map_option(artifact, options) or read_io_sidecar(artifact)
        if mapped is None:
            mapped = ([IoMap(n, n) for n in inputs], [IoMap(n, n) for n in outputs])
        self._inputs, self._outputs = mapped
        for side, names in ((self._inputs, inputs), (self._outputs, outputs)):
            for entry in side:
                if entry.model_name not in names:
                    raise BackendError("tflite", artifact, "loading", f"its layout map names {entry.model_name!r}, "
                                       f"which the model does not have (it has {', '.join(names)})")
        self._in_index, self._out_index = inputs, outputs
        self.input_names = tuple(e.name for e in self._inputs)
        self.output_names = tuple(e.name for e in self._outputs)
        self._refresh_details()

    def _refresh_details(self) -> None:
        """Each tensor's shape, type and quantization by index (again after a resize)."""
        interpreter = self._interpreter
        self._details = {d["index"]: d for d in interpreter.get_input_details() + interpreter.get_output_details()}

    def _model_names(self) -> tuple[dict[str, int], dict[str, int]]:
        """Feed names to tensor indices: the signature's where there is exactly one, else the tensors'."""
        signatures = {}
        full = getattr(self._interpreter, "_get_full_signature_list", None)
        if full is not None:
            signatures = full() or {}
        if len(signatures) == 1:
            (signature,) = signatures.values()
            return dict(signature["inputs"]), dict(signature["outputs"])
        return ({d["name"]: d["index"] for d in self._interpreter.get_input_details()},
                {d["name"]: d["index"] for d in self._interpreter.get_output_details()})

    def _set_inputs(self, feed: Mapping[str, np.ndarray]) -> None:
        arrays = {e.model_name: e.to_model(np.asarray(feed[e.name])) for e in self._inputs}
        resize = []
        for name, array in arrays.items():
            detail = self._details[self._in_index[name]]
            if tuple(detail["shape"]) == array.shape:
                continue
            signature = detail.get("shape_signature")
            signature = tuple(signature) if signature is not None and len(signature) else tuple(detail["shape"])
            if array.ndim == 0 and len(signature) == 1 and signature[0] in (1, -1):  # onnx2tf's form of a scalar
                arrays[name] = array = array.reshape(1)
                if tuple(detail["shape"]) == (1,):
                    continue
            free = [i for i, d in enumerate(signature) if d < 0] or [0]  # the dynamic dims; else the batch
            if len(signature) != array.ndim or any(a != b for i, (a, b) in enumerate(zip(signature, array.shape))
                                                   if i not in free):
                raise BackendError("tflite", self.artifact, "running", f"input {name!r} has shape {list(array.shape)}"
                                   f", and the model takes {[int(d) if d >= 0 else '?' for d in signature]}")
            resize.append((self._in_index[name], array.shape))
        if resize:  # another batch size than the model's (a dynamic batch is stored as 1)
            for index, shape in resize:
                self._interpreter.resize_tensor_input(index, list(shape))
            self._interpreter.allocate_tensors()
            self._refresh_details()
        for name, array in arrays.items():
            index = self._in_index[name]
            detail = self._details[index]
            quantized = _quantization(detail)
            if quantized is not None and not np.issubdtype(array.dtype, np.integer):
                scale, zero = quantized
                info = np.iinfo(detail["dtype"])
                array = np.clip(np.round(array / scale) + zero, info.min, info.max)
            self._interpreter.set_tensor(index, np.ascontiguousarray(array, dtype=detail["dtype"]))

    def _one_at_a_time(self, feed: Mapping[str, np.ndarray]) -> int:
        """The samples in `feed` where the model takes exactly one (every input and output of fixed batch 1,
        as onnx2tf writes a model whose batch was fixed to convert it) and more are fed; else 0. Its
        shapes are constants inside the graph: it cannot be resized, so it runs once per sample."""
        details = [self._details[self._in_index[e.model_name]] for e in self._inputs]
        details += [self._details[self._out_index[e.model_name]] for e in self._outputs]
        signatures = [tuple(d.get("shape_signature", d["shape"])) for d in details]
        if not signatures or any(not s or s[0] != 1 or min(s) < 0 for s in signatures):
            return 0
        counts = {np.shape(feed[e.name])[0] if np.ndim(feed[e.name]) else 0 for e in self._inputs}
        return counts.pop() if len(counts) == 1 and min(counts) > 1 else 0

    def _infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        count = self._one_at_a_time(feed)
        if count:
            parts = [self._infer_impl({k: np.asarray(v)[i:i + 1] for k, v in feed.items()}) for i in range(count)]
            return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
        self._set_inputs(feed)
        self._interpreter.invoke()
        outputs = {}
        for entry in self._outputs:
            index = self._out_index[entry.model_name]
            array = np.array(self._interpreter.get_tensor(index))  # a copy: the buffer is reused by the next run
            quantized = _quantization(self._details[index])
            if quantized is not None:
                scale, zero = quantized
                array = ((array.astype(np.float32) - zero) * scale).astype(np.float32)
            outputs[entry.name] = entry.from_model(array)
        return outputs

    def _bind_impl(self, feed: Mapping[str, np.ndarray]):
        self._set_inputs(feed)
        return self._interpreter.invoke

    def close(self) -> None:
        self._interpreter = None


class TfliteBackend(Backend):
    """LiteRT on the CPU, with its default XNNPACK delegate."""

    name = "tflite"
    formats = ("tflite",)
    reference_for = ("tflite",)  # the reference outputs of a .tflite model
    deterministic = False

    def availability(self) -> Availability:
        try:
            _runtime()
        except ImportError as exc:
            return Availability(False, str(exc))
        return Availability(True)

    def _load_impl(self, artifact: Path, options: RunOptions) -> Runner:
        return TfliteRunner(artifact, options)

    def board_availability(self) -> Availability:
        """As here, with the install line a board's Python needs (edgecheck's extras are not installed there)."""
        try:
            _runtime(BOARD_INSTALL)
        except ImportError as exc:
            return Availability(False, str(exc))
        return Availability(True)

    def board_extra(self, artifact: Path) -> dict[str, str]:
        """The options a worker on a board needs to run `artifact` (RunOptions.extra), worked out here on the
        host: the converter's layout map (the sidecar's text), so that only the .tflite file need be sent;
        {} where it has none. Nothing else differs on a board: LiteRT or tflite-runtime, whichever it has."""
        path = io_sidecar(Path(artifact))
        return {IO_MAP_OPTION: path.read_text(encoding="utf-8")} if path.is_file() else {}

    def facts(self) -> dict[str, str]:
        try:
            _, runtime, version = _runtime()
        except ImportError:
            return {}
        return {"version": f"{runtime} {version}", "provider": "CPU (XNNPACK delegate by default)"}
