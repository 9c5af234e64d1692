"""The rknn backend on a Rockchip board: a `.rknn` file run on the NPU with rknn-toolkit-lite2 (RKNNLite).

A worker on a board (edgecheck.boards) loads with `RunOptions(on_board=True)`; this module runs under the
board's own Python (3.8 or later), so it imports the standard library and numpy only, and `rknnlite` only
where a runner is made. RKNNLite's API, as Rockchip ships it (rknnlite/api/rknn_lite.py and its examples):
`RKNNLite()`, `load_rknn(path)` and `init_runtime(core_mask=RKNNLite.NPU_CORE_*)` return 0 or -1, the
reason in the runtime's own log; `inference(inputs=[arrays, in the model's input order])` returns the
outputs as a list of arrays in the model's output order, or None on failure; `get_sdk_version()` (after
init_runtime) the API and driver versions; `release()`. It has no call that names a model's inputs and
outputs: the session passes them (extra `input_names`, `output_names`, `input_shapes`, JSON lists, from
`RknnBackend.board_extra`); without them they are read from the model description rknn-toolkit2 writes at
the end of the file (`read_model_info`).

Layout: a 4-D input is fed as the ONNX model's NCHW and transposed here to NHWC, the layout inference takes
by default (every lite2 version: `data_format='nchw'` is taken only since 1.6.0); the simulator gives the
same outputs either way. Outputs come back in the ONNX model's layout, as on the simulator. A model built
for batch 1 is run one sample at a time.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from edgecheck.backends.base import Availability, RunOptions, Runner
from edgecheck.errors import BackendError

NOT_INSTALLED = "rknnlite is not installed: it runs only on a Rockchip board (aarch64) with librknnrt"
INSTALL = ("pip install rknn-toolkit-lite2 (Rockchip's wheel for this board's Python, from "
           "github.com/airockchip/rknn-toolkit2, rknn-toolkit-lite2/packages) and the librknnrt.so runtime in /usr/lib")
DISTRIBUTION = "rknn-toolkit-lite2"
RUNTIME_LIBRARY = "librknnrt.so"
LIBRARY_PLACES = ("/usr/lib", "/usr/lib64", "/usr/lib/aarch64-linux-gnu", "/usr/local/lib")
DEVICE_TREE = Path("/proc/device-tree/compatible")  # "rockchip,rk3588\0...": the chip, as Rockchip's examples read it
# extra["core_mask"] to RKNNLite's constants (NPU_CORE_0_1 and later since 1.4.0, NPU_CORE_ALL since 2.0.0b0)
CORE_MASKS = {"auto": "NPU_CORE_AUTO", "0": "NPU_CORE_0", "1": "NPU_CORE_1", "2": "NPU_CORE_2",
              "0_1": "NPU_CORE_0_1", "0_1_2": "NPU_CORE_0_1_2", "all": "NPU_CORE_ALL"}

MAGIC = b"RKNN"
DATA_OFFSET = 0x40  # the header: magic, version and the size of the compiled model that follows it
MAX_INFO = 16 * 1024 * 1024


def lite_version() -> str | None:
    """rknn-toolkit-lite2's installed version (its wheel's distribution), None where it is not installed."""
    for name in (DISTRIBUTION, DISTRIBUTION.replace("-", "_")):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def _load_runtime_library() -> str | None:
    """None where librknnrt.so loads (by the linker's search, else from the places Rockchip installs it);
    else why not."""
    import ctypes

    problems = []
    for candidate in [RUNTIME_LIBRARY] + [f"{place}/{RUNTIME_LIBRARY}" for place in LIBRARY_PLACES]:
        try:
            ctypes.CDLL(candidate)
            return None
        except OSError as exc:
            if candidate == RUNTIME_LIBRARY or Path(candidate).exists():
                problems.append(str(exc))
    return "; ".join(problems)


def lite_availability() -> Availability:
    """Whether RKNNLite can run here: rknnlite imports and librknnrt.so loads; else the reason and the fix."""
    try:
        from rknnlite.api import RKNNLite  # noqa: F401
    except ImportError as exc:
        return Availability(False, f"{NOT_INSTALLED} ({exc}). On the board: {INSTALL}")
    problem = _load_runtime_library()
    if problem is not None:
        return Availability(False, f"rknn-toolkit-lite2 {lite_version() or ''} is installed but {RUNTIME_LIBRARY} "
                                   f"does not load ({problem}): copy the one for this chip and this toolkit version "
                                   "(rknpu2/runtime/Linux/librknn_api/aarch64 in Rockchip's SDK) to /usr/lib")
    return Availability(True)


def board_chip() -> str | None:
    """The Rockchip chip this board's device tree names (rk3588, rk3566, ...), None where none does."""
    try:
        text = DEVICE_TREE.read_bytes().decode("ascii", "replace")
    except OSError:
        return None
    chips = re.findall(r"rockchip,(rk\d{4}\w*|rv\d{4}\w*)", text)
    return chips[-1] if chips else None  # the most general entry comes last: "...-orangepi-5\0rockchip,rk3588"


def lite_facts(sdk_version: str | None) -> dict[str, str]:
    """What a worker on a board records beside its figures: the runtime, its library's versions as
    RKNNLite reports them after a load, and the chip."""
    version = lite_version()
    if version is None:
        return {}
    facts = {"runtime": f"{DISTRIBUTION} {version}"}
    if sdk_version:
        facts["librknnrt"] = sdk_version
    chip = board_chip()
    facts["runs_on"] = f"{chip.upper()} NPU" if chip else "Rockchip NPU"
    return facts


@dataclass(frozen=True)
class ModelIo:
    """A model's inputs (names and the shapes it was built for, None where unknown) and outputs, in order."""

    inputs: tuple[str, ...]
    shapes: tuple[tuple[int, ...] | None, ...]
    outputs: tuple[str, ...]
    platforms: tuple[str, ...] = ()  # the chips it was built for, where the file says


def read_model_info(path: Path) -> dict[str, Any] | None:
    """The model description rknn-toolkit2 writes after the compiled model (its JSON: tensors, inputs and
    outputs, target platforms, toolkit version); None where the file has none this reader knows. Read
    from the file's layout as rknn-toolkit2 2.x writes it, not from a documented API: a hint only."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(DATA_OFFSET)
            if len(head) < 24 or head[:4] != MAGIC:
                return None
            (size,) = struct.unpack_from("<Q", head, 16)
            handle.seek(DATA_OFFSET + size)
            raw = handle.read(8)
            if len(raw) != 8:
                return None
            (length,) = struct.unpack("<Q", raw)
            if not 0 < length <= MAX_INFO:
                return None
            text = handle.read(length)
        info = json.loads(text.decode("utf-8"))
    except (OSError, ValueError, struct.error):
        return None
    return info if isinstance(info, dict) else None


def io_from_info(info: Mapping[str, Any]) -> ModelIo | None:
    """Inputs and outputs from a model description (`read_model_info`); None where it does not say them plainly."""
    try:
        tensors = {t["tensor_id"]: t for t in info["norm_tensor"]}
        sides = {}
        for side in ("input", "output"):
            links = sorted((link for link in info["graph"] if link["left"] == side and link["right"] == "norm_tensor"),
                           key=lambda link: link["left_tensor_id"])
            if [link["left_tensor_id"] for link in links] != list(range(int(info[f"{side}_num"]))):
                return None
            sides[side] = [tensors[link["right_tensor_id"]] for link in links]
        names = {side: tuple(str(t["url"]) for t in found) for side, found in sides.items()}
        shapes = tuple(tuple(int(d) for d in t["size"]) if t.get("size") else None for t in sides["input"])
        platforms = tuple(str(p) for p in info.get("target_platform") or ())
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    if not names["input"] or not names["output"] or not all(names["input"] + names["output"]):
        return None
    return ModelIo(names["input"], shapes, names["output"], platforms)


def _json_list(artifact: Path, extra: Mapping[str, str], key: str) -> list[Any] | None:
    if key not in extra:
        return None
    try:
        value = json.loads(extra[key])
    except ValueError as exc:
        raise BackendError("rknn", artifact, "loading", f"option {key} is not JSON ({exc}): {extra[key]!r}") from None
    if not isinstance(value, list):
        raise BackendError("rknn", artifact, "loading", f"option {key} is not a JSON list: {extra[key]!r}")
    return value


def io_from_options(artifact: Path, extra: Mapping[str, str]) -> ModelIo | None:
    """The inputs and outputs the session passed (extra input_names, output_names, input_shapes); None
    where it passed no names."""
    inputs, outputs = _json_list(artifact, extra, "input_names"), _json_list(artifact, extra, "output_names")
    shapes = _json_list(artifact, extra, "input_shapes")
    if inputs is None and outputs is None:
        return None
    for key, names in (("input_names", inputs), ("output_names", outputs)):
        if not names or not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
            raise BackendError("rknn", artifact, "loading", f"option {key} must list the model's distinct names "
                               f"(both input_names and output_names are needed): {extra.get(key)!r}")
    if shapes is None:
        shapes = [None] * len(inputs)  # type: ignore[arg-type]
    if len(shapes) != len(inputs) or not all(  # type: ignore[arg-type]
            s is None or (isinstance(s, list) and all(isinstance(d, int) and d > 0 for d in s)) for s in shapes):
        raise BackendError("rknn", artifact, "loading", f"option input_shapes must give one shape (a list of positive "
                           f"sizes, or null) per input of {inputs}: {extra.get('input_shapes')!r}")
    return ModelIo(tuple(inputs), tuple(tuple(s) if s else None for s in shapes), tuple(outputs))  # type: ignore[arg-type]


def model_io(artifact: Path, options: RunOptions) -> ModelIo:
    """The session's names where it passed them (their count checked against the file's), else the file's own."""
    passed = io_from_options(artifact, options.extra)
    info = read_model_info(artifact)
    found = io_from_info(info) if info is not None else None
    if passed is None:
        if found is None:
            raise BackendError("rknn", artifact, "loading", "cannot tell its inputs and outputs: RKNNLite has no call "
                               "that names them and the file carries no model description edgecheck reads; the session "
                               "passes them (extra input_names and output_names, JSON lists in the model's order)")
        return found
    if found is not None:
        if (len(found.inputs), len(found.outputs)) != (len(passed.inputs), len(passed.outputs)):
            raise BackendError("rknn", artifact, "loading", f"the session names {len(passed.inputs)} inputs and "
                               f"{len(passed.outputs)} outputs, the file {len(found.inputs)} ({', '.join(found.inputs)}) "
                               f"and {len(found.outputs)} ({', '.join(found.outputs)}): not the model it was built from?")
        shapes = tuple(p or f for p, f in zip(passed.shapes, found.shapes))
        return ModelIo(passed.inputs, shapes, passed.outputs, found.platforms)
    return passed


