"""Device profiles are data: built-in YAML files here, plus a project's own folder of them.

A project file with a built-in's name replaces it; `extends: <name>` starts from another profile
and overrides only the fields it gives. The `host` profile fills its CPU and memory from the
machine running the tests. Profiles and operator tables are read by the spec's reader
(`read_named_mapping`): bounded size and depth, duplicate keys refused, errors naming file and line.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError

from edgecheck.errors import DeviceError, SpecError
from edgecheck.spec.loader import read_yaml_file
from edgecheck.strict import StrictModel

BUILTIN_DIR = Path(__file__).with_name("profiles")
Precision = Literal["fp32", "fp16", "bf16", "int16", "int8", "int4", "uint8"]
MAX_DATA_BYTES = 4_000_000  # an operator table of every ONNX operator with its constraints is ~100 kB
MAX_EXTENDS = 32  # profiles in one `extends` chain


class _Strict(StrictModel):
    """Unknown fields refused, values immutable, booleans never taken for numbers."""


class Compute(_Strict):
    tops: float | None = Field(None, gt=0, description="Peak throughput in TOPS as the vendor quotes it.")
    unit: Literal["CPU", "GPU", "NPU", "TPU", "DSP"]


class Cpu(_Strict):
    arch: str | None = None
    cores: int | None = Field(None, ge=1)
    model: str | None = None


class Accelerator(_Strict):
    kind: Literal["gpu", "npu", "tpu", "dla", "dsp"]
    name: str
    tops: float | None = Field(None, gt=0)
    precisions: list[Precision] = Field(default_factory=list)


class CalibrationPoint(_Strict):
    """A published latency the cost model was fitted to (architectures: benchmarks/architectures.py)."""

    model: str
    input: list[int]
    published_ms: float = Field(gt=0)
    source: str


class CostModel(_Strict):
    """An analytical latency model for one backend and precision on a device: each node takes the
    longer of its arithmetic at the effective throughput and its bytes at the effective bandwidth,
    plus a fixed per-node overhead. The efficiencies come from fitting published figures (`points`);
    without any, the model is labelled uncalibrated and its stated error is wide."""

    unit: Literal["cpu", "gpu", "npu", "dla", "tpu"]
    peak_tops: float = Field(gt=0, description="Vendor peak at this precision, tera-operations/s (a MAC is 2).")
    bandwidth_gbs: float = Field(gt=0, description="Memory bandwidth, GB/s, as the data sheet gives it.")
    compute_efficiency: float = Field(gt=0, le=1)
    bandwidth_efficiency: float = Field(gt=0, le=1)
    node_overhead_us: float = Field(ge=0, description="Fixed cost of each kernel launched, microseconds.")
    error_factor: float = Field(ge=1, description="The stated error: the true figure is taken to lie within "
                                "[estimate / f, estimate x f]; from the calibration's held-out error.")
    calibration: str = Field(description="What the efficiencies were fitted on, or why there is no fit.")
    points: list[CalibrationPoint] = Field(default_factory=list)
    runs_as: Precision | None = Field(None, description="The precision the backend actually computes in, when "
                                      "it converts (rknn runs float32 models in float16).")

    @property
    def calibrated(self) -> bool:
        return bool(self.points)


class CompilerPoint(_Strict):
    """A published latency beside the cycle total the vendor's compiler gives the same architecture."""

    model: str
    input: list[int]
    published_ms: float = Field(gt=0)
    cycles: int = Field(gt=0, description="The compiler's total cycles for the architecture (its build log).")
    source: str


class CompilerEstimate(_Strict):
    """Latency from a vendor compiler's own cycle estimate (rknn-toolkit2's per-layer table): total
    cycles at the NPU clock, times a factor fitted on published figures."""

    clock_ghz: float = Field(gt=0, description="The NPU clock the cycles are counted at.")
    scale: float = Field(gt=0, description="Published time over cycles/clock, fitted on the points.")
    error_factor: float = Field(ge=1, description="The stated error: the true figure within [est/f, est*f].")
    calibration: str
    points: list[CompilerPoint] = Field(min_length=1, description="What the scale was fitted on; a model below "
                                        "the smallest is judged on a lower bound only.")


