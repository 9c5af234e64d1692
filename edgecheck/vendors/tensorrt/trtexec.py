"""trtexec's command lines, per TensorRT version: what a board runs to build, time and run an engine.

Standard library only, Python 3.8 source: this module is imported on the board. Every command is an
argv list (never a shell string). Flags are chosen by the board's own TensorRT version, read from
trtexec itself (engine.trtexec_version), because JetPack 4.6 ships 8.0.1 and 4.6.1 ships 8.2.1.

Where each version's flags come from (the help texts of NVIDIA/TensorRT samples/common/sampleOptions.cpp
and `trtexec --help` outputs, cited in RESEARCH20 section 3); "verified" means seen in that version's
help text, "inferred" means from a changelog, a log or a neighbouring version:
- `--workspace=N` (MiB): 7.x/8.0 help "in megabytes", 8.2 help (verified); deprecated in 8.4, an error in
  10.x (verified: "Unknown option: --workspace" on TensorRT v100300).
- `--memPoolSize=workspace:N`: from 8.4 (8.4 CHANGELOG; 8.4/8.5 help `poolfmt ::= pool:sizeInMiB`,
  verified). 10.x accepts B/K/M/G suffixes with MiB the default (10.5 help, verified); a bare number is
  therefore MiB on every version that has the flag, so no suffix is written (8.4's grammar has none).
- `--profilingVerbosity=detailed`: from 8.2 (8.2-era help, verified); 8.0 has `--nvtxMode=verbose` instead
  (8.0-era help, verified).
- `--exportLayerInfo`: in the 8.2-era sampleOptions (verified in source); a maintainer says 8.0 lacks it
  (verified, NVIDIA/TensorRT#2514); whether JetPack 4.6.1's 8.2.1 binary accepts it is inferred only, so
  engine.ensure_engine retries without it when trtexec says "Unknown option".
- `--builderOptimizationLevel`: from 8.6 (absent in 8.5.3 help, present in 10.5 help; 8.6 logs print it:
  inferred for 8.6).
- `--skipInference`: from 8.6 (inferred from 8.6.1 use; verified in 10.5 help); before 8.6 `--buildOnly`
  (verified in the 8.0- and 8.2-era helps), which 10.x refuses (verified in the JetPack 6 failure log).
- `--stronglyTyped`: verified in 10.5 help, absent in 8.5.3 help; it arrived with TensorRT 9 (not on any
  JetPack), so it is used from 10.0: inferred for 10.0-10.4.
- `--noTF32`, `--useDLACore`, `--allowGPUFallback`, `--minShapes/--optShapes/--maxShapes`, `--shapes`,
  `--loadInputs`, `--warmUp` (ms), `--duration` (s), `--iterations`, `--exportTimes`, `--exportProfile`,
  `--exportOutput`, `--separateProfileRun`, `--useSpinWait`, `--buildOnly`: all in the 8.0-era help (verified).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

PRECISIONS = ("fp32", "fp16", "int8")
METADATA_KEY = "edgecheck.tensorrt.build"  # the .trtjob's metadata_props entry that holds BuildSettings.to_json()
JOB_SUFFIX = ".trtjob"
SETTINGS_FORMAT = 1  # bumped when the JSON's meaning changes (it is part of every engine's cache key)


class UnsupportedFlag(Exception):
    """A setting this TensorRT version's trtexec cannot take; the message names the version and the flag."""

    def __init__(self, version: "TrtVersion", setting: str, why: str):
        self.version, self.setting = version, setting
        super().__init__("TensorRT %s cannot take %s: %s" % (version, setting, why))


class SettingsError(ValueError):
    """Build settings that do not make sense (named field), or an unreadable settings JSON."""


