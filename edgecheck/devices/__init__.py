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

from pydantic import Field, SerializeAsAny, ValidationError

from edgecheck.entrypoints import BACKENDS, import_target, load_group
from edgecheck.errors import DeviceError, SpecError
from edgecheck.spec.loader import read_data_file
from edgecheck.strict import StrictModel

BUILTIN_DIR = Path(__file__).with_name("profiles")
Precision = Literal["fp32", "fp16", "bf16", "int16", "int8", "int4", "uint8"]
MAX_DATA_BYTES = 4_000_000  # an operator table of every ONNX operator with its constraints is ~100 kB
MAX_EXTENDS = 32  # profiles in one `extends` chain


class Compute(StrictModel):
    tops: float | None = Field(None, gt=0, description="Peak throughput in TOPS as the vendor quotes it.")
    unit: Literal["CPU", "GPU", "NPU", "TPU", "DSP"]


class Cpu(StrictModel):
    arch: str | None = None
    cores: int | None = Field(None, ge=1)
    model: str | None = None


class Accelerator(StrictModel):
    kind: Literal["gpu", "npu", "tpu", "dla", "dsp"]
    name: str
    tops: float | None = Field(None, gt=0)
    precisions: list[Precision] = Field(default_factory=list)


class CalibrationPoint(StrictModel):
    """A published latency (architectures: benchmarks/architectures.py): one the cost model was fitted on
    (`role: fit`), or one it was not, on which its error and range were checked (`role: validate`)."""

    model: str
    input: list[int]
    published_ms: float = Field(gt=0)
    source: str
    role: Literal["fit", "validate"] = "fit"


class CostModel(StrictModel):
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
    channel_align: int = Field(1, ge=1, description="A dense convolution's channels are computed in groups of this "
                               "many (an NPU's MAC array width): its work is that of its channels rounded up.")
    activation_ns: float = Field(0, ge=0, description="Nanoseconds per output element of a sigmoid-like activation "
                                 "(Sigmoid, Tanh, HardSwish, ...), which an NPU evaluates in a pass of its own.")
    error_factor: float = Field(ge=1, description="The stated error: the true figure is taken to lie within "
                                "[estimate / f, estimate x f]; from the calibration's held-out error.")
    calibration: str = Field(description="What the efficiencies were fitted on, or why there is no fit.")
    points: list[CalibrationPoint] = Field(default_factory=list)
    runs_as: Precision | None = Field(None, description="The precision the backend actually computes in, when "
                                      "it converts (a backend that runs float32 models in float16).")

    @property
    def calibrated(self) -> bool:
        return bool(self.fitted)

    @property
    def fitted(self) -> list[CalibrationPoint]:
        """The points the efficiencies were fitted on (the others only checked them)."""
        return [p for p in self.points if p.role == "fit"]


class BackendOptions(StrictModel):
    """A backend's own options in a device profile, beside the fields every backend has. A vendor whose
    backend takes more subclasses this (its Backend's `profile_options`), as recipes model their parameters."""

    platform: str | None = Field(None, description="The vendor toolkit's name for this chip (its target platform): "
                                 "artifacts built for another platform do not run here.")


class BackendSupport(StrictModel):
    precisions: list[Precision]
    threads: int | None = Field(None, ge=1, description="CPU threads, so runs on the host are comparable.")
    ops: str | None = Field(None, description="The operator table for this backend on this device (default: "
                            "the table for this backend that names the device, else the backend's general one).")
    estimate: dict[Precision, CostModel] = Field(default_factory=dict, description="Latency cost models by the "
                                                 "artifact's precision.")
    options: SerializeAsAny[BackendOptions] = Field(default_factory=BackendOptions, description="The backend's own options, "
                                    "written beside these fields and read by its own model (Backend.profile_options).")

    @property
    def platform(self) -> str | None:
        """The chip the backend's artifacts must be built for, where its options name one."""
        return self.options.platform