class BackendSupport(_Strict):
    precisions: list[Precision]
    platform: str | None = Field(None, description="The vendor toolkit's name for this chip (rknn's "
                                 "target_platform): artifacts built for another platform do not run here.")
    compiler_estimate: CompilerEstimate | None = Field(None, description="Latency from the vendor compiler's "
                                                       "cycle estimate, for artifacts whose build reports one.")
    threads: int | None = Field(None, ge=1, description="CPU threads, so runs on the host are comparable.")
    ops: str | None = Field(None, description="The operator table for this backend on this device (default: "
                            "the table for this backend that names the device, else the backend's general one).")
    estimate: dict[Precision, CostModel] = Field(default_factory=dict, description="Latency cost models by the "
                                                 "artifact's precision.")


class DeviceProfile(_Strict):
    """What a target device is and which backends serve it, in order of preference."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    description: str = ""
    compute: Compute
    memory_gb: float | None = Field(None, gt=0)
    power_w: float | None = Field(None, gt=0)
    cpu: Cpu = Field(default_factory=Cpu)
    accelerators: list[Accelerator] = Field(default_factory=list)
    backends: dict[str, BackendSupport] = Field(min_length=1)
    params_m: tuple[float, float] | None = Field(None, description="Model size it suits, millions of parameters.")
    detect: bool = Field(False, description="Fill CPU and memory from the machine running the tests.")
    source: str = Field("", description="Where the figures come from.")
    file: Path | None = Field(None, exclude=True)

    def threads_for(self, backend: str) -> int:
        support = self.backends.get(backend)
        if support and support.threads:
            return support.threads
        return self.cpu.cores or 1


def _host_facts() -> dict[str, Any]:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    cpu = {"arch": platform.machine() or None, "cores": cores, "model": cpu_model()}
    facts: dict[str, Any] = {"cpu": cpu}
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        facts["memory_gb"] = round(pages * page_size / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    return facts


def cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        merged[key] = _merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return merged


def read_named_mapping(path: Path, what: str) -> dict[str, Any]:
    """Read a YAML data file (a device profile, an operator table) named after its file by default,
    with the spec's reader: one place bounds size and nesting and refuses duplicate keys."""
    try:
        data, _ = read_yaml_file(path, what, MAX_DATA_BYTES)
    except SpecError as exc:
        raise DeviceError(str(exc)) from None
    if not isinstance(data, dict):
        raise DeviceError(f"{path}: the {what} must be a mapping of fields, not {type(data).__name__}")
    data.setdefault("name", path.stem)
    return data


def load_profiles(extra_dirs: list[Path] | tuple[Path, ...] = ()) -> dict[str, DeviceProfile]:
    """All known profiles: the built-ins, then each project folder's, later ones overriding earlier."""
    raw: dict[str, tuple[dict[str, Any], Path]] = {}
    for folder in (BUILTIN_DIR, *extra_dirs):
        if not Path(folder).is_dir():
            raise DeviceError(f"{folder}: device profile folder not found")
        for path in sorted(Path(folder).glob("*.y*ml")):
            data = read_named_mapping(path, "device profile")
            raw[str(data["name"])] = (data, path)
    profiles: dict[str, DeviceProfile] = {}
    for name in raw:
        profiles[name] = _build(name, raw, ())
    return profiles


def _build(name: str, raw: dict[str, tuple[dict[str, Any], Path]], chain: tuple[str, ...]) -> DeviceProfile:
    data, path = raw[name]
    data = dict(data)
    parent = data.pop("extends", None)
    if parent is not None:
        if not isinstance(parent, str):
            raise DeviceError(f"{path}: extends: give the name of one profile, not {_shown(parent)}")
        if len(chain) >= MAX_EXTENDS:
            raise DeviceError(f"{path}: extends: a chain of more than {MAX_EXTENDS} profiles "
                              f"({' -> '.join((*chain[:3], '...', name))})")
        if parent not in raw or parent in chain:
            why = "a cycle" if parent in chain else f"no profile named {parent!r}"
            raise DeviceError(f"{path}: extends: {why} (known: {', '.join(sorted(raw))})")
        base = _build(parent, raw, (*chain, name)).model_dump(exclude={"file"})
        data = _merge({**base, "detect": False}, data)
    if data.get("detect"):
        data = _merge(data, _host_facts())
    try:
        return DeviceProfile.model_validate({**data, "file": path})
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in first["loc"])
        raise DeviceError(f"{path}: {field}: {first['msg']}") from None
    except RecursionError:
        raise DeviceError(f"{path}: the device profile is nested too deeply") from None


def _shown(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"