@dataclass(frozen=True, order=True)
class TrtVersion:
    major: int
    minor: int
    patch: int = 0

    @classmethod
    def parse(cls, text: str) -> "TrtVersion":
        """From "8.2.1", "TensorRT version: 8.6.3", or the banner's packed form "v8201" / "[TensorRT v100300]"
        (8.x packs major*1000 + minor*100 + patch, 10.x major*10000 + minor*100 + patch)."""
        dotted = re.search(r"(?<![\w.])(\d{1,2})\.(\d{1,2})(?:\.(\d{1,3}))?", text)
        packed = re.search(r"\bv(\d{4,6})\b", text)
        if packed and (not dotted or packed.start() < dotted.start()):
            number = int(packed.group(1))
            if number >= 100000:
                return cls(number // 10000, (number // 100) % 100, number % 100)
            return cls(number // 1000, (number // 100) % 10, number % 100)
        if dotted:
            return cls(int(dotted.group(1)), int(dotted.group(2)), int(dotted.group(3) or 0))
        raise ValueError("no TensorRT version in %r" % text[:200])

    def __str__(self) -> str:
        return "%d.%d.%d" % (self.major, self.minor, self.patch)

    def at_least(self, major: int, minor: int = 0) -> bool:
        return (self.major, self.minor) >= (major, minor)


@dataclass(frozen=True)
class InputShapes:
    """One input's optimisation profile: the smallest, the typical (what TensorRT tunes for) and the largest."""

    min: Tuple[int, ...]
    opt: Tuple[int, ...]
    max: Tuple[int, ...]

    def __post_init__(self) -> None:
        ranks = {len(self.min), len(self.opt), len(self.max)}
        if len(ranks) != 1:
            raise SettingsError("shapes: min %s, opt %s and max %s differ in rank" % (list(self.min), list(self.opt), list(self.max)))
        for name in ("min", "opt", "max"):
            dims = getattr(self, name)
            if not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims):
                raise SettingsError("shapes: %s %s must be positive integers" % (name, list(dims)))
        if not all(a <= b <= c for a, b, c in zip(self.min, self.opt, self.max)):
            raise SettingsError("shapes: need min <= opt <= max in every dimension (min %s, opt %s, max %s)"
                                % (list(self.min), list(self.opt), list(self.max)))


@dataclass(frozen=True)
class BuildSettings:
    """How the board builds the engine: carried in the .trtjob's metadata as JSON (to_json)."""

    precision: str  # "fp32" | "fp16" | "int8" (int8 = explicit Q/DQ in the graph)
    workspace_mb: Optional[int] = None
    dla_core: Optional[int] = None
    gpu_fallback: bool = True
    builder_optimization_level: Optional[int] = None
    shapes: Dict[str, InputShapes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise SettingsError("precision: %r is not one of %s" % (self.precision, ", ".join(PRECISIONS)))
        for name, low, high in (("workspace_mb", 1, None), ("dla_core", 0, None), ("builder_optimization_level", 0, 5)):
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < low or (high is not None and value > high):
                raise SettingsError("%s: %r must be an integer from %d%s" % (name, value, low, " to %d" % high if high else ""))
        if not isinstance(self.gpu_fallback, bool):
            raise SettingsError("gpu_fallback: %r must be true or false" % (self.gpu_fallback,))
        if self.dla_core is not None and self.precision == "fp32":
            raise SettingsError("dla_core: the DLA runs FP16 and INT8 only, not precision fp32")
        for name, shape in self.shapes.items():
            if not isinstance(shape, InputShapes):
                raise SettingsError("shapes.%s: not an InputShapes" % name)
            if "'" in name:
                raise SettingsError("shapes.%s: trtexec cannot name an input with a single quote in its name" % name)

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, no spaces): the same settings always give the same text (a cache key)."""
        body = {"format": SETTINGS_FORMAT, "precision": self.precision, "workspace_mb": self.workspace_mb,
                "dla_core": self.dla_core, "gpu_fallback": self.gpu_fallback,
                "builder_optimization_level": self.builder_optimization_level,
                "shapes": {name: {"min": list(s.min), "opt": list(s.opt), "max": list(s.max)}
                           for name, s in sorted(self.shapes.items())}}
        return json.dumps(body, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "BuildSettings":
        """Settings from `to_json`'s text; anything else is a SettingsError naming the field."""
        try:
            body = json.loads(text)
        except ValueError as exc:
            raise SettingsError("build settings are not JSON: %s" % exc)
        if not isinstance(body, dict):
            raise SettingsError("build settings are not a JSON object")
        if body.get("format") != SETTINGS_FORMAT:
            raise SettingsError("build settings format %r, this edgecheck reads %d (rebuild the artifact)"
                                % (body.get("format"), SETTINGS_FORMAT))
        known = {"format", "precision", "workspace_mb", "dla_core", "gpu_fallback", "builder_optimization_level", "shapes"}
        unknown = sorted(set(body) - known)
        if unknown:
            raise SettingsError("build settings: unknown field %s" % ", ".join(unknown))
        if "precision" not in body:
            raise SettingsError("build settings: no precision")
        raw_shapes = body.get("shapes") or {}
        if not isinstance(raw_shapes, dict):
            raise SettingsError("build settings: shapes is not an object")
        shapes = {}
        for name, spec in raw_shapes.items():
            if not isinstance(spec, dict) or set(spec) != {"min", "opt", "max"}:
                raise SettingsError("build settings: shapes.%s needs exactly min, opt and max" % name)
            try:
                shapes[str(name)] = InputShapes(*(tuple(spec[k]) for k in ("min", "opt", "max")))
            except TypeError as exc:
                raise SettingsError("build settings: shapes.%s: %s" % (name, exc))
        return cls(precision=body["precision"], workspace_mb=body.get("workspace_mb"), dla_core=body.get("dla_core"),
                   gpu_fallback=body.get("gpu_fallback", True),
                   builder_optimization_level=body.get("builder_optimization_level"), shapes=shapes)


@dataclass(frozen=True)
class ExportPaths:
    times: Optional[str] = None
    profile: Optional[str] = None
    layer_info: Optional[str] = None
    output: Optional[str] = None


@dataclass(frozen=True)
class TimingArgs:
    warmup_ms: int = 200
    iterations: Optional[int] = None
    duration_s: Optional[float] = None
    separate_profile_run: bool = True
    spin_wait: bool = True  # --useSpinWait: synchronise by spinning, so wake-up latency does not count in the samples


def supports_layer_info(version: TrtVersion) -> bool:
    """Whether trtexec has --exportLayerInfo (8.2 on; 8.0, JetPack 4.6's, has none: no layer info then)."""
    return version.at_least(8, 2)


def quoted_name(name: str) -> str:
    """An input name as trtexec's shape and input specs take it: wrapped in single quotes where it holds
    ':' or ',' (trtexec help: "Input names can be wrapped with single quotes (ex: 'Input:0')")."""
    if "'" in name:
        raise SettingsError("input %r: trtexec cannot take a name with a single quote" % name)
    return "'%s'" % name if (":" in name or "," in name) else name


def _dims(shape: Tuple[int, ...]) -> str:
    return "x".join(str(int(d)) for d in shape)


def _shape_spec(shapes: Dict[str, Tuple[int, ...]]) -> str:
    return ",".join("%s:%s" % (quoted_name(name), _dims(shape)) for name, shape in sorted(shapes.items()))


def _dla_flags(settings: BuildSettings) -> List[str]:
    if settings.dla_core is None:
        return []
    flags = ["--useDLACore=%d" % settings.dla_core]
    return flags + (["--allowGPUFallback"] if settings.gpu_fallback else [])


def precision_flags(version: TrtVersion, settings: BuildSettings) -> List[str]:
    """fp32: --noTF32 (TF32 is on by default where the GPU has it: Orin); fp16: --fp16; int8 (explicit Q/DQ):
    --int8 --fp16 on 8.x (layers left unquantized may run in FP16), --stronglyTyped on 10.x (precision from the
    graph's Q/DQ and tensor types: unquantized layers stay FP32; builder precision flags are refused with it)."""
    if settings.precision == "fp32":
        return ["--noTF32"]
    if settings.precision == "fp16":
        return ["--fp16"]
    if version.major >= 10:
        return ["--stronglyTyped"]
    return ["--int8", "--fp16"]


def build_command(trtexec: str, version: TrtVersion, settings: BuildSettings, onnx: str, engine: str,
                  layer_info: Optional[str]) -> List[str]:
    """trtexec's argv that builds `engine` from `onnx` and exits without timing it."""
    argv = [trtexec, "--onnx=%s" % onnx, "--saveEngine=%s" % engine]
    argv += precision_flags(version, settings)
    if settings.workspace_mb is not None:
        if version.at_least(8, 4):
            argv.append("--memPoolSize=workspace:%d" % settings.workspace_mb)
        else:
            argv.append("--workspace=%d" % settings.workspace_mb)
    if settings.builder_optimization_level is not None:
        if not version.at_least(8, 6):
            raise UnsupportedFlag(version, "builder_optimization_level (--builderOptimizationLevel)",
                                  "it arrived in TensorRT 8.6 (JetPack 6.0); leave it out for this board")
        argv.append("--builderOptimizationLevel=%d" % settings.builder_optimization_level)
    argv += _dla_flags(settings)
    if settings.shapes:
        for flag, pick in (("--minShapes", "min"), ("--optShapes", "opt"), ("--maxShapes", "max")):
            argv.append("%s=%s" % (flag, _shape_spec({n: getattr(s, pick) for n, s in settings.shapes.items()})))
    argv.append("--profilingVerbosity=detailed" if version.at_least(8, 2) else "--nvtxMode=verbose")
    if layer_info is not None:
        if not supports_layer_info(version):
            raise UnsupportedFlag(version, "--exportLayerInfo", "trtexec has it from TensorRT 8.2 (JetPack 4.6.1)")
        argv.append("--exportLayerInfo=%s" % layer_info)
    argv.append("--skipInference" if version.at_least(8, 6) else "--buildOnly")
    return argv


def _load_flags(settings: BuildSettings, shapes: Optional[Dict[str, Tuple[int, ...]]]) -> List[str]:
    """What a run of a built engine needs: the DLA core it was built for, and the shapes of dynamic inputs."""
    argv = ["--useDLACore=%d" % settings.dla_core] if settings.dla_core is not None else []
    run_shapes = dict(shapes) if shapes else {n: s.opt for n, s in settings.shapes.items()}
    if run_shapes:
        argv.append("--shapes=%s" % _shape_spec(run_shapes))
    return argv


def _inputs_flag(inputs: Optional[Dict[str, str]]) -> List[str]:
    if not inputs:
        return []
    for path in inputs.values():
        if "," in path:
            raise SettingsError("input file %r: trtexec's --loadInputs cannot take a path with a comma" % path)
    return ["--loadInputs=%s" % ",".join("%s:%s" % (quoted_name(n), p) for n, p in sorted(inputs.items()))]


def timing_command(trtexec: str, version: TrtVersion, settings: BuildSettings, engine: str, exports: ExportPaths,
                   timing: TimingArgs, inputs: Optional[Dict[str, str]] = None,
                   shapes: Optional[Dict[str, Tuple[int, ...]]] = None) -> List[str]:
    """trtexec's argv that times a built engine and writes its per-inference times and per-layer profile."""
    argv = [trtexec, "--loadEngine=%s" % engine] + _load_flags(settings, shapes) + _inputs_flag(inputs)
    argv.append("--warmUp=%d" % max(int(timing.warmup_ms), 0))
    if timing.iterations is not None:
        argv.append("--iterations=%d" % timing.iterations)
    if timing.duration_s is not None:  # whole seconds: older trtexecs read an integer
        argv.append("--duration=%d" % max(int(math.ceil(timing.duration_s)), 0))
    if timing.spin_wait:
        argv.append("--useSpinWait")
    if exports.times:
        argv.append("--exportTimes=%s" % exports.times)
    if exports.profile:
        argv.append("--exportProfile=%s" % exports.profile)
        if timing.separate_profile_run:
            argv.append("--separateProfileRun")
    if exports.output:
        argv.append("--exportOutput=%s" % exports.output)
    return argv


def output_command(trtexec: str, version: TrtVersion, settings: BuildSettings, engine: str, inputs: Dict[str, str],
                   export_output: str, shapes: Optional[Dict[str, Tuple[int, ...]]] = None) -> List[str]:
    """trtexec's argv that runs one inference of the given inputs and writes the outputs as JSON."""
    return ([trtexec, "--loadEngine=%s" % engine] + _load_flags(settings, shapes) + _inputs_flag(inputs)
            + ["--warmUp=0", "--iterations=1", "--duration=0", "--exportOutput=%s" % export_output])
