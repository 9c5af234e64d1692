"""Artifact formats by name and by suffix: whatever the `edgecheck.formats` entry points add (the core's
ONNX and the vendors' formats among them), plus formats registered by hand (tests, a conftest.py).

Discovery happens on first use, as for backends; a plugin that fails to import is reported by name
in the error of the file it could have read, never as a crash of the session.
"""

from __future__ import annotations

from pathlib import Path

from edgecheck.cache_records import RecordCache, code_fingerprint
from edgecheck.entrypoints import FORMATS as ENTRY_POINT_GROUP
from edgecheck.entrypoints import load_classes
from edgecheck.errors import EdgecheckError, ModelError
from edgecheck.formats.base import ArtifactFormat
from edgecheck.model import ModelInfo, TensorInfo, file_sha256, refuse_lfs_pointer

__all__ = ["ArtifactFormat", "format_named", "format_of", "format_owning", "inspect_model", "known_formats", "register_format",
           "unregister_format", "reset_formats", "suffix_text", "broken_formats"]

DEFAULT = "onnx"  # a file whose suffix no format owns is read as ONNX (as before formats were plug-ins)

_registered: dict[str, ArtifactFormat] = {}
_broken: dict[str, str] = {}
_discovered = False


class UnknownFormat(EdgecheckError):
    """A format name that no installed format answers to."""


def register_format(cls: type[ArtifactFormat]) -> type[ArtifactFormat]:
    """Add a format class by hand (tests, or a conftest.py); usable as a decorator."""
    _registered[cls.name] = cls()
    _broken.pop(cls.name, None)
    return cls


def unregister_format(name: str) -> None:
    _registered.pop(name, None)
    _broken.pop(name, None)


def reset_formats() -> None:
    """Forget hand-registered formats and rediscover entry points on next use."""
    global _discovered
    _registered.clear()
    _broken.clear()
    _discovered = False


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    _discovered = True
    # edgecheck's own formats first: a plug-in that claims a shipped suffix is the one refused
    for name, cls, problem in load_classes(
            ENTRY_POINT_GROUP, lambda v: isinstance(v, type) and issubclass(v, ArtifactFormat), "ArtifactFormat class",
            skip=_registered, own_first=True):
        if problem:
            _broken[name] = problem
            continue
        try:
            found = cls()
        except Exception as exc:  # a third-party constructor must not take the session down
            _broken[name] = f"its format class failed to start: {type(exc).__name__}: {exc}"
            continue
        owner = next(((suffix, other) for suffix in found.suffixes for other in _registered.values()
                      if suffix.lower() in other.suffixes), None)
        if owner is not None:  # two readers of one suffix: never the first silently
            _broken[name] = f"its suffix {owner[0]} is already the {owner[1].name!r} format's"
        else:
            _registered[name] = found


def known_formats() -> list[str]:
    """Names of the installed formats, broken ones included."""
    _discover()
    return sorted(set(_registered) | set(_broken))


def broken_formats() -> dict[str, str]:
    """Format plugins that could not be loaded, by name, with why."""
    _discover()
    return dict(_broken)


def format_named(name: str) -> ArtifactFormat:
    """The format called `name`, or `UnknownFormat` saying which exist (and which failed to load)."""
    _discover()
    if name in _registered:
        return _registered[name]
    if name in _broken:
        raise UnknownFormat(f"artifact format {name!r} cannot be used: {_broken[name]}")
    raise UnknownFormat(f"no artifact format named {name!r} is installed (installed: {', '.join(known_formats())}; "
                        f"a plugin adds one through the {ENTRY_POINT_GROUP!r} entry point group)")


def suffix_text(name: str) -> str:
    """The suffix a format's files are written with (".onnx"): its plugin's, else "." and its name (a
    process where the format's plugin is not installed, such as a worker in a toolkit's own environment)."""
    _discover()
    found = _registered.get(name)
    return found.suffix if found is not None else f".{name}"


def _by_suffix(suffix: str) -> ArtifactFormat | None:
    return next((f for f in _registered.values() if suffix in f.suffixes), None)


def _sniffed(path: Path) -> ArtifactFormat | None:
    if not path.is_file():  # a FIFO or a device is never opened here
        return None
    try:
        with path.open("rb") as handle:
            head = handle.read(16)
    except OSError:
        return None
    return next((f for f in _registered.values() if f.sniff(head)), None)