def core_mask(lite_class: Any, artifact: Path, value: str) -> tuple[str, int]:
    """extra["core_mask"] (auto, 0, 1, 2, 0_1, 0_1_2, all) as RKNNLite's constant: its name and value."""
    key = str(value).strip().lower()
    key = key[len("npu_core_"):] if key.startswith("npu_core_") else key
    name = CORE_MASKS.get(key)
    if name is None:
        raise BackendError("rknn", artifact, "loading", f"core_mask {value!r} is not one of {', '.join(CORE_MASKS)}")
    if not hasattr(lite_class, name):
        raise BackendError("rknn", artifact, "loading", f"core_mask {value!r}: this rknn-toolkit-lite2 "
                           f"({lite_version() or 'unknown version'}) has no RKNNLite.{name}")
    return name, int(getattr(lite_class, name))


def _failed(ret: Any) -> bool:
    return isinstance(ret, int) and not isinstance(ret, bool) and ret != 0


class RknnLiteRunner(Runner):
    """One .rknn file loaded on this board's NPU with RKNNLite."""

    def __init__(self, artifact: Path, options: RunOptions):
        try:
            from rknnlite.api import RKNNLite
        except ImportError as exc:
            raise BackendError("rknn", artifact, "loading", f"{NOT_INSTALLED} ({exc}). {INSTALL}") from None
        self.backend, self.artifact = "rknn", artifact
        io = model_io(artifact, options)
        self.input_names, self.output_names, self._shapes = io.inputs, io.outputs, io.shapes
        mask_name, mask = core_mask(RKNNLite, artifact, options.extra.get("core_mask", "auto"))
        self._lite: Any = RKNNLite(verbose=False)
        self.sdk_version: str | None = None
        try:
            ret = self._lite.load_rknn(str(artifact))
            if _failed(ret):
                raise BackendError("rknn", artifact, "loading", f"RKNNLite.load_rknn returned {ret} (RKNNLite's log, "
                                   "among the lines the worker printed, says why)")
            ret = self._lite.init_runtime(core_mask=mask)
            if _failed(ret):
                chip = board_chip()
                built = f"built for {', '.join(io.platforms)}" if io.platforms else "its target chip unknown"
                raise BackendError("rknn", artifact, "initialising the NPU runtime",
                                   f"RKNNLite.init_runtime(core_mask=RKNNLite.{mask_name}) returned {ret} (RKNNLite's "
                                   f"log, among the lines the worker printed, says why; the model is {built}, this board is "
                                   f"{chip or 'of a chip its device tree does not name'}; a core mask other than auto "
                                   "runs only on RK3576/RK3588; librknnrt must be as new as the rknn-toolkit2 that built it)")
            self.sdk_version = self._sdk_version()
        except BaseException:
            self.close()
            raise

    def _sdk_version(self) -> str | None:
        try:
            version = self._lite.get_sdk_version()
        except Exception:  # a fact only: never a reason to fail a load
            return None
        text = " ".join(str(version).split()) if version is not None else ""
        return text or None

    def _chunks(self, feed: Mapping[str, np.ndarray]) -> list[list[np.ndarray]]:
        """The feed as RKNNLite takes it, one list of inputs per run: the model's input order, float as
        float32, 4-D NCHW as NHWC, split into the batch it was built for."""
        arrays = [np.asarray(feed[name]) for name in self.input_names]
        arrays = [a.astype(np.float32) if a.dtype.kind == "f" and a.dtype != np.float32 else a for a in arrays]
        batch, total = 0, 0
        built = [s for s in self._shapes if s is not None]
        if len(built) == len(arrays):
            batch = built[0][0] if built[0] else 1
            total = arrays[0].shape[0] if arrays[0].ndim else 1
            if any(a.ndim != len(s) or tuple(a.shape[1:]) != tuple(s[1:]) for a, s in zip(arrays, built)) \
                    or total % max(batch, 1) or any((a.shape[0] if a.ndim else 1) != total for a in arrays):
                raise BackendError("rknn", self.artifact, "running",
                                   f"inputs {[list(a.shape) for a in arrays]} do not fit the built shapes "
                                   f"{[list(s) for s in built]} (rknn-toolkit2 fixes every dimension at build time)")
        arrays = [np.ascontiguousarray(a.transpose(0, 2, 3, 1)) if a.ndim == 4 else np.ascontiguousarray(a)
                  for a in arrays]
        if not batch or total <= batch:
            return [arrays]
        return [[a[start:start + batch] for a in arrays] for start in range(0, total, batch)]

    def _run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        outputs = self._lite.inference(inputs=inputs)
        if outputs is None:
            raise BackendError("rknn", self.artifact, "running", "RKNNLite.inference returned no outputs (RKNNLite's "
                               "log, among the lines the worker printed, says why)")
        if len(outputs) != len(self.output_names):
            raise BackendError("rknn", self.artifact, "running", f"RKNNLite gave {len(outputs)} outputs for the model's "
                               f"{len(self.output_names)} ({', '.join(self.output_names)})")
        return [np.asarray(o) for o in outputs]

    def _infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        runs = [self._run(chunk) for chunk in self._chunks(feed)]
        if len(runs) == 1:
            return dict(zip(self.output_names, runs[0]))
        return {name: np.concatenate([run[i] for run in runs]) for i, name in enumerate(self.output_names)}

    def _bind_impl(self, feed: Mapping[str, np.ndarray]) -> Any:
        chunks, lite = self._chunks(feed), self._lite
        if len(chunks) == 1:
            (inputs,) = chunks
            return lambda: lite.inference(inputs=inputs)
        return lambda: [lite.inference(inputs=chunk) for chunk in chunks]

    def close(self) -> None:
        lite, self._lite = getattr(self, "_lite", None), None
        if lite is not None:
            lite.release()