class DeviceProfile(StrictModel):
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
    this_machine: bool = Field(False, description="The profile describes the machine running the tests (its "
                               "figures are measured here, not on a board); a detected profile is so too.")
    source: str = Field("", description="Where the figures come from.")
    file: Path | None = Field(None, exclude=True)
    @property
    def is_host(self) -> bool:
        """Whether this profile is the machine running the tests: its checks measure here, for real."""
        return self.this_machine or self.detect

    def as_data(self) -> dict[str, Any]:
        """The profile as plain data, each backend's own options beside its common fields (as a file has them)."""
        return _flat(self.model_dump(mode="json"))

    def threads_for(self, backend: str) -> int:
        support = self.backends.get(backend)
        if support and support.threads:
            return support.threads
        return self.cpu.cores or 1


_hand_options: dict[str, type[BackendOptions] | None] = {}


def _options_class(backend: str, target: str) -> type[BackendOptions]:
    """The class a backend's `profile_options` names; a `DeviceError` saying whose it is if it is not one."""
    try:
        model = import_target(target)
    except Exception as exc:
        raise DeviceError(f"backend {backend!r}: its profile options {target} failed to import: "
                          f"{type(exc).__name__}: {exc}") from None
    if not (isinstance(model, type) and issubclass(model, BackendOptions)):
        raise DeviceError(f"backend {backend!r}: its profile options {target} is not an edgecheck.devices.BackendOptions "
                          "class")
    return model
_found_options: dict[str, type[BackendOptions]] | None = None


def register_profile_options(backend: str, model: str | None) -> None:
    """The options model (`module:Class`) of a backend registered by hand (edgecheck.backends.register_backend
    calls this)."""
    _hand_options[backend] = _options_class(backend, model) if model else None


def unregister_profile_options(backend: str) -> None:
    _hand_options.pop(backend, None)


def profile_options_model(backend: str) -> type[BackendOptions]:
    """The model that reads a backend's own options in a profile: its class's `profile_options`, found
    through the backends' entry points without starting them; the common one for any other backend."""
    global _found_options
    if backend in _hand_options:
        return _hand_options[backend] or BackendOptions
    if _found_options is None:
        _found_options = {}
        for loaded in load_group(BACKENDS):  # a broken plugin is reported when its backend is asked for
            target = getattr(loaded.value, "profile_options", None)
            if isinstance(target, str) and target:
                _found_options[loaded.name] = _options_class(loaded.name, target)
    return _found_options.get(backend, BackendOptions)


_COMMON = frozenset(BackendSupport.model_fields) - {"options"}


def _with_options(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """The profile with each backend's own options (the keys beside the common ones) read by its model."""
    backends = data.get("backends")
    if not isinstance(backends, dict):
        return data
    read = {}
    for name, fields in backends.items():
        if not isinstance(fields, dict) or "options" in fields:
            read[name] = fields
            continue
        own = {key: value for key, value in fields.items() if key not in _COMMON}
        try:
            options = profile_options_model(str(name)).model_validate(own)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            field = ".".join(str(p) for p in ("backends", name, *first["loc"]))
            raise DeviceError(f"{path}: {field}: {first['msg']}") from None
        read[name] = {**{k: v for k, v in fields.items() if k in _COMMON}, "options": options}
    return {**data, "backends": read}


def _flat(dumped: dict[str, Any]) -> dict[str, Any]:
    """A dumped profile with each backend's options back beside its common fields, as a file writes them."""
    backends = dumped.get("backends") or {}
    return {**dumped, "backends": {name: {**{k: v for k, v in fields.items() if k != "options"},
                                          **fields.get("options", {})} for name, fields in backends.items()}}


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
    with the spec's reader: one place bounds size and nesting and refuses duplicate keys (edgecheck's own
    files, checked by its tests, are parsed by libyaml: `read_data_file`)."""
    try:
        data = read_data_file(path, what, MAX_DATA_BYTES)
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
            replaced = raw.get(str(data["name"]))
            if replaced is not None and replaced[0].get("this_machine") and "this_machine" not in data:
                # a project's own `host` is still this machine unless it says otherwise
                data = {**data, "this_machine": True}
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
        base = _flat(_build(parent, raw, (*chain, name)).model_dump(exclude={"file"}))
        data = _merge({**base, "detect": False, "this_machine": False}, data)
    if data.get("detect"):
        data = _merge(data, _host_facts())
    data = _with_options(data, path)
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