def format_owning(path: Path | str) -> ArtifactFormat | None:
    """The format whose suffix `path` has, or None (no fallback to ONNX)."""
    _discover()
    return _by_suffix(Path(path).suffix.lower())


def format_of(path: Path | str, sniff: bool = False) -> ArtifactFormat:
    """The format that reads `path`: by its suffix, else (with `sniff`) by its first bytes, else ONNX. A
    suffix no format owns while a format plugin is broken is a `ModelError` naming the broken plugin."""
    _discover()
    path = Path(path)
    found = _by_suffix(path.suffix.lower()) or (_sniffed(path) if sniff else None)
    if found is not None:
        return found
    if _broken:
        broken = "; ".join(f"{name}: {why}" for name, why in sorted(_broken.items()))
        raise ModelError(path, f"no installed artifact format reads {path.suffix or 'this'} files, and a format "
                         f"plugin that might failed to load ({broken})")
    return format_named(DEFAULT)


def inspect_model(path: Path | str) -> ModelInfo:
    """Facts of a model file, read by its format (a .tflite through the TFLite reader, a .rknn through its
    build folder, an .onnx with its external data)."""
    path = Path(path)
    if path.is_file():
        refuse_lfs_pointer(path)
    return format_of(path).inspect(path)


MODEL_RECORD = "model-info/1"  # the format of a model's facts in the cache (edgecheck.cache_records)


def inspect_model_cached(path: Path | str, records: RecordCache) -> ModelInfo:
    """`inspect_model`, kept in `records` by content where the format says what its inspection reads
    (`ArtifactFormat.inspect_reads`: an ONNX file alone, a .rknn's build folder): the key is the file's
    SHA-256 (which needs no onnx), those reads', the format, edgecheck's code and the installed onnx (its
    checker decides what loads), so a warm run reads bytes and imports no onnx. Other files, and a file
    whose facts count data beside it (ONNX external data), are inspected each time."""
    path = Path(path)
    if records.root is None or not path.is_file():
        return inspect_model(path)
    found = format_of(path)
    reads = found.inspect_reads(path)
    if reads is None:
        return inspect_model(path)
    key = _text_sha256(f"{MODEL_RECORD} {code_fingerprint()} {_onnx_install()} {found.name} "
                       f"{sorted(reads.items())} {file_sha256([path])}")
    record, _ = records.remember("model", key, lambda: _model_record(inspect_model(path), path))
    if not record.get("self_contained"):  # data beside it (ONNX external data): read and hashed by inspecting again
        return inspect_model(path)
    return _model_from_record(record, path)


def _text_sha256(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


def _onnx_install() -> str:
    """Which onnx is installed, without importing it: its version file and when its package was written."""
    import importlib.util

    spec = importlib.util.find_spec("onnx")
    if spec is None or spec.origin is None:
        return "onnx absent"
    origin = Path(spec.origin)
    try:
        version = (origin.parent / "version.py").read_text(encoding="utf-8")
        return f"{origin} {origin.stat().st_mtime_ns} {version}"
    except OSError as exc:
        return f"{origin} unreadable: {exc}"


def _model_record(info: ModelInfo, path: Path) -> dict[str, object]:
    def tensors(found: tuple[TensorInfo, ...]) -> list[list[object]]:
        return [[t.name, t.dtype, list(t.shape), t.quantized] for t in found]

    return {"self_contained": info.size_bytes == path.stat().st_size,  # no external data beside it
            "format": info.format, "inputs": tensors(info.inputs), "outputs": tensors(info.outputs),
            "size_bytes": info.size_bytes, "parameters": info.parameters, "opsets": info.opsets,
            "op_counts": info.op_counts, "sha256": info.sha256}


def _model_from_record(record: dict, path: Path) -> ModelInfo:
    def tensors(found: list) -> tuple[TensorInfo, ...]:
        return tuple(TensorInfo(str(name), str(dtype), tuple(shape), bool(quantized))
                     for name, dtype, shape, quantized in found)

    return ModelInfo(path=path, format=str(record["format"]), inputs=tensors(record["inputs"]),
                     outputs=tensors(record["outputs"]), size_bytes=int(record["size_bytes"]),
                     parameters=int(record["parameters"]), opsets={str(k): int(v) for k, v in record["opsets"].items()},
                     op_counts={str(k): int(v) for k, v in record["op_counts"].items()}, sha256=str(record["sha256"]))


def runs_format(formats: tuple[str, ...], path: Path | str) -> bool:
    """Whether a backend that runs `formats` runs the file at `path`."""
    return format_of(path).name in formats
